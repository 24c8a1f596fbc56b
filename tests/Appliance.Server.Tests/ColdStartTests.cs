using Appliance.Discipline;
using Appliance.Protocol;
using Appliance.Server.Clock;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>
/// A cold start (issue #21, docs/deploying.md#cold-start): the floor for "now" from the build and
/// the last known time, a system clock behind it treated as wrong, and what NTS-KE checks
/// certificate dates against.
/// </summary>
[Collection(RealPeers.Name)]
public class ColdStartTests
{
    private const long Day = 86_400_000_000_000;

    private static string TempFile() => Path.Combine(Directory.CreateTempSubdirectory("appliance-coldstart").FullName, "last-known-time");

    private static async Task<ApplianceServer> StartAsync(string clock, string sources, CapturedLogs logs, SimulatedKernel? kernel = null)
    {
        ConfigResult config = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"], workers: 1 }
            clock: {{clock}}
            {{sources}}
            metrics: { listen: off }
            """);
        Assert.True(config.IsValid, string.Join("\n", config.Errors));
        return await ApplianceServer.StartAsync(config.Config!, l =>
        {
            l.ClearProviders();
            l.AddProvider(logs);
        }, kernel?.Clock);
    }

    [Fact]
    public void TheBuild_CarriesTheTimeOfItsCommit()
    {
        // 2026-01-01 (the GPS rollover guard's bound) < the commit's time <= now.
        Assert.InRange(BuildInfo.BuildUnixSeconds, 1_767_225_600, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 60);
        Assert.Equal(0, BuildInfo.ParseSeconds(null));
        Assert.Equal(0, BuildInfo.ParseSeconds("-5"));
        Assert.Equal(1_796_000_000, BuildInfo.ParseSeconds("1796000000"));
    }

    [Fact]
    public void LastKnownTime_RoundTrips_Privately_AndAFileThatDoesNotParseSaysHowToMend()
    {
        string path = TempFile();
        Assert.Null(LastKnownTime.Read(path));
        const long time = 1_796_400_123_456_789_000;
        LastKnownTime.Write(path, time);
        Assert.Equal(time - (time % 100), LastKnownTime.Read(path));
        Assert.Equal("2026-12-04T16:02:03.4567890Z\n", File.ReadAllText(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        File.WriteAllText(path, "yesterday");
        var e = Assert.Throws<InvalidDataException>(() => LastKnownTime.Read(path));
        Assert.Contains("remove it", e.Message, StringComparison.Ordinal);

        // Unreadable, it is left out of the floor with a warning; the build time still holds.
        var logs = new CapturedLogs();
        using var factory = LoggerFactory.Create(l => l.AddProvider(logs));
        TimeFloor floor = ClockService.Floor(1_796_000_000, path, factory.CreateLogger("test"));
        Assert.Equal((1_796_000_000L - 86_400) * 1_000_000_000, floor.UnixNanoseconds); // a day before the commit
        Assert.StartsWith("a day before the commit", floor.Origin, StringComparison.Ordinal);
        Assert.Contains(logs.Lines, l => l.Contains("cannot read the last known time", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ASystemClockBehindTheLastKnownTime_IsWrong_NotServedAsLocal_AndCertificatesAreCheckedAtTheFloor()
    {
        string path = TempFile();
        long ahead = SystemClock.RealtimeNanoseconds() + Day;
        LastKnownTime.Write(path, ahead);
        var logs = new CapturedLogs();
        await using ApplianceServer server = await StartAsync(
            $"{{ mode: software, local: {{ stratum: 10 }}, last-known-time: \"{path}\", skip-certificate-dates: 2 }}", "", logs);

        Assert.True(server.Clock.ClockBehindFloor);
        // LI=3, stratum 16: the local reference would serve a clock known to be a day behind.
        Assert.False(server.State.Current.IsSynchronised);
        Assert.Equal(ServerState.UnsynchronisedStratum, server.State.Current.Stratum);
        string line = Assert.Single(logs.Lines, l => l.Contains("it is wrong", StringComparison.Ordinal));
        Assert.Contains($"the last known good time, from {path}", line, StringComparison.Ordinal);
        Assert.Contains("clock.local is not served", line, StringComparison.Ordinal);

        CertificateTime time = server.Clock.CertificateTimeNow();
        Assert.Equal(ahead / 100, (time.VerificationTime - DateTimeOffset.UnixEpoch).Ticks);
        Assert.True(time.IgnoreValidityPeriod); // no clock update yet, of the 2 configured
    }

    [Fact]
    public async Task KernelMode_StepsAClockBehindTheFloor_ToIt_BeforeAnythingElse()
    {
        string path = TempFile();
        LastKnownTime.Write(path, SystemClock.RealtimeNanoseconds() + Day);
        var kernel = new SimulatedKernel();
        await using TestNtpServer upstream = TestNtpServer.Shifted(0);
        var logs = new CapturedLogs();
        await using ApplianceServer server = await StartAsync($"{{ mode: kernel, last-known-time: \"{path}\" }}",
            Upstreams(upstream), logs, kernel);

        Appliance.Timestamping.Interop.Timex step = kernel.Calls.First(c => (c.Modes & KernelClock.AdjSetOffset) != 0);
        double seconds = step.TimeSeconds + (step.TimeFraction / 1e9);
        Assert.InRange(seconds, 86_399, 86_400);
        // One line says it all, the step included (issue #21).
        Assert.Single(logs.Lines, l => l.Contains("it is wrong", StringComparison.Ordinal) && l.Contains("stepping it to that time first", StringComparison.Ordinal));
    }

    private static string Upstreams(params TestNtpServer[] upstreams) =>
        "sources: [ " + string.Join(", ", upstreams.Select(u => $"{{ ntp: {{ address: \"{u.EndPoint}\", minpoll: 0, maxpoll: 1 }} }}")) + " ]";

    [Fact]
    public async Task ASynchronisedClock_WritesTheLastKnownTime_WhenTwoSourcesAgree_AndChecksCertificatesAgainstItself()
    {
        string path = TempFile();
        await using TestNtpServer a = TestNtpServer.Shifted(0);
        await using TestNtpServer b = TestNtpServer.Shifted(0);
        var logs = new CapturedLogs();
        await using (ApplianceServer server = await StartAsync($"{{ mode: software, last-known-time: \"{path}\", skip-certificate-dates: 1 }}",
            Upstreams(a, b), logs))
        {
            Assert.False(server.Clock.ClockBehindFloor);
            await Eventually.TrueAsync(() => File.Exists(path), TimeSpan.FromSeconds(30), () => $"stratum {server.State.Current.Stratum}");
            long written = LastKnownTime.Read(path)!.Value;
            Assert.InRange((written - SystemClock.RealtimeNanoseconds()) / 1e9, -5, 0.1);
            await Eventually.TrueAsync(() => !server.Clock.CertificateTimeNow().IgnoreValidityPeriod, TimeSpan.FromSeconds(10), () => "still skipping");
            Assert.InRange((server.Clock.CertificateTimeNow().VerificationTime - DateTimeOffset.UtcNow).TotalSeconds, -1, 1);
        }
        // At stop, once more: the file is as late as the stop.
        long atStop = LastKnownTime.Read(path)!.Value;
        Assert.InRange((atStop - SystemClock.RealtimeNanoseconds()) / 1e9, -1, 0.1);
    }

    [Fact]
    public async Task OneUnauthenticatedSource_NeverSetsTheLastKnownTime()
    {
        // Else one spoofed plain-NTP answer at a first synchronisation (which may step any amount)
        // would plant a far-future floor that every later start steps the clock to.
        string path = TempFile();
        await using TestNtpServer ahead = TestNtpServer.Shifted(86_400 * 365);
        var logs = new CapturedLogs();
        await using (ApplianceServer server = await StartAsync($"{{ mode: software, last-known-time: \"{path}\" }}", Upstreams(ahead), logs))
        {
            await Eventually.TrueAsync(() => server.State.Current.Stratum == 2, TimeSpan.FromSeconds(20), () => $"stratum {server.State.Current.Stratum}");
            await Task.Delay(TimeSpan.FromSeconds(2)); // two ticks synchronised: a trusted one would have written by now
        }
        Assert.False(File.Exists(path));
    }

    /// <summary>The appliance's own Roughtime server (software mode): on its local clock, or synchronised to <paramref name="upstream"/>.</summary>
    private static async Task<ApplianceServer> RoughtimeServerAsync(TestNtpServer? upstream = null)
    {
        string key = Path.Combine(Directory.CreateTempSubdirectory("appliance-roughtime").FullName, "roughtime.key");
        string time = upstream is null
            ? "clock: { mode: software, local: { stratum: 10 } }"
            : $"clock: {{ mode: software }}\nsources: [ {{ ntp: {{ address: \"{upstream.EndPoint}\", minpoll: 0, maxpoll: 1 }} }} ]";
        ConfigResult config = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"], workers: 1 }
            {{time}}
            metrics: { listen: off }
            roughtime: { listen: ["127.0.0.1:0"], tcp: false, key: {{key}} }
            """);
        Assert.True(config.IsValid, string.Join("\n", config.Errors));
        ApplianceServer server = await ApplianceServer.StartAsync(config.Config!, l => l.ClearProviders());
        await Eventually.TrueAsync(() => server.State.Current.IsSynchronised, TimeSpan.FromSeconds(20), () => "the Roughtime server's clock is not synchronised");
        return server;
    }

    private static string RoughtimeEntry(ApplianceServer roughtime, byte[]? key = null) =>
        $"{{ address: \"{roughtime.Roughtime!.UdpEndPoints[0]}\", public-key: \"{Convert.ToBase64String(key ?? roughtime.Roughtime.Keys.PublicKey)}\" }}";


    [Fact]
    public async Task Roughtime_BoundsNow_AndASourceWithinTheBound_Synchronises()
    {
        await using ApplianceServer roughtime = await RoughtimeServerAsync();
        await using TestNtpServer upstream = TestNtpServer.Shifted(0);
        var logs = new CapturedLogs();
        await using ApplianceServer server = await StartAsync($"{{ mode: software, roughtime: [ {RoughtimeEntry(roughtime)} ] }}", Upstreams(upstream), logs);

        await Eventually.TrueAsync(() => server.State.Current.Stratum == 2, TimeSpan.FromSeconds(20), () => string.Join("\n", logs.Lines));
        TimeBound bound = Assert.NotNull(server.Clock.Bound);
        Assert.Equal(1, bound.Agreeing);
        Assert.True(bound.Contains(SystemClock.RealtimeNanoseconds(), SystemClock.MonotonicNanoseconds()));
        Assert.Contains(logs.Lines, l => l.Contains("1 of 1 servers agree", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Contains("refused", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ARoughtimeServerAnHourAhead_MakesTheFirstSynchronisationToTheTruth_Refused_Loudly()
    {
        await using TestNtpServer lying = TestNtpServer.Shifted(3600);
        await using ApplianceServer roughtime = await RoughtimeServerAsync(lying);
        await using TestNtpServer upstream = TestNtpServer.Shifted(0);
        var logs = new CapturedLogs();
        await using ApplianceServer server = await StartAsync($"{{ mode: software, roughtime: [ {RoughtimeEntry(roughtime)} ] }}", Upstreams(upstream), logs);

        await Eventually.TrueAsync(() => logs.Lines.Any(l => l.Contains($"refused {upstream.EndPoint}", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(20), () => string.Join("\n", logs.Lines));
        int refusedAt = upstream.Requests;
        await Eventually.TrueAsync(() => upstream.Requests >= refusedAt + 3, TimeSpan.FromSeconds(30), () => $"{upstream.Requests} requests");
        Assert.False(server.State.Current.IsSynchronised);
        // The bound, an hour ahead, is what certificates would be checked against.
        double ahead = (server.Clock.CertificateTimeNow().VerificationTime - DateTimeOffset.UtcNow).TotalSeconds;
        Assert.InRange(ahead, 3500, 3700);
        Assert.Single(logs.Lines, l => l.Contains("refused", StringComparison.Ordinal)); // once a minute per source, not per sample
    }

    [Fact]
    public async Task ARoughtimeServerAskedUnderAnotherKey_IsSilent_TheLogSaysToCheckTheKey_AndItBoundsNothing()
    {
        await using ApplianceServer roughtime = await RoughtimeServerAsync();
        await using TestNtpServer upstream = TestNtpServer.Shifted(0);
        var logs = new CapturedLogs();
        byte[] wrong = new byte[32];
        wrong[0] = 1;
        await using ApplianceServer server = await StartAsync($"{{ mode: software, roughtime: [ {RoughtimeEntry(roughtime, wrong)} ] }}", Upstreams(upstream), logs);

        await Eventually.TrueAsync(() => server.State.Current.Stratum == 2, TimeSpan.FromSeconds(20), () => string.Join("\n", logs.Lines));
        Assert.Null(server.Clock.Bound);
        // RFC 10049 §5.2: a server does not answer a request whose SRV names a key it does not hold.
        Assert.Contains(logs.Lines, l => l.Contains("no answer", StringComparison.Ordinal) && l.Contains("check the public key", StringComparison.Ordinal));
    }
}
