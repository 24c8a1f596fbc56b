using System.Globalization;
using System.Text.RegularExpressions;

namespace Appliance.Testing;

/// <summary>
/// What `systemd-analyze security` may say of appliance-image/systemd/appliance.service, for the offline
/// test (make test) and the booted image's (make image-test).
/// </summary>
public static partial class Hardening
{
    /// <summary>
    /// The exposure the unit scores (systemd 252): 2.3 (2.2 before setpriority and sched_setaffinity
    /// came back from @resources, for ntp.background-nice and ntp.cpu-affinity). The floor for any single process that disciplines
    /// the kernel clock and serves NTP is 1.7, whatever else it sets: systemd-analyze scores
    /// ceil(100 × Σ weight×badness / Σ weight) = ceil(100 × 9,555 / 56,460) = 17 from the items in
    /// <see cref="Accepted"/> marked as inherent alone (network 4,025, clock 3,530, users 1,000,
    /// port 123 500, ambient capabilities 500). Issue #17's target of 1.5 is below that floor; the
    /// software-clock drop-in (<see cref="SoftwareClockExposureBound"/>) meets it.
    /// </summary>
    public const double ExposureBound = 2.3;

    /// <summary>
    /// The checks the unit fails, each for a reason its comments give; any other ✗ fails the offline
    /// test, so a directive lost in an edit is caught.
    /// </summary>
    public static readonly IReadOnlySet<string> Accepted = new HashSet<string>(StringComparer.Ordinal)
    {
        // Inherent to a network time server.
        "PrivateNetwork=",
        "RestrictAddressFamilies=~AF_(INET|INET6)",
        "RestrictAddressFamilies=~AF_UNIX",
        "IPAddressDeny=",
        // Inherent to owning the kernel clock (clock.mode kernel): CAP_SYS_TIME in the host's user namespace.
        "CapabilityBoundingSet=~CAP_SYS_TIME",
        "ProtectClock=",
        "PrivateUsers=",
        "SystemCallFilter=~@clock",
        "SystemCallFilter=~@privileged",
        // setpriority (ntp.background-nice: the NTP workers ahead of every other thread under a flood)
        // and sched_setaffinity (ntp.cpu-affinity), which seccomp would otherwise answer with SIGSYS.
        "SystemCallFilter=~@resources",
        // Port 123, and the unprivileged user keeping its two capabilities across exec.
        "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
        "AmbientCapabilities=",
        // PPS and PTP devices by cgroup list rather than a private /dev (the unit says why).
        "PrivateDevices=",
        "DeviceAllow=",
        // The host's root directory: the binary needs libssl and the system's CA bundle.
        "RootDirectory=/RootImage=",
    };

    /// <summary>
    /// The unit with appliance-image/systemd/software-clock.conf (clock.mode software, network sources
    /// only): without CAP_SYS_TIME, the clock calls and devices, it meets issue #17's target.
    /// </summary>
    public const double SoftwareClockExposureBound = 1.5;

    public static string UnitPath => Repo.Path("appliance-image", "systemd", "appliance.service");

    public static string SoftwareClockDropInPath => Repo.Path("appliance-image", "systemd", "software-clock.conf");

    /// <summary>`systemd-analyze security --offline=true` of the unit with the software-clock drop-in, in a root of their own.</summary>
    public static async Task<CommandResult> AnalyzeSoftwareClockOfflineAsync()
    {
        string root = Directory.CreateTempSubdirectory("appliance-analyze").FullName;
        try
        {
            string system = Path.Combine(root, "usr", "lib", "systemd", "system");
            string dropIns = Path.Combine(root, "etc", "systemd", "system", "appliance.service.d");
            Directory.CreateDirectory(system);
            Directory.CreateDirectory(dropIns);
            File.Copy(UnitPath, Path.Combine(system, "appliance.service"));
            File.Copy(SoftwareClockDropInPath, Path.Combine(dropIns, "software-clock.conf"));
            return await Run.CommandAsync("systemd-analyze", ["security", "--offline=true", "--no-pager", $"--root={root}", "appliance.service"], TimeSpan.FromSeconds(60));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [GeneratedRegex(@"Overall exposure level for \S+: (\d+\.\d)")]
    private static partial Regex OverallExposure();

    /// <summary>`systemd-analyze security --offline=true` of the unit: the table and the overall line.</summary>
    public static Task<CommandResult> AnalyzeOfflineAsync() =>
        Run.CommandAsync("systemd-analyze", ["security", "--offline=true", "--no-pager", UnitPath], TimeSpan.FromSeconds(60));

    /// <summary>The "Overall exposure level" of a systemd-analyze security table.</summary>
    public static double Exposure(string table)
    {
        Match match = OverallExposure().Match(table);
        if (!match.Success)
        {
            throw new InvalidOperationException($"no 'Overall exposure level' line in:\n{table}");
        }
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
