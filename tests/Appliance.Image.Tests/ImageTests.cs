using System.Globalization;
using System.Text.RegularExpressions;
using Appliance.Testing;
using Xunit.Abstractions;

namespace Appliance.Image.Tests;

/// <summary>
/// The appliance image booted under QEMU (<see cref="ImageVm"/>, once for the class): from the host,
/// real clients through the forwarded ports; from inside, the reporter's view of the service, its
/// process and its confinement. `make image-test` runs it; `make test` does not (it needs `make image`
/// and a few minutes of emulation).
/// </summary>
[Collection(ImageVms.Name)]
public sealed partial class ImageTests(ImageVm vm, ITestOutputHelper output) : IClassFixture<ImageVm>
{
    /// <summary>CAP_NET_BIND_SERVICE (10) and CAP_SYS_TIME (25), as /proc/PID/status writes a set.</summary>
    private const string TwoCapabilities = "0000000002000400";

    [GeneratedRegex(@"System clock wrong by (-?[0-9.]+) seconds")]
    private static partial Regex ChronyOffset();

    /// <summary>systemctl show's Key=Value lines; a key shown more than once (DeviceAllow) joined with "; ".</summary>
    private Dictionary<string, string> Show() =>
        vm.Section("show").Split('\n').Where(l => l.Contains('=', StringComparison.Ordinal))
            .GroupBy(l => l[..l.IndexOf('=', StringComparison.Ordinal)], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => string.Join("; ", g.Select(l => l[(l.IndexOf('=', StringComparison.Ordinal) + 1)..]).Order(StringComparer.Ordinal)), StringComparer.Ordinal);

    private Dictionary<string, string> Status() =>
        vm.Section("status").Split('\n').Where(l => l.Contains(':', StringComparison.Ordinal))
            .ToDictionary(l => l[..l.IndexOf(':', StringComparison.Ordinal)], l => l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim(), StringComparer.Ordinal);

    [Fact]
    public void Service_IsActiveUnderItsUnit_WithTheHardeningInForce()
    {
        Dictionary<string, string> show = Show();
        string all = vm.Section("show");
        // The figures docs/deploying.md quotes: guest time from the kernel's start to READY=1, and host
        // time from QEMU's start to the reporter seeing the service active.
        double ready = double.Parse(show["ActiveEnterTimestampMonotonic"], CultureInfo.InvariantCulture) / 1e6;
        output.WriteLine($"kernel start to appliance ready (guest clock): {ready:F1} s; QEMU start to reporter READY (host): {vm.BootSeconds:F1} s");
        output.WriteLine(vm.Section("boot"));
        Assert.True(show["ActiveState"] == "active" && show["SubState"] == "running", all);
        Assert.Equal("0", show["NRestarts"]);
        Assert.Equal("notify", show["Type"]);
        Assert.Equal("main", show["NotifyAccess"]);
        Assert.Equal("30s", show["WatchdogUSec"]);
        Assert.Equal("appliance", show["User"]);
        Assert.Equal("appliance", show["Group"]);
        Assert.Equal("yes", show["NoNewPrivileges"]);
        Assert.Equal("cap_net_bind_service cap_sys_time", show["CapabilityBoundingSet"]);
        Assert.Equal("cap_net_bind_service cap_sys_time", show["AmbientCapabilities"]);
        Assert.Equal("strict", show["ProtectSystem"]);
        Assert.Equal("yes", show["ProtectHome"]);
        Assert.Equal("yes", show["PrivateTmp"]);
        Assert.Equal("yes", show["ProtectKernelTunables"]);
        Assert.Equal("invisible", show["ProtectProc"]);
        Assert.Equal("pid", show["ProcSubset"]);
        Assert.Equal("closed", show["DevicePolicy"]);
        Assert.Equal("char-pps r; char-ptp rw", show["DeviceAllow"]);
        Assert.Equal("yes", show["MemoryDenyWriteExecute"]);
        Assert.Equal("AF_INET AF_INET6 AF_UNIX", show["RestrictAddressFamilies"]);
        Assert.Equal("native", show["SystemCallArchitectures"]);
        // The allow-list is in force: clock calls in, privileged and resource calls out.
        string[] filter = show["SystemCallFilter"].Split(' ');
        Assert.Contains("clock_adjtime", filter);
        Assert.Contains("adjtimex", filter);
        Assert.DoesNotContain("chown", filter);
        Assert.DoesNotContain("setuid", filter);
        Assert.DoesNotContain("mount", filter);
        Assert.DoesNotContain("setrlimit", filter);
        // Kernel clock mode needs both off (the unit's comments say why).
        Assert.Equal("no", show["ProtectClock"]);
        Assert.Equal("no", show["PrivateUsers"]);
    }

