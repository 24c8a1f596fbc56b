using Appliance.Testing;

namespace Appliance.Server.Tests.Deployment;

/// <summary>
/// appliance-image/apparmor/usr.bin.appliance through Debian's apparmor_parser, compiled in full without
/// a kernel to load it into (these machines run no AppArmor; the booted image shows it enforced).
/// </summary>
public class AppArmorProfileTests
{
    private static readonly string s_profile = Repo.Path("appliance-image", "apparmor", "usr.bin.appliance");

    /// <summary>-Q: no kernel load; -K: no cache; -o: write the compiled policy, so every rule is compiled.</summary>
    private static Task<CommandResult> CompileAsync(string path) =>
        Run.CommandAsync("apparmor_parser", ["-Q", "-K", "--skip-cache", "-o", "/dev/null", path], TimeSpan.FromSeconds(60));

    [Fact]
    public async Task ApparmorParser_AcceptsTheProfile()
    {
        CommandResult result = await CompileAsync(s_profile);
        Assert.True(result.ExitCode == 0, result.ToString());
    }

    [Fact]
    public async Task ApparmorParser_RejectsTheProfile_WithABadRule()
    {
        // The same check fails on a broken profile: the parser really reads the file.
        string copy = Path.Combine(System.IO.Directory.CreateTempSubdirectory("appliance-apparmor").FullName, "usr.bin.appliance");
        await File.WriteAllTextAsync(copy, (await File.ReadAllTextAsync(s_profile)).Replace("capability sys_time,", "capability sys_tme,", StringComparison.Ordinal));
        CommandResult result = await CompileAsync(copy);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Invalid capability sys_tme", result.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Profile_GrantsExactlyTheServiceCapabilities_AndRootsVerbsOnly()
    {
        string[] capabilities = (await File.ReadAllLinesAsync(s_profile))
            .Select(l => l.Trim())
            .Where(l => l.StartsWith("capability ", StringComparison.Ordinal))
            .Select(l => l["capability ".Length..].TrimEnd(','))
            .Order(StringComparer.Ordinal)
            .ToArray();
        // sys_time and net_bind_service for the service; the dac pair only matters for root running a verb
        // (the unit's bounding set never holds them).
        Assert.Equal(["dac_override", "dac_read_search", "net_bind_service", "sys_time"], capabilities);
    }
}
