using System.Text.RegularExpressions;
using Appliance.Server.Hosting;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>Real NTS clients against the appliance: chronyd 4.3 (GnuTLS) and NTPsec's ntpd (OpenSSL).</summary>
[Collection(RealPeers.Name)]
public partial class NtsRealClientTests
{
    /// <summary>A long-running chronyd NTS client (never touching the clock: -x) with its own control socket.</summary>
    private sealed class ChronyClient : IAsyncDisposable
    {
        private readonly PeerProcess _process;
        private readonly string _socket;

        private ChronyClient(PeerProcess process, string socket)
        {
            _process = process;
            _socket = socket;
        }

        public static async Task<ChronyClient> StartAsync(NtsServerFixture fixture)
        {
            string dir = Path.Combine(fixture.Certificate.Directory, "chrony");
            Directory.CreateDirectory(dir);
            await Run.CheckedAsync("chown", "_chrony:_chrony", dir);
            await Run.CheckedAsync("chmod", "750", dir);
            string conf = Path.Combine(fixture.Certificate.Directory, "client.conf");
            await File.WriteAllTextAsync(conf, $"""
                server 127.0.0.1 iburst nts ntsport {fixture.KePort} minpoll 0 maxpoll 0
                ntstrustedcerts {fixture.Certificate.CertificatePath}
                ntsdumpdir {dir}
                port 0
                cmdport 0
                bindcmdaddress {dir}/chronyd.sock
                pidfile {dir}/chronyd.pid

                """);
            var process = new PeerProcess("chronyd", ["-x", "-d", "-f", conf]);
            return new ChronyClient(process, $"{dir}/chronyd.sock");
        }

        public string Log => _process.Output;

        public Task WaitForLogAsync(string text) => _process.WaitForOutputAsync(text, TimeSpan.FromSeconds(30));

        public async Task<string> ChronycAsync(string command) =>
            (await Run.CheckedAsync("chronyc", "-h", _socket, "-n", command)).StdOut;

        public ValueTask DisposeAsync() => _process.DisposeAsync();
    }

    [GeneratedRegex(@"^127\.0\.0\.1\s+NTS\s+\d+\s+(\d+)\s+(\d+)\s+\S+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", RegexOptions.Multiline)]
    private static partial Regex AuthData();