    [Fact]
    public void Process_RunsAsTheServiceUser_WithExactlyTheTwoCapabilities_NoNewPrivileges_AndSeccomp()
    {
        Dictionary<string, string> status = Status();
        string all = vm.Section("status");
        Assert.Equal("appliance", status["Name"]);
        string[] uids = status["Uid"].Split('\t', StringSplitOptions.RemoveEmptyEntries);
        string[] gids = status["Gid"].Split('\t', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(uids.Length == 4 && uids.All(u => u == uids[0]) && uids[0] != "0", all);
        Assert.True(gids.Length == 4 && gids.All(g => g == gids[0]) && gids[0] != "0", all);
        Assert.Equal(TwoCapabilities, status["CapEff"]);
        Assert.Equal(TwoCapabilities, status["CapPrm"]);
        Assert.Equal(TwoCapabilities, status["CapAmb"]);
        Assert.Equal(TwoCapabilities, status["CapBnd"]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("2", status["Seccomp"]); // filter mode
        Assert.Equal("appliance", vm.Section("files").Split('\n').First(l => l.StartsWith("/var/lib/appliance ", StringComparison.Ordinal)).Split(' ')[1].Split(':')[0]);
    }

    [Fact]
    public void AppArmorProfile_IsLoadedAndEnforced_OnTheServiceProcess()
    {
        string apparmor = vm.Section("apparmor");
        Assert.StartsWith("appliance (enforce)", apparmor, StringComparison.Ordinal);
        Assert.Contains("enabled: Y", apparmor, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SystemdAnalyzeSecurity_InTheGuest_ScoresAsTheOfflineAnalysis()
    {
        string table = vm.Section("security");
        double score = Hardening.Exposure(table);
        double offline = Hardening.Exposure((await Hardening.AnalyzeOfflineAsync()).StdOut);
        output.WriteLine($"exposure in the guest: {score}; offline on the host: {offline}");
        Assert.True(score <= Hardening.ExposureBound, table);
        Assert.Equal(offline, score);
    }

    [Fact]
    public async Task NoAppArmorDenial_NorSeccompKill_WasLogged_AfterEveryClientRan()
    {
        // After the host's clients ran (NTP, NTS-KE, metrics, a reload; the report ran the control verb), not only at boot.
        await vm.ChronyQuery.Value;
        await vm.NtsClient.Value;
        await vm.Reload.Value;
        await vm.KernelSync.Value;
        await vm.ScrapeAsync();
        IReadOnlyDictionary<string, string> late = await vm.RequestAsync("report");
        string denials = late["denials"];
        string[] lines = denials.Split('\n').Where(l => l.Length > 0 && !l.StartsWith("sigsys:", StringComparison.Ordinal)).ToArray();
        Assert.True(lines.Length == 0, denials + "\n" + late["journal"]);
        Assert.Contains("sigsys: 0", denials, StringComparison.Ordinal);
        Assert.Contains("NRestarts=0", late["show"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Chronyd_GetsTheTime_OverTheForwardedNtpPort()
    {
        CommandResult result = await vm.ChronyQuery.Value;
        Assert.True(result.ExitCode == 0, result.ToString());
        Match match = ChronyOffset().Match(result.Output);
        Assert.True(match.Success, result.ToString());
        // The guest's clock is its own (TCG, started from the host's RTC): close, not exact.
        double offset = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        output.WriteLine($"chronyd -Q through the forwarded port: offset {offset} s");
        Assert.True(Math.Abs(offset) < 5, result.ToString());
    }

    [Fact]
    public async Task ChronydNtsClient_AuthenticatesThroughTheForwardedNtsKePort_AndIsToldTheForwardedNtpPort()
    {
        string log = await vm.NtsClient.Value;
        // RFC 8915 §4.1.7/§4.1.8: the NTS-KE server sends the NTP server and port the client must use.
        Assert.Contains($"changed port to {vm.NtpPort}", log, StringComparison.Ordinal);
        Assert.Contains("Authenticated   : Yes", log, StringComparison.Ordinal);
        Assert.Matches(@"127\.0\.0\.1\s+NTS\s+\d+\s+15\s", log);
    }

    [Fact]
    public async Task KernelClockMode_SynchronisesTheGuestClock_ToAnUpstream_UnderTheSandbox()
    {
        // clock_adjtime with CAP_SYS_TIME through the seccomp allow-list (@clock) and AppArmor's sys_time.
        string status = await vm.KernelSync.Value;
        Assert.True(ImageVm.IsKernelSynchronised(status), status);
        Assert.Contains($"{ImageVm.HostAlias}:", status, StringComparison.Ordinal);
        Assert.Matches(@"Stratum\s+:\s+2\b", status);
    }

    [Fact]
    public async Task Metrics_AnswerOverTheForwardedTcpPort()
    {
        MetricsScrape scrape = await vm.ScrapeAsync();
        Assert.Contains(scrape.Samples.Keys, k => k.StartsWith("appliance_ntp_requests_total", StringComparison.Ordinal));
        Assert.Contains(scrape.Samples.Keys, k => k.StartsWith("appliance_ntske_handshakes_total", StringComparison.Ordinal));
    }

    [Fact]
    public void FirstBoot_MadeTheKeyStorage_AndAPlaceholderCertificate_AndSaidWhereTheCertificateGoes()
    {
        string files = vm.Section("files");
        Assert.Contains("/var/lib/appliance appliance:appliance 700 directory", files, StringComparison.Ordinal);
        // The appliance wrote the key ring itself, 0600 (nts-ke.keys.storage).
        Assert.Contains("/var/lib/appliance/nts-keys appliance:appliance 600 regular file", files, StringComparison.Ordinal);
        Assert.Contains("/etc/appliance/tls root:appliance 750 directory", files, StringComparison.Ordinal);
        Assert.Contains("/etc/appliance/tls/key.pem root:appliance 640 regular file", files, StringComparison.Ordinal);
        Assert.Contains("/etc/appliance/tls/fullchain.pem root:appliance 644 regular file", files, StringComparison.Ordinal);
        Assert.Contains("/run/appliance appliance:appliance 750 directory", files, StringComparison.Ordinal);
        Assert.Contains("/run/appliance/control.sock appliance:appliance 660 socket", files, StringComparison.Ordinal);
        Assert.Contains("subject=CN = appliance", files, StringComparison.Ordinal);
        string console = vm.ConsoleLog;
        Assert.Contains("appliance first boot: NTS-KE key storage is /var/lib/appliance", console, StringComparison.Ordinal);
        Assert.Contains("/etc/appliance/tls/fullchain.pem", console, StringComparison.Ordinal);
    }

    [Fact]
    public void ShippedConfig_IsValidInTheImage_WithTheFirstBootCertificate()
    {
        string validate = vm.Section("validate");
        Assert.EndsWith("rc=0", validate, StringComparison.Ordinal);
    }

    [Fact]
    public void ControlVerb_AsRoot_UnderTheProfile_ReadsTheStatus()
    {
        string control = vm.Section("control");
        Assert.EndsWith("rc=0", control, StringComparison.Ordinal);
        Assert.Contains("Stratum", control, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SystemctlReload_RunsTheReloadVerb_InTheSandbox_WithoutARestart()
    {
        string reload = await vm.Reload.Value;
        Assert.Contains("rc=0", reload, StringComparison.Ordinal);
        Match pids = Regex.Match(reload, @"pid before=(\d+) after=(\d+)");
        Assert.True(pids.Success && pids.Groups[1].Value == pids.Groups[2].Value, reload);
    }

    [Fact]
    public void NoOtherTimeDaemon_TimesyncdMasked_RootLocked_UdpBuffersTuned()
    {
        string others = vm.Section("others");
        Assert.Contains("timesyncd: masked", others, StringComparison.Ordinal);
        Assert.DoesNotContain("present:", others, StringComparison.Ordinal);
        Assert.Contains("root: root L ", others, StringComparison.Ordinal);
        Assert.Contains("net.core.rmem_default 8388608", others, StringComparison.Ordinal);
        Assert.Contains("net.core.rmem_max 16777216", others, StringComparison.Ordinal);
    }
}
