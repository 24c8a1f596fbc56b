using System.Text.Json;
using Appliance.Server.Configuration;
using Appliance.Server.Migration;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>`appliance migrate` as an operator runs it: where the YAML and the report go, and the exit status.</summary>
public class MigrationCliTests
{
    private static string Conf(string text)
    {
        string dir = MigrationHelpers.Scratch();
        string path = Path.Combine(dir, "chrony.conf");
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task Migrate_WritesTheYamlToStdout_TheReportToStderr_Exits0()
    {
        string path = Conf("server 192.0.2.1 iburst\nallow 192.0.2.0/24\ndriftfile /var/lib/chrony/drift\n");

        CommandResult result = await ApplianceProcess.RunAsync("migrate", path, "--root", Path.GetDirectoryName(path)!);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.True(ConfigLoader.Bind(result.StdOut).IsValid, result.StdOut);
        Assert.Contains("address: \"192.0.2.1\"", result.StdOut, StringComparison.Ordinal);
        Assert.Contains($"{path}:1: server: mapped: ", result.StdErr, StringComparison.Ordinal);
        Assert.Contains($"{path}:2: allow: mapped: ", result.StdErr, StringComparison.Ordinal);
        Assert.Contains($"{path}:3: driftfile: no counterpart needed: ", result.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("server:", result.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_WithOutputAndReport_WritesBothFiles_NothingOnStdout()
    {
        string path = Conf("server 192.0.2.1 iburst\n");
        string dir = Path.GetDirectoryName(path)!;
        string yaml = Path.Combine(dir, "out.yaml"), report = Path.Combine(dir, "report.txt");

        CommandResult result = await ApplianceProcess.RunAsync("migrate", path, "--root", dir, "-o", yaml, "--report", report);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("", result.StdOut);
        Assert.Equal("", result.StdErr);
        Assert.True(ConfigLoader.LoadFile(yaml).IsValid);
        Assert.Contains($"{path}:1: server: mapped: ", File.ReadAllText(report), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_SomethingNotMapped_StillWritesTheYaml_Exits1_WithANoticeOnStderr()
    {
        string path = Conf("server 192.0.2.1 iburst key 5\nsmoothtime 400 0.01\n");
        string dir = Path.GetDirectoryName(path)!;
        string report = Path.Combine(dir, "report.txt");

        CommandResult result = await ApplianceProcess.RunAsync("migrate", path, "--root", dir, "--report", report);

        Assert.Equal(MigrateCommand.ExitNotMapped, result.ExitCode);
        Assert.True(ConfigLoader.Bind(result.StdOut).IsValid);
        Assert.Equal("appliance migrate: 2 directive(s) not mapped: read them in the report before serving on this configuration", result.StdErr.Trim());
        Assert.Contains(":2: smoothtime: not mapped: ", File.ReadAllText(report), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_UnreadableFile_Exits2_InOneLine()
    {
        string missing = Path.Combine(MigrationHelpers.Scratch(), "nope.conf");

        CommandResult result = await ApplianceProcess.RunAsync("migrate", missing);

        Assert.Equal(Program.ExitConfigError, result.ExitCode);
        Assert.Equal("", result.StdOut);
        Assert.StartsWith("appliance migrate: cannot read ", Assert.Single(result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_Json_ReportsEveryNote_WithCountsThatAddUp()
    {
        string path = Conf("server 192.0.2.1 iburst\npool 2.debian.pool.ntp.org\nrtcsync\nbogus\n");

        CommandResult result = await ApplianceProcess.RunAsync("migrate", path, "--root", Path.GetDirectoryName(path)!, "--json");

        using JsonDocument json = JsonDocument.Parse(result.StdErr[..(result.StdErr.LastIndexOf('}') + 1)]);
        JsonElement notes = json.RootElement.GetProperty("notes");
        int total = json.RootElement.GetProperty("counts").EnumerateObject().Sum(c => c.Value.GetInt32());
        Assert.Equal(notes.GetArrayLength(), total);
        Assert.Equal(1, json.RootElement.GetProperty("counts").GetProperty("not-mapped").GetInt32());
        JsonElement bogus = notes.EnumerateArray().Single(n => n.GetProperty("line").GetInt32() == 4);
        Assert.Equal("bogus", bogus.GetProperty("directive").GetString());
        Assert.Equal("not-mapped", bogus.GetProperty("outcome").GetString());
        Assert.Equal(path, bogus.GetProperty("file").GetString());
        Assert.Equal(MigrateCommand.ExitNotMapped, result.ExitCode);
    }
}
