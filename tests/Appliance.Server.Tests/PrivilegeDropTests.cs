using System.Globalization;
using System.Net;
using System.Text.Json;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;
using Appliance.Timestamping;

namespace Appliance.Server.Tests;

/// <summary>
/// `user:`: the real executable started as root switches to the user (here nobody, which every
/// Debian has) keeping only CAP_NET_BIND_SERVICE and CAP_SYS_TIME, on every thread, and still serves
/// NTP on port 123, NTS-KE, metrics, the status page and the control socket. Read from the kernel:
/// /proc/PID/status and every /proc/PID/task/TID/status of the running server.
/// </summary>
[Collection(RealPeers.Name)]
public class PrivilegeDropTests
{
    private const string Nobody = "65534";

    /// <summary>CAP_NET_BIND_SERVICE (10) and CAP_SYS_TIME (25), as /proc writes a capability set.</summary>
    private const string TwoCapabilities = "0000000002000400";

    private const string NoCapability = "0000000000000000";

    [Fact]
    public async Task RootWithUserNobody_InNamespace_EveryThreadIsNobodyWithTwoCapabilities_AndEveryServiceWorks()
    {
        Assert.Equal(0u, Privileges.Uids().Effective); // the tests run as root: that is what this proves
        await using NetworkNamespace ns = await NetworkNamespace.CreateAsync("privdrop");
        TestCertificate certificate = TestCertificate.Create("ntp.test", "127.0.0.1");
        string dir = certificate.Directory;
        // As an operator would: the private key 0600 and the user's, so only the user can read it.
        await Run.CheckedAsync("chown", "nobody:", certificate.KeyPath);
        await Run.CheckedAsync("chmod", "600", certificate.KeyPath);
        string keyFile = Path.Combine(dir, "state", "nts-keys.json");
        string socket = Path.Combine(dir, "run", "control.sock");
        string config = ApplianceProcess.WriteConfig($$"""
            user: nobody
            ntp: { listen: ["127.0.0.1:123"], workers: 2 }
            nts-ke: { listen: ["127.0.0.1:4460"], certificate: {{certificate.CertificatePath}}, private-key: {{certificate.KeyPath}}, keys: { storage: {{keyFile}} } }
            clock: { mode: software, local: { stratum: 3 } }
            metrics: { listen: "127.0.0.1:9975" }
            control: { socket: {{socket}} }
            """);

        await using PeerProcess server = ApplianceProcess.StartIn(ns, "serve", "--config", config);
        await server.WaitForOutputAsync("metrics on", TimeSpan.FromSeconds(60));

        // `ip netns exec` executes the command in place and the switch executes the appliance in place
        // again: the process started is the server.
        int pid = server.Id;
        string[] command = ApplianceProcess.Command();
        Assert.Equal(Path.GetFileName(command[0]), (await File.ReadAllTextAsync($"/proc/{pid}/comm")).Trim());
        Assert.Contains(command[^1], await File.ReadAllTextAsync($"/proc/{pid}/cmdline"), StringComparison.Ordinal);
        Assert.Contains("running as user nobody (uid 65534, gid 65534) with CAP_NET_BIND_SERVICE, CAP_SYS_TIME only", server.Output, StringComparison.Ordinal);

        // Every thread the kernel lists, the workers included, and the process's own view.
        List<(string Name, Dictionary<string, string> Fields)> threads = await ThreadsAsync(pid);
        Assert.True(threads.Count(t => t.Fields["Name"].StartsWith("ntp worker", StringComparison.Ordinal)) == 2, string.Join(", ", threads.Select(t => t.Name)));
        Assert.Contains(threads, t => t.Fields["Name"] == ".NET Finalizer"); // a thread the runtime made before Main
        AssertConfined(threads);

        // A real client gets the time over port 123.
        CommandResult ntpdig = await ns.RunAsync(TimeSpan.FromSeconds(30), "ntpdig", "-j", "-p", "4", "-t", "2", "127.0.0.1");
        Assert.True(ntpdig.ExitCode == 0, ntpdig.ToString());
        using (JsonDocument json = JsonDocument.Parse(ntpdig.StdOut))
        {
            Assert.Equal(3, json.RootElement.GetProperty("stratum").GetInt32());
        }

        // NTS-KE (the TLS exporter read after the switch), then an authenticated request on port 123 with its keys.
        var trust = certificate.Trust;
        NtsKeResult ke = await NetworkNamespaceThread.Run(ns.Name, () => NtsKeClient.ExchangeAsync(new IPEndPoint(IPAddress.Loopback, 4460), "ntp.test",
            trust, [AeadAlgorithm.AesSivCmac256], new CancellationTokenSource(TimeSpan.FromSeconds(20)).Token));
        Assert.True(ke.Succeeded, ke.ToString());
        (NtsResponseCheck check, int cookies) = await NetworkNamespaceThread.Run(ns.Name, () => QueryNtsAsync(ke));
        Assert.Equal(NtsResponseCheck.Authentic, check);
        Assert.Equal(1, cookies);

        // Metrics: prometheus-net's process_* read /proc/self, which stays readable to the
        // non-dumpable process itself; and the status page.
        CommandResult metrics = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sf", "http://127.0.0.1:9975/metrics");
        Assert.True(metrics.ExitCode == 0, metrics.ToString());
        Assert.Matches(@"(?m)^process_open_handles [1-9]", metrics.StdOut);
        Assert.Matches(@"(?m)^process_num_threads [1-9]", metrics.StdOut);
        Assert.Matches(@"(?m)^appliance_ntske_handshakes_total\{result=""ok"",reason=""ok""\} 1$", metrics.StdOut);
        CommandResult page = await ns.RunAsync(TimeSpan.FromSeconds(10), "curl", "-sf", "http://127.0.0.1:9975/");
        Assert.True(page.ExitCode == 0 && page.StdOut.Contains("<html", StringComparison.OrdinalIgnoreCase), page.ToString());

        // The control socket answers (a Unix socket is reached through the file system, not the namespace).
        CommandResult status = await ApplianceProcess.RunAsync("status", "--socket", socket);
        Assert.True(status.ExitCode == 0, status.ToString());
        Assert.Contains("Stratum", status.StdOut, StringComparison.Ordinal);

        // Modes and owners: made for the user, no more open than they need be.
        Assert.Equal("600 65534 65534", await ModeAndOwner(keyFile));
        Assert.Equal("700 65534 65534", await ModeAndOwner(Path.GetDirectoryName(keyFile)!));
        Assert.Equal("660 65534 65534", await ModeAndOwner(socket));
        Assert.Equal("750 65534 65534", await ModeAndOwner(Path.GetDirectoryName(socket)!));

        // Again once every service has worked: the threads made for them since are confined too.
        AssertConfined(await ThreadsAsync(pid));
        Assert.False(server.HasExited, server.Output);
    }

