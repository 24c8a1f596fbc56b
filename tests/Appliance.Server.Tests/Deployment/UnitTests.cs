using System.Text.Json;
using Appliance.Testing;

namespace Appliance.Server.Tests.Deployment;

/// <summary>
/// appliance-image/systemd: the unit's hardening as systemd's own analysis scores it, offline (systemd is
/// not PID 1 here: the booted image, tests/Appliance.Image.Tests, shows it applied), and both units as
/// systemd-analyze verify reads them against a root holding the host's units and the binary.
/// </summary>
public class UnitTests
{
    private static readonly string s_units = Repo.Path("appliance-image", "systemd");

    [Fact]
    public async Task SystemdAnalyzeSecurity_Offline_ScoresWithinTheBound()
    {
        CommandResult result = await Hardening.AnalyzeOfflineAsync();
        Assert.True(result.ExitCode == 0, result.ToString());
        double score = Hardening.Exposure(result.StdOut);
        Assert.True(score <= Hardening.ExposureBound, $"exposure {score} > {Hardening.ExposureBound}:\n{result.StdOut}");
    }

    [Fact]
    public async Task SystemdAnalyzeSecurity_Offline_WithTheSoftwareClockDropIn_ScoresAtMost1_5()
    {
        CommandResult result = await Hardening.AnalyzeSoftwareClockOfflineAsync();
        Assert.True(result.ExitCode == 0, result.ToString());
        double score = Hardening.Exposure(result.StdOut);
        Assert.True(score <= Hardening.SoftwareClockExposureBound, $"exposure {score} > {Hardening.SoftwareClockExposureBound}:\n{result.StdOut}");
        // The drop-in really applied: the clock checks pass that the unit alone fails.
        Assert.Matches(@"✓ ProtectClock=", result.StdOut);
        Assert.Matches(@"✓ CapabilityBoundingSet=~CAP_SYS_TIME", result.StdOut);
    }

    [Fact]
    public async Task SystemdAnalyzeSecurity_Offline_FailsOnlyTheChecksTheUnitExplains()
    {
        CommandResult result = await Run.CommandAsync("systemd-analyze",
            ["security", "--offline=true", "--no-pager", "--json=short", Hardening.UnitPath], TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.ToString());
        using JsonDocument json = JsonDocument.Parse(result.StdOut);
        string[] failed = json.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("set").ValueKind == JsonValueKind.False)
            .Select(e => e.GetProperty("name").GetString()!)
            .ToArray();
        string[] unexplained = failed.Where(n => !Hardening.Accepted.Contains(n)).ToArray();
        Assert.True(unexplained.Length == 0, $"checks failed that the unit should pass: {string.Join(", ", unexplained)}\n{(await Hardening.AnalyzeOfflineAsync()).StdOut}");
        // And the accepted list holds nothing the unit passes now: it cannot hide a later regression.
        string[] stale = Hardening.Accepted.Where(n => !failed.Contains(n)).ToArray();
        Assert.True(stale.Length == 0, $"accepted but passed (remove from Hardening.Accepted): {string.Join(", ", stale)}");
    }

    [Fact]
    public async Task SystemdAnalyzeVerify_FindsNothingWrong_InEitherUnit()
    {
        // A root with the host's units (real files: verify refuses links for some unit types), both of
        // ours, the first-boot script and a stand-in for the binary (verify checks ExecStart is executable).
        string root = System.IO.Directory.CreateTempSubdirectory("appliance-verify").FullName;
        try
        {
            string system = Path.Combine(root, "usr", "lib", "systemd", "system");
            await Run.CheckedAsync("mkdir", "-p", Path.GetDirectoryName(system)!, Path.Combine(root, "usr", "bin"), Path.Combine(root, "usr", "lib", "appliance"));
            await Run.CheckedAsync("cp", "-r", "/usr/lib/systemd/system", system);
            foreach (string unit in System.IO.Directory.GetFiles(s_units, "*.service"))
            {
                File.Copy(unit, Path.Combine(system, Path.GetFileName(unit)), overwrite: true);
            }
            File.Copy("/bin/true", Path.Combine(root, "usr", "bin", "appliance"));
            File.Copy(Repo.Path("appliance-image", "firstboot", "appliance-firstboot"), Path.Combine(root, "usr", "lib", "appliance", "appliance-firstboot"));

            CommandResult result = await Run.CommandAsync("systemd-analyze",
                ["verify", $"--root={root}", "appliance.service", "appliance-firstboot.service"], TimeSpan.FromSeconds(60));

            Assert.True(result.ExitCode == 0 && result.Output.Trim().Length == 0, result.ToString());
        }
        finally
        {
            System.IO.Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void EveryDirective_FollowsAComment_SayingWhy()
    {
        foreach (string unit in System.IO.Directory.GetFiles(s_units).Where(f => f.EndsWith(".service", StringComparison.Ordinal) || f.EndsWith(".conf", StringComparison.Ordinal)))
        {
            string[] lines = File.ReadAllLines(unit);
            for (int i = 0; i < lines.Length; i++)
            {
                string line = lines[i];
                if (line.Length == 0 || line[0] == '#' || line[0] == '[')
                {
                    continue;
                }
                // A directive belongs to the comment above it, or to a run of directives that one comment explains.
                int j = i - 1;
                while (j >= 0 && lines[j].Length > 0 && lines[j][0] != '#' && lines[j][0] != '[')
                {
                    j--;
                }
                Assert.True(j >= 0 && lines[j].StartsWith('#'), $"{Path.GetFileName(unit)}:{i + 1}: '{line}' has no comment above it");
            }
        }
    }
}