    /// <summary>authdata columns: Type, KLen, Last, Atmp, NAK, Cook, CLen.</summary>
    private static (int Type, int NaKs, int Cookies, int CookieLength) ParseAuthData(string text)
    {
        Match m = AuthData().Match(text);
        Assert.True(m.Success, text);
        int[] v = Enumerable.Range(1, 6).Select(i => int.Parse(m.Groups[i].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return (v[0], v[3], v[4], v[5]);
    }

    [Fact]
    public async Task Chronyd_AuthenticatesWithNts_Aead15_8Cookies_AndSelectsTheAppliance()
    {
        var fixture = new NtsServerFixture();
        await using ApplianceServer server = await fixture.StartAsync();
        await using ChronyClient chrony = await ChronyClient.StartAsync(fixture);

        await chrony.WaitForLogAsync("Selected source 127.0.0.1");

        var (type, naks, cookies, cookieLength) = ParseAuthData(await chrony.ChronycAsync("authdata"));
        Assert.Equal(15, type);
        Assert.Equal(0, naks);
        Assert.Equal(8, cookies);
        Assert.Equal(104, cookieLength);
        Assert.Contains($"changed port to {fixture.NtpPort}", chrony.Log, StringComparison.Ordinal);
        string ntpdata = await chrony.ChronycAsync("ntpdata");
        Assert.Contains("Authenticated   : Yes", ntpdata, StringComparison.Ordinal);
        Assert.Matches(@"\^\* 127\.0\.0\.1\s+3 ", await chrony.ChronycAsync("sources"));
    }

    [Fact]
    public async Task ApplianceRestart_ChronydKeepsAuthenticating_WithNoNakAndNoNewKeyExchange()
    {
        var fixture = new NtsServerFixture();
        ApplianceServer first = await fixture.StartAsync();
        await using ChronyClient chrony = await ChronyClient.StartAsync(fixture);
        await chrony.WaitForLogAsync("Selected source 127.0.0.1");
        await first.DisposeAsync();
        // The same configuration (and so the same key file) comes back on the same ports.
        await using ApplianceServer second = await fixture.StartAsync();
        MetricsScrape scrape = default!;
        for (int i = 0; i < 100; i++)
        {
            scrape = await MetricsScrape.FetchAsync($"http://{second.MetricsEndPoint}/metrics");
            if (scrape["appliance_nts_requests_total{kind=\"respond\",reason=\"served\"}"] >= 4)
            {
                break;
            }
            await Task.Delay(200);
        }
        Assert.True(scrape["appliance_nts_requests_total{kind=\"respond\",reason=\"served\"}"] >= 4, "chronyd did not come back over NTS");
        Assert.Equal(0, scrape["appliance_ntske_handshakes_total{result=\"ok\",reason=\"ok\"}"]);
        Assert.Equal(0, scrape["appliance_nts_requests_total{kind=\"kod\",reason=\"nts_cookie_unknown_key\"}"]);
        Assert.Equal(0, scrape["appliance_nts_requests_total{kind=\"kod\",reason=\"nts_cookie_invalid\"}"]);
        Assert.Equal(0, ParseAuthData(await chrony.ChronycAsync("authdata")).NaKs);
    }

    [Fact]
    public async Task NtpsecNtpd_NtsClient_InNamespace_GetsCookiesAndSynchronises()
    {
        string ntpd = Path.Combine(Repo.PeersDirectory, "ntpsec-root", "usr", "sbin", "ntpd");
        string ntpq = Path.Combine(Repo.PeersDirectory, "ntpsec-root", "usr", "bin", "ntpq");
        Assert.True(File.Exists(ntpd), $"{ntpd} is missing: run tests/peers/install.sh (make test does)");
        await using NetworkNamespace ns = await NetworkNamespace.CreateAsync("ntsec");
        // ntpd resolves ntp.test through the namespace's own hosts file (ip netns exec bind-mounts it).
        string etc = $"/etc/netns/{ns.Name}";
        Directory.CreateDirectory(etc);
        try
        {
            await File.WriteAllTextAsync(Path.Combine(etc, "hosts"), "127.0.0.1 localhost\n127.0.0.1 ntp.test\n");
            TestCertificate certificate = TestCertificate.Create("ntp.test");
            string dir = certificate.Directory;
            string config = ApplianceProcess.WriteConfig($"""
                ntp: {"{"} listen: ["127.0.0.1:11123"], workers: 1 {"}"}
                nts-ke: {"{"} listen: ["127.0.0.1:4460"], certificate: {certificate.CertificatePath}, private-key: {certificate.KeyPath}, keys: {"{"} storage: {dir}/keys.json {"}"} {"}"}
                clock: {"{"} mode: software, local: {"{"} stratum: 3 {"}"} {"}"}
                metrics: {"{"} listen: off {"}"}
                """);
            await using PeerProcess server = ApplianceProcess.StartIn(ns, "serve", "--config", config);
            await server.WaitForOutputAsync("serving NTS-KE", TimeSpan.FromSeconds(30));
            string ntpConf = Path.Combine(dir, "ntpd.conf");
            await File.WriteAllTextAsync(ntpConf, $"server ntp.test nts ca {certificate.CertificatePath} iburst minpoll 3 maxpoll 3\nrestrict default\nrestrict 127.0.0.1\ndisable kernel\n");
            string log = Path.Combine(dir, "ntpd.log");
            // CAP_SYS_TIME dropped: the kernel refuses any clock change ntpd might attempt.
            await using var client = new PeerProcess("ip", ns.Exec("capsh", "--drop=cap_sys_time", "--",
                "-c", $"exec {ntpd} -n -c {ntpConf} -l {log} -p {dir}/ntpd.pid"));

            string peers = "";
            for (int i = 0; i < 60 && !peers.Contains("*127.0.0.1", StringComparison.Ordinal); i++)
            {
                await Task.Delay(1000);
                peers = (await ns.RunAsync(TimeSpan.FromSeconds(10), ntpq, "-n", "-c", "peers", "127.0.0.1")).StdOut;
            }
            string ntpdLog = File.Exists(log) ? await File.ReadAllTextAsync(log) : "";
            Assert.Contains("Good ALPN", ntpdLog, StringComparison.Ordinal);
            Assert.Contains("Using port 11123", ntpdLog, StringComparison.Ordinal);
            Assert.Contains("Got 8 cookies, length 104, aead=15", ntpdLog, StringComparison.Ordinal);
            // t = 8: an NTS-authenticated association; '*': the selected system peer.
            Assert.Matches(@"\*127\.0\.0\.1\s+\S+\s+3 8 ", peers);
        }
        finally
        {
            Directory.Delete(etc, recursive: true);
        }
    }

    [Fact]
    public async Task Sighup_ReloadsTheCertificateWithoutRestarting()
    {
        var fixture = new NtsServerFixture();
        string config = ApplianceProcess.WriteConfig(fixture.Yaml.Replace("127.0.0.1:0", "off", StringComparison.Ordinal).Replace("listen: \"off\"", "listen: off", StringComparison.Ordinal));
        await using PeerProcess server = ApplianceProcess.Start("serve", "--config", config);
        await server.WaitForOutputAsync("serving NTS-KE", TimeSpan.FromSeconds(30));

        await Run.CheckedAsync("kill", "-HUP", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));

        await server.WaitForOutputAsync("NTS-KE certificate reloaded (SIGHUP)", TimeSpan.FromSeconds(10));
        Assert.False(server.HasExited);
        Assert.True((await fixture.KeAsync()).Succeeded);
    }
}