    /// <summary>The process's status and each thread's; a thread that ends while they are read is left out.</summary>
    private static async Task<List<(string Name, Dictionary<string, string> Fields)>> ThreadsAsync(int pid)
    {
        List<(string Name, Dictionary<string, string> Fields)> threads = [("process", StatusFields(await File.ReadAllTextAsync($"/proc/{pid}/status")))];
        foreach (string task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            string status;
            try
            {
                status = await File.ReadAllTextAsync(Path.Combine(task, "status"));
            }
            catch (IOException) when (!Directory.Exists(task))
            {
                continue;
            }
            Dictionary<string, string> fields = StatusFields(status);
            threads.Add(($"{Path.GetFileName(task)} ({fields["Name"]})", fields));
        }
        return threads;
    }

    private static void AssertConfined(List<(string Name, Dictionary<string, string> Fields)> threads)
    {
        foreach ((string name, Dictionary<string, string> fields) in threads)
        {
            Assert.True(fields["Uid"] == $"{Nobody} {Nobody} {Nobody} {Nobody}", $"{name}: Uid {fields["Uid"]}");
            Assert.True(fields["Gid"] == $"{Nobody} {Nobody} {Nobody} {Nobody}", $"{name}: Gid {fields["Gid"]}");
            Assert.True(fields["Groups"] == Nobody, $"{name}: Groups {fields["Groups"]}");
            foreach (string set in new[] { "CapEff", "CapPrm", "CapBnd" })
            {
                Assert.True(fields[set] == TwoCapabilities, $"{name}: {set} {fields[set]}");
            }
            foreach (string set in new[] { "CapInh", "CapAmb" })
            {
                Assert.True(fields[set] == NoCapability, $"{name}: {set} {fields[set]}");
            }
        }
    }

