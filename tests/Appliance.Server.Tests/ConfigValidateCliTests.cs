using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>`appliance validate` as an operator meets it: the preflight can be left out for a file meant for another machine.</summary>
public class ConfigValidateCliTests
{
    [Fact]
    public async Task Validate_NoFiles_ChecksTheTextButNotThatTheFilesExist()
    {
        string path = ApplianceProcess.WriteConfig("clock: { local: {}, leap-seconds: /nonexistent/leap-seconds.list }\n");

        CommandResult checkedHere = await ApplianceProcess.RunAsync("validate", path);
        Assert.Equal(2, checkedHere.ExitCode);
        Assert.Contains($"{path}:1:35: error: clock.leap-seconds: no file /nonexistent/leap-seconds.list", checkedHere.StdErr, StringComparison.Ordinal);

        CommandResult textAlone = await ApplianceProcess.RunAsync("validate", "--no-files", path);
        Assert.True(textAlone.ExitCode == 0, textAlone.ToString());
        Assert.Contains("valid", textAlone.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_NoFiles_StillReportsWhatTheTextGetsWrong()
    {
        string path = ApplianceProcess.WriteConfig("clock: { local: { stratum: 16 } }\n");
        CommandResult result = await ApplianceProcess.RunAsync("validate", "--no-files", path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{path}:1:28: error: 'clock.local.stratum' is '16'", result.StdErr, StringComparison.Ordinal);
    }
}