    [Fact]
    public async Task RootWithUser_KeyOnlyRootCanRead_FailsNamingTheChownThatFixesIt()
    {
        TestCertificate certificate = TestCertificate.Create("ntp.test");
        await Run.CheckedAsync("chmod", "600", certificate.KeyPath); // root's, 0600: nobody cannot read it

        CommandResult result = await ApplianceProcess.RunAsync("serve", "--config", NobodyWithNts(certificate, $"{certificate.Directory}/keys/k.json"));

        Assert.True(result.ExitCode == Program.ExitConfigError, result.ToString());
        Assert.Contains($"(the appliance runs as nobody; fix: chown nobody: {certificate.CertificatePath} {certificate.KeyPath})", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RootWithUser_KeyStorageOnlyRootCanEnter_FailsNamingTheChownThatFixesIt()
    {
        TestCertificate certificate = TestCertificate.Create("ntp.test");
        string storage = Path.Combine(certificate.Directory, "keys");
        Directory.CreateDirectory(storage, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute); // root's, as a root run left it

        CommandResult result = await ApplianceProcess.RunAsync("serve", "--config", NobodyWithNts(certificate, $"{storage}/k.json"));

        Assert.True(result.ExitCode == Program.ExitConfigError, result.ToString());
        Assert.Contains($"cannot load the NTS cookie keys ({storage}/k.json)", result.StdErr, StringComparison.Ordinal);
        Assert.Contains($"(the appliance runs as nobody; fix: chown -R nobody: {storage})", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MarkedAsSwitchingButNotExecutedByTheSwitch_RefusesToServe()
    {
        // The second image trusts the state the kernel shows, not the marker: here still root, all uids 0.
        CommandResult result = await Run.CommandAsync("env", [$"{ServiceUser.MarkerVariable}=1", "dotnet", ApplianceProcess.Dll, "serve", "--config", PlainConfig("user: nobody")],
            TimeSpan.FromSeconds(60));

        Assert.True(result.ExitCode == Program.ExitConfigError, result.ToString());
        Assert.Contains("cannot finish switching to user nobody: the uids are 0 (real) and 0 (effective), not 65534 and 0", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NotRoot_WithUserSomeoneElse_ExitsWithTheConfigErrorCodeAndSaysHowToStart()
    {
        string config = PlainConfig("user: daemon");

        CommandResult result = await AsNobodyAsync("serve", "--config", config);

        Assert.True(result.ExitCode == Program.ExitConfigError, result.ToString());
        Assert.Contains("`user: daemon` needs the appliance started as root, to switch to daemon (uid 1), but it was started as uid 65534", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NotRoot_WithUserItself_Serves()
    {
        string config = PlainConfig("user: nobody");

        await using PeerProcess server = new("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "dotnet", ApplianceProcess.Dll, "serve", "--config", config]);

        await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(60));
        Assert.Contains("running as user nobody (uid 65534)", server.Output, StringComparison.Ordinal);
        Assert.Equal($"Uid:\t{Nobody}\t{Nobody}\t{Nobody}\t{Nobody}", StatusLine(await File.ReadAllTextAsync($"/proc/{server.Id}/status"), "Uid"));
    }

    [Fact]
    public async Task RootWithoutUser_LogsOneWarningSayingHowToDrop()
    {
        string config = PlainConfig("");

        await using PeerProcess server = ApplianceProcess.Start("serve", "--config", config);

        await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(60));
        string[] warnings = server.Output.Split('\n').Where(l => l.Contains("running as root", StringComparison.Ordinal)).ToArray();
        string warning = Assert.Single(warnings);
        Assert.Contains("warn", warning, StringComparison.Ordinal);
        Assert.Contains("set `user: appliance`", warning, StringComparison.Ordinal);
        Assert.Contains("systemd unit", warning, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownUser_IsAnErrorAtItsLineAndColumn_NamingTheUser()
    {
        ConfigResult result = ConfigLoader.Parse("clock: { mode: software, local: {} }\nmetrics: { listen: off }\nuser:   no-such-user-17\n");

        ConfigError error = Assert.Single(result.Errors);
        Assert.Equal((3, 9), (error.Line, error.Column));
        Assert.Equal("user: no user 'no-such-user-17' on this machine", error.Message);
        Assert.Contains("useradd --system", error.Fix, StringComparison.Ordinal);
        // The text alone is valid: a configuration for another machine names its own users.
        Assert.True(ConfigLoader.Bind("clock: { mode: software, local: {} }\nuser: no-such-user-17\n").IsValid);
    }

    [Theory]
    [InlineData("user: root\n", "user: 'root' is uid 0")]
    [InlineData("user: \"bad name\"\n", "'user' is 'bad name', which is not a user name")]
    [InlineData("user: [nobody]\n", "'user' must be a single value")]
    public void User_RootOrNotAName_IsAnError(string yaml, string message)
    {
        ConfigResult result = ConfigLoader.Parse("clock: { mode: software, local: {} }\n" + yaml);

        ConfigError error = Assert.Single(result.Errors);
        Assert.Equal(2, error.Line);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_UnknownUser_PrintsLineColumnAndExitsWithTheConfigErrorCode()
    {
        string config = ApplianceProcess.WriteConfig("clock: { mode: software, local: {} }\nuser: no-such-user-17\n");

        CommandResult result = await ApplianceProcess.RunAsync("validate", config);

        Assert.True(result.ExitCode == Program.ExitConfigError, result.ToString());
        Assert.Contains($"{config}:2:7: error: user: no user 'no-such-user-17' on this machine", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public void Reload_ChangedUser_NeedsARestart()
    {
        ApplianceConfig old = ConfigLoader.Bind("clock: { mode: software, local: {} }\n").Config!;
        ApplianceConfig next = ConfigLoader.Bind("clock: { mode: software, local: {} }\nuser: nobody\n").Config!;

        ConfigKey changed = Assert.Single(ConfigDiff.Changed(old, next));

        Assert.Same(ConfigKeys.User, changed);
        Assert.Equal(Reload.Restart, changed.Reload);
    }

    /// <summary>NTP alone on a free loopback port, software clock, nothing else open; <paramref name="user"/> a first line.</summary>
    private static string PlainConfig(string user) => ApplianceProcess.WriteConfig(
        $"{user}\nntp: {{ listen: [\"127.0.0.1:{Ports.FreeUdpPort()}\"], workers: 1 }}\nclock: {{ mode: software, local: {{}} }}\nmetrics: {{ listen: off }}\ncontrol: {{ socket: off }}\n");

    /// <summary>`user: nobody` with NTS-KE on free loopback ports, keys kept at <paramref name="storage"/>.</summary>
    private static string NobodyWithNts(TestCertificate certificate, string storage) => ApplianceProcess.WriteConfig($$"""
        user: nobody
        ntp: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"], workers: 1 }
        nts-ke: { listen: ["127.0.0.1:{{Ports.FreeTcpPort()}}"], certificate: {{certificate.CertificatePath}}, private-key: {{certificate.KeyPath}}, keys: { storage: {{storage}} } }
        clock: { mode: software, local: {} }
        metrics: { listen: off }
        control: { socket: off }
        """);

    private static async Task<(NtsResponseCheck, int)> QueryNtsAsync(NtsKeResult ke)
    {
        var uid = new byte[32];
        Random.Shared.NextBytes(uid);
        var packet = new byte[2048];
        int n = NtsClientPacket.WriteRequest(packet, 0x0102030405060708, uid, ke.Cookies[0], 0, new byte[16], new AesSiv(ke.C2S));
        byte[]? response = await NtpQuery.ExchangeAsync(new IPEndPoint(IPAddress.Loopback, 123), packet[..n], TimeSpan.FromSeconds(5));
        if (response is null)
        {
            return (NtsResponseCheck.Invalid, 0);
        }
        NtsResponseCheck check = NtsClientPacket.CheckResponse(response, uid, new AesSiv(ke.S2C), new byte[2048], out int cookies);
        return (check, cookies);
    }

    private static Task<CommandResult> AsNobodyAsync(params string[] args) =>
        Run.CommandAsync("setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "dotnet", ApplianceProcess.Dll, .. args], TimeSpan.FromSeconds(60));

    /// <summary>"KEY:\tVALUE" lines of a /proc status file, the value's tabs as single spaces.</summary>
    private static Dictionary<string, string> StatusFields(string status) =>
        status.Split('\n').Where(l => l.Contains(':', StringComparison.Ordinal)).ToDictionary(
            l => l[..l.IndexOf(':', StringComparison.Ordinal)],
            l => string.Join(' ', l[(l.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries)));

    private static string StatusLine(string status, string key) => status.Split('\n').Single(l => l.StartsWith(key + ":", StringComparison.Ordinal));

    private static async Task<string> ModeAndOwner(string path) =>
        (await Run.CheckedAsync("stat", "-c", "%a %u %g", path)).StdOut.Trim();
}
