using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Appliance.Protocol;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Nts;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Tests;

/// <summary>Live reload and forced key rotation, each proven through the running server (in process, a temporary file).</summary>
public class ReloadTests
{
    /// <summary>A server started from a file of its own that the test rewrites.</summary>
    internal sealed class FromFile : IAsyncDisposable
    {
        private FromFile(string path, ApplianceServer server, CapturedLogs logs)
        {
            Path = path;
            Server = server;
            Logs = logs;
        }

        public string Path { get; }

        public ApplianceServer Server { get; }

        public CapturedLogs Logs { get; }

        public IPEndPoint Ntp => Server.NtpEndPoints[0];

        public static async Task<FromFile> StartAsync(string yaml)
        {
            string path = ApplianceProcess.WriteConfig(yaml);
            ConfigResult result = ConfigLoader.LoadFile(path);
            Assert.True(result.IsValid, string.Join("\n", result.Errors));
            var logs = new CapturedLogs();
            ApplianceServer server = await ApplianceServer.StartAsync(result.Config!, l =>
            {
                l.ClearProviders();
                l.AddProvider(logs);
            }, configPath: path);
            return new FromFile(path, server, logs);
        }

        public async Task<ReloadResult> ReloadAsync(string yaml)
        {
            await File.WriteAllTextAsync(Path, yaml);
            return await Server.ReloadAsync();
        }

        public async ValueTask DisposeAsync()
        {
            await Server.DisposeAsync();
            File.Delete(Path);
        }
    }

    private static string Plain(int port, string ntp = "rate-limit: off", string extra = "", string metrics = "off") => $"""
        ntp: {"{"} listen: ["127.0.0.1:{port}"], workers: 2, {ntp} {"}"}
        clock: {"{"} mode: software, local: {"{"} stratum: 10 {"}"} {"}"}
        metrics: {"{"} listen: {metrics} {"}"}
        {extra}
        """;

    // An answer is waited for as long as a loaded host may take (fresh-clone CI: the first request after the AOT server's start
    // went unanswered within 400 ms); silence is only waited out for 400 ms, since each Silent costs the whole wait.
    private static Task<byte[]?> AskFrom(string source, IPEndPoint server, ulong nonce) =>
        NtpQuery.ExchangeFromAsync(IPAddress.Parse(source), server, NtpQuery.ClientRequest(nonce), TimeSpan.FromSeconds(3));

    private static Task<byte[]?> Silent(string source, IPEndPoint server, ulong nonce) =>
        NtpQuery.ExchangeFromAsync(IPAddress.Parse(source), server, NtpQuery.ClientRequest(nonce), TimeSpan.FromMilliseconds(400));

    [Fact]
    public async Task Access_AClientDeniedByAReload_GetsNoAnswer_ThenAKissOfDeathDeny()
    {
        int port = Ports.FreeUdpPort();
        const string rate = "rate-limit: { interval: 1s, burst: 100 }";
        await using FromFile f = await FromFile.StartAsync(Plain(port, rate));
        Assert.NotNull(await AskFrom("127.0.0.7", f.Ntp, 1));

        ReloadResult deny = await f.ReloadAsync(Plain(port, rate + ", access: { deny: [\"127.0.0.7\"] }"));
        Assert.True(deny.Ok, string.Join("\n", deny.ToLines()));
        Assert.Equal(["ntp.access.deny"], deny.Applied);
        Assert.Empty(deny.NeedsRestart);
        Assert.Null(await Silent("127.0.0.7", f.Ntp, 2));
        Assert.NotNull(await AskFrom("127.0.0.8", f.Ntp, 3));

        ReloadResult kod = await f.ReloadAsync(Plain(port, rate + ", access: { deny: [\"127.0.0.7\"], deny-action: kod }"));
        Assert.Equal(["ntp.access.deny-action"], kod.Applied);
        byte[]? kiss = await AskFrom("127.0.0.7", f.Ntp, 4);
        Assert.NotNull(kiss);
        Assert.Equal(KissCode.Deny, KissOfDeath.Read(kiss));
        Assert.Contains(f.Logs.Lines, l => l.Contains("reload: applied: ntp.access.deny-action", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RateLimit_NewParametersApply_AndAClientThatSpentItsBurstStaysLimited()
    {
        int port = Ports.FreeUdpPort();
        await using FromFile f = await FromFile.StartAsync(Plain(port, "rate-limit: { interval: 60s, burst: 2, leak: 16 }"));
        Assert.NotNull(await AskFrom("127.0.0.9", f.Ntp, 1));
        Assert.NotNull(await AskFrom("127.0.0.9", f.Ntp, 2));
        Assert.Null(await Silent("127.0.0.9", f.Ntp, 3));

        ReloadResult result = await f.ReloadAsync(Plain(port, "rate-limit: { interval: 30s, burst: 4, leak: 16 }"));
        Assert.True(result.Ok, string.Join("\n", result.ToLines()));
        Assert.Equal(["ntp.rate-limit.interval", "ntp.rate-limit.burst"], result.Applied);

        // The spent client is still limited: its bucket survived the reload (a fresh table would answer it).
        Assert.Null(await Silent("127.0.0.9", f.Ntp, 4));
        // A new client gets the new burst of 4.
        for (ulong i = 0; i < 4; i++)
        {
            Assert.NotNull(await AskFrom("127.0.0.10", f.Ntp, 10 + i));
        }
        Assert.Null(await Silent("127.0.0.10", f.Ntp, 20));
        Assert.Contains(f.Server.Engine.Workers, w => w.RateLimiter!.Tracks(NetAddress.FromIPAddress(IPAddress.Parse("127.0.0.9"))));
        Assert.All(f.Server.Engine.Workers, w => Assert.Equal(1 << 20, w.AppliedPolicy.RateLimit?.Clients ?? 1 << 20));
    }

    [Fact]
    public async Task RateLimit_SwitchedOnWhenItWasOffAtStart_NeedsARestart_AndNobodyIsLimited()
    {
        int port = Ports.FreeUdpPort();
        await using FromFile f = await FromFile.StartAsync(Plain(port));
        ReloadResult result = await f.ReloadAsync(Plain(port, "rate-limit: { interval: 60s, burst: 1, leak: 16 }, access: { deny: [\"127.0.0.66\"] }"));
        Assert.True(result.Ok);
        Assert.Equal(["ntp.access.deny"], result.Applied);
        string restart = Assert.Single(result.NeedsRestart);
        Assert.StartsWith("ntp.rate-limit (rate limiting was off at start", restart, StringComparison.Ordinal);
        Assert.Contains($"needs a restart: {restart}", result.ToLines());
        for (ulong i = 0; i < 3; i++)
        {
            Assert.NotNull(await AskFrom("127.0.0.9", f.Ntp, i));
        }
        Assert.Null(await Silent("127.0.0.66", f.Ntp, 9));
        Assert.Null(f.Server.Config.Ntp.RateLimit);
    }

    [Fact]
    public async Task RestartKeys_AreReported_AndTheirOldValuesStayInForce()
    {
        int port = Ports.FreeUdpPort();
        int other = Ports.FreeUdpPort();
        await using FromFile f = await FromFile.StartAsync(Plain(port));
        string changed = $"""
            ntp: {"{"} listen: ["127.0.0.1:{other}"], workers: 3, rate-limit: off, busy-poll: 100us {"}"}
            clock: {"{"} mode: kernel, local: {"{"} stratum: 9 {"}"} {"}"}
            metrics: {"{"} listen: "127.0.0.1:0" {"}"}
            """;
        ReloadResult result = await f.ReloadAsync(changed);

        Assert.True(result.Ok);
        Assert.Empty(result.Applied);
        // clock.last-known-time too: its auto is a file in kernel mode, off in software mode.
        Assert.Equal(["ntp.listen", "ntp.workers", "ntp.busy-poll", "clock.mode", "clock.local.stratum", "clock.last-known-time", "metrics.listen"], result.NeedsRestart);
        Assert.Equal(2, f.Server.Engine.Workers.Count);
        Assert.Equal(port, f.Server.NtpEndPoints[0].Port);
        Assert.Equal(ClockMode.Software, f.Server.Config.Clock.Mode);
        byte[]? reply = await NtpQuery.ExchangeAsync(f.Ntp, NtpQuery.ClientRequest(1), TimeSpan.FromSeconds(3));
        Assert.Equal(10, reply![1]); // still the old local stratum
        // Compared with what is in force, so a second reload of the same file says the same.
        Assert.Equal(result.NeedsRestart, (await f.Server.ReloadAsync()).NeedsRestart);
        Assert.Contains(f.Logs.Lines, l => l.Contains("reload: needs a restart: ntp.workers", StringComparison.Ordinal));
    }

    [Fact]
    public async Task InvalidFile_EveryErrorHasItsLineAndColumn_AndTheOldConfigurationServesOn()
    {
        int port = Ports.FreeUdpPort();
        await using FromFile f = await FromFile.StartAsync(Plain(port));
        ApplianceConfig before = f.Server.Config;
        string broken = $"""
            ntp: {"{"} listen: ["127.0.0.1:{port}"], workers: 2, rate-limit: off, access: {"{"} deny: ["10.0.0.1"] {"}"} {"}"}
            clock:
              mode: software
              local: {"{"} stratum: 99 {"}"}
            metrics: {"{"} listen: off {"}"}
            log: {"{"} level: loud {"}"}
            """;
        ReloadResult result = await f.ReloadAsync(broken);

        Assert.False(result.Ok);
        Assert.Empty(result.Applied);
        Assert.Empty(result.NeedsRestart);
        Assert.Equal(2, result.Errors.Count);
        Assert.StartsWith($"{f.Path}:4:", result.Errors[0], StringComparison.Ordinal);
        Assert.Contains("stratum", result.Errors[0], StringComparison.Ordinal);
        Assert.StartsWith($"{f.Path}:6:", result.Errors[1], StringComparison.Ordinal);
        Assert.StartsWith($"error: {f.Path}:4:", result.ToLines()[0], StringComparison.Ordinal);
        Assert.Same(before, f.Server.Config);
        Assert.DoesNotContain(f.Server.Engine.Workers[0].AppliedPolicy.Access?.Rules ?? [], r => !r.Allow);
        Assert.NotNull(await NtpQuery.ExchangeAsync(f.Ntp, NtpQuery.ClientRequest(1), TimeSpan.FromSeconds(3)));
        Assert.Contains(f.Logs.Lines, l => l.Contains($"reload: {f.Path}:4:", StringComparison.Ordinal));
    }

    [Fact]
    public async Task LogLevel_AReloadChangesWhatIsLogged()
    {
        int port = Ports.FreeUdpPort();
        await using FromFile f = await FromFile.StartAsync(Plain(port));
        Assert.Equal(LogLevel.Information, f.Server.LogLevel);
        ReloadResult result = await f.ReloadAsync(Plain(port, extra: "log: { level: warning }"));
        Assert.Equal(["log.level"], result.Applied);
        Assert.Equal(LogLevel.Warning, f.Server.LogLevel);

        // An information line (the reload's "no change") is no longer written; a warning still is.
        int before = f.Logs.Lines.Count;
        await f.Server.ReloadAsync();
        Assert.Equal(before, f.Logs.Lines.Count);
        await f.ReloadAsync(Plain(port, ntp: "rate-limit: off, batch: 32", extra: "log: { level: warning }"));
        Assert.Contains(f.Logs.Lines.Skip(before), l => l.Contains("needs a restart: ntp.batch", StringComparison.Ordinal));

        await f.ReloadAsync(Plain(port, extra: "log: { level: debug }"));
        Assert.Equal(LogLevel.Debug, f.Server.LogLevel);
        before = f.Logs.Lines.Count;
        await f.Server.ReloadAsync();
        Assert.Contains(f.Logs.Lines.Skip(before), l => l.Contains("reload: no change", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Sources_AddedAndRemoved_TheSurvivorKeepsItsDriverAndState_TheRemovedOneStops()
    {
        await using TestNtpServer a = TestNtpServer.Shifted(0);
        await using TestNtpServer b = TestNtpServer.Shifted(0);
        int port = Ports.FreeUdpPort();
        string Source(TestNtpServer s, string extra = "") => $"  - ntp: {{ address: \"127.0.0.1:{s.EndPoint.Port}\", minpoll: -4, maxpoll: -4{extra} }}\n";
        string Config(params string[] sources) => Plain(port, extra: "sources:\n" + string.Concat(sources), metrics: "\"127.0.0.1:0\"");
        await using FromFile f = await FromFile.StartAsync(Config(Source(a)));
        string nameA = $"127.0.0.1:{a.EndPoint.Port}";
        string nameB = $"127.0.0.1:{b.EndPoint.Port}";
        ITimeSource driverA = Assert.Single(f.Server.Clock.Sources);
        await Eventually.TrueAsync(() => driverA.Reach != 0 && f.Server.Clock.Snapshot.Sources.Single().Offset is not null,
            TimeSpan.FromSeconds(20), () => "source a never answered");
        byte reachA = driverA.Reach;

        ReloadResult added = await f.ReloadAsync(Config(Source(a), Source(b)));
        Assert.True(added.Ok, string.Join("\n", added.ToLines()));
        Assert.Equal([$"sources: added {nameB} (ntp)"], added.Applied);
        Assert.Contains(driverA, f.Server.Clock.Sources);
        Assert.Equal(2, f.Server.Clock.Sources.Count);
        Assert.NotEqual(0, driverA.Reach);
        Assert.True(System.Numerics.BitOperations.PopCount(driverA.Reach) >= System.Numerics.BitOperations.PopCount(reachA), "a's reach was reset");
        Assert.NotNull(f.Server.Clock.Snapshot.Sources.Single(s => s.Name == nameA).Offset); // its filter kept its samples
        await Eventually.TrueAsync(() => b.Requests > 0, TimeSpan.FromSeconds(20), () => "source b was never polled");
        MetricsScrape both = await MetricsScrape.FetchAsync($"http://{f.Server.MetricsEndPoint}/metrics");
        Assert.Contains(both.Samples.Keys, series => series.StartsWith($"appliance_source_reach{{source=\"{nameA}\"", StringComparison.Ordinal));

        ReloadResult removed = await f.ReloadAsync(Config(Source(b)));
        Assert.Equal([$"sources: removed {nameA} (ntp)"], removed.Applied);
        Assert.DoesNotContain(driverA, f.Server.Clock.Sources);
        Assert.DoesNotContain(f.Server.Clock.Snapshot.Sources, s => s.Name == nameA);
        MetricsScrape scrape = await MetricsScrape.FetchAsync($"http://{f.Server.MetricsEndPoint}/metrics");
        Assert.DoesNotContain(scrape.Samples.Keys, series => series.Contains($"source=\"{nameA}\"", StringComparison.Ordinal));
        Assert.Contains(scrape.Samples.Keys, series => series.StartsWith($"appliance_source_reach{{source=\"{nameB}\"", StringComparison.Ordinal));
        // Stopped: a polled every 62.5 ms, and now asks nothing more.
        int polled = a.Requests;
        await Task.Delay(1500);
        Assert.Equal(polled, a.Requests);

        ITimeSource driverB = Assert.Single(f.Server.Clock.Sources);
        ReloadResult changed = await f.ReloadAsync(Config(Source(b, ", iburst: false")));
        Assert.Equal([$"sources: {nameB} (ntp) changed: removed and added again, its state starts afresh"], changed.Applied);
        Assert.NotSame(driverB, Assert.Single(f.Server.Clock.Sources));
    }

    [Fact]
    public async Task Sources_AddedInKernelModeStartedWithoutSources_NeedARestart()
    {
        await using TestNtpServer a = TestNtpServer.Shifted(0);
        int port = Ports.FreeUdpPort();
        string yaml = $"""
            ntp: {"{"} listen: ["127.0.0.1:{port}"], workers: 1, rate-limit: off {"}"}
            clock: {"{"} mode: kernel, local: {"{"} stratum: 10 {"}"}, last-known-time: off {"}"}
            metrics: {"{"} listen: off {"}"}
            """;
        await using FromFile f = await FromFile.StartAsync(yaml);
        ReloadResult result = await f.ReloadAsync(yaml + $"\nsources: [{{ ntp: \"127.0.0.1:{a.EndPoint.Port}\" }}]\n");
        Assert.True(result.Ok);
        Assert.StartsWith("sources (kernel mode started without sources", Assert.Single(result.NeedsRestart), StringComparison.Ordinal);
        Assert.Empty(f.Server.Clock.Sources);
    }

    private static string NtsYaml(NtsServerFixture fixture, string keys) =>
        fixture.Yaml.Replace($"keys: {{ storage: {fixture.KeyFile} }}", $"keys: {{ storage: {fixture.KeyFile}{keys} }}", StringComparison.Ordinal);

    [Fact]
    public async Task KeyRotationSettings_TheNextRotationFollows_AndTheCurrentKeyStays()
    {
        var fixture = new NtsServerFixture();
        await using FromFile f = await FromFile.StartAsync(fixture.Yaml);
        uint current = f.Server.NtsKeys!.CurrentId(DateTimeOffset.UtcNow);
        DateTimeOffset daily = f.Server.NextKeyRotation!.Value;
        Assert.Equal(0, daily.ToUnixTimeSeconds() % 86_400);

        ReloadResult result = await f.ReloadAsync(NtsYaml(fixture, ", rotation: 1m, keep: 3"));
        Assert.True(result.Ok, string.Join("\n", result.ToLines()));
        Assert.Equal(["nts-ke.keys.rotation", "nts-ke.keys.keep"], result.Applied);
        DateTimeOffset next = f.Server.NextKeyRotation!.Value;
        Assert.InRange(next - DateTimeOffset.UtcNow, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Assert.Equal(0, next.ToUnixTimeSeconds() % 60);
        // The same key until the new period ends (one later if that end fell within the test).
        Assert.InRange(f.Server.NtsKeys.CurrentId(DateTimeOffset.UtcNow), current, current + 1);
        Assert.Equal(TimeSpan.FromMinutes(1), f.Server.NtsKeys.Config.Rotation);
        Assert.Equal(3, f.Server.NtsKeys.Config.Keep);

        // Persisted with the new period: a restart with the same file takes the keys.
        var reread = new KeyRingStore(f.Server.NtsKeys.Config);
        reread.Load();
        Assert.Null(reread.Discarded);
        Assert.InRange(reread.CurrentId(DateTimeOffset.UtcNow), current, current + 1);
    }

    [Fact]
    public async Task RotateKeys_ANewKeySealsNewCookies_AndCookiesHandedOutBeforeStillOpen()
    {
        var fixture = new NtsServerFixture();
        await using FromFile f = await FromFile.StartAsync(fixture.Yaml);
        NtsKeResult before = await fixture.KeAsync();
        Assert.True(before.Succeeded, before.Error?.ToString());
        uint oldId = BinaryPrimitives.ReadUInt32BigEndian(before.Cookies[0]);
        DateTimeOffset scheduled = f.Server.NextKeyRotation!.Value;

        RotateResult rotated = await f.Server.RotateKeysAsync();

        Assert.True(rotated.Ok, rotated.Message);
        uint newId = oldId + 1;
        // The key before (sealed the first cookies), the new current one, and the next: 3.
        Assert.Equal($"rotated: current key id {newId}, 3 keys open cookies", rotated.Message);
        NtsKeResult after = await fixture.KeAsync();
        Assert.All(after.Cookies, c => Assert.Equal(newId, BinaryPrimitives.ReadUInt32BigEndian(c)));
        Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(before, before.Cookies[1])).Check);
        Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(after, after.Cookies[0])).Check);
        // The schedule is unchanged; the rotation is counted and persisted.
        Assert.Equal(scheduled, f.Server.NextKeyRotation);
        Assert.Equal(1, (await MetricsScrape.FetchAsync($"http://{f.Server.MetricsEndPoint}/metrics"))["appliance_nts_key_rotations_total"]);
        var reread = new KeyRingStore(f.Server.NtsKeys!.Config);
        reread.Load();
        reread.Update(DateTimeOffset.UtcNow, out CookieKeyRing ring);
        Assert.Equal(newId, ring.Current.Id);
        Assert.NotNull(ring.Find(oldId));
    }

    [Fact]
    public async Task RotateKeys_WithoutNts_IsRefused()
    {
        await using FromFile f = await FromFile.StartAsync(Plain(Ports.FreeUdpPort()));
        Assert.Equal(new RotateResult(false, "NTS is not configured (nts-ke)"), await f.Server.RotateKeysAsync());
    }

    [Fact]
    public async Task RotateKeys_InFleetMode_IsRefusedAndSaysWhyAndWhatToDo()
    {
        var fixture = new NtsServerFixture();
        string secret = Path.Combine(fixture.Certificate.Directory, "fleet.key");
        File.WriteAllBytes(secret, new byte[32]);
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await using FromFile f = await FromFile.StartAsync(NtsYaml(fixture, $", fleet-secret: {secret}"));
        uint current = f.Server.NtsKeys!.CurrentId(DateTimeOffset.UtcNow);

        RotateResult result = await f.Server.RotateKeysAsync();

        Assert.False(result.Ok);
        Assert.Contains("split the fleet", result.Message, StringComparison.Ordinal);
        Assert.Contains("new fleet secret", result.Message, StringComparison.Ordinal);
        Assert.Equal(current, f.Server.NtsKeys.CurrentId(DateTimeOffset.UtcNow));
        Assert.Equal(0, (await MetricsScrape.FetchAsync($"http://{f.Server.MetricsEndPoint}/metrics"))["appliance_nts_key_rotations_total"]);
    }

    /// <summary>
    /// What each Live key holds in the running server, read from the part that uses it (the worker's
    /// policy after a batch, the NTS-KE listener, the key ring, the log filter), written as
    /// <see cref="ConfigDiff.Value"/> writes the configuration's.
    /// </summary>
    private static readonly Dictionary<string, Func<ApplianceServer, Task<string>>> s_inForce = new(StringComparer.Ordinal)
    {
        [ConfigKeys.NtpRateLimitInterval.Path] = s => Worker(s, p => p.RateLimit?.Interval),
        [ConfigKeys.NtpRateLimitBurst.Path] = s => Worker(s, p => p.RateLimit?.Burst),
        [ConfigKeys.NtpRateLimitLeak.Path] = s => Worker(s, p => p.RateLimit?.Leak),
        [ConfigKeys.NtpRateLimitKod.Path] = s => Worker(s, p => p.RateLimit?.Kod),
        [ConfigKeys.NtpAccessAllow.Path] = s => Worker(s, p => ConfigDiff.Prefixes(p.Access, allow: true)),
        [ConfigKeys.NtpAccessDeny.Path] = s => Worker(s, p => ConfigDiff.Prefixes(p.Access, allow: false)),
        [ConfigKeys.NtpAccessDenyAction.Path] = s => Worker(s, p => p.DenyAction),
        [ConfigKeys.NtsKeKeysRotation.Path] = s => Task.FromResult(ConfigDiff.Text(s.NtsKeys!.Config.Rotation)),
        [ConfigKeys.NtsKeKeysKeep.Path] = s => Task.FromResult(ConfigDiff.Text(s.NtsKeys!.Config.Keep)),
        [ConfigKeys.NtsKeNtpServer.Path] = s => Task.FromResult($"{s.NtsKe!.Config.NtpServer}:{s.NtsKe.Config.NtpPort}"),
        [ConfigKeys.NtsKeMaxConnections.Path] = s => Nts(s, c => c.MaxConnections),
        [ConfigKeys.NtsKeHandshakeTimeout.Path] = s => Nts(s, c => c.HandshakeTimeout),
        [ConfigKeys.NtsKeIdleTimeout.Path] = s => Nts(s, c => c.IdleTimeout),
        [ConfigKeys.NtsKeRequestTimeout.Path] = s => Nts(s, c => c.RequestTimeout),
        [ConfigKeys.NtsKeMaxRequest.Path] = s => Nts(s, c => c.MaxRequest),
        [ConfigKeys.NtsKeAeads.Path] = s => Task.FromResult(ConfigDiff.Text(new AeadList(s.NtsKe!.Aeads))),
        [ConfigKeys.NtsKeClientLimitConnections.Path] = s => Nts(s, c => c.ClientConnections),
        [ConfigKeys.NtsKeClientLimitInterval.Path] = s => Nts(s, c => c.ClientInterval),
        [ConfigKeys.NtsKeClientLimitConcurrent.Path] = s => Nts(s, c => c.ClientConcurrent),
        [ConfigKeys.LogLevel.Path] = s => Task.FromResult(ConfigDiff.Text(s.LogLevel)),
    };

    /// <summary>A worker takes a new policy at its next batch: send it one, then read what it answered by.</summary>
    private static async Task<string> Worker(ApplianceServer server, Func<Appliance.Engine.WorkerPolicy, object?> field)
    {
        await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(1), TimeSpan.FromMilliseconds(300));
        Appliance.Engine.WorkerPolicy policy = Assert.Single(server.Engine.Workers).AppliedPolicy;
        return ConfigDiff.Text(field(policy));
    }

    private static Task<string> Nts(ApplianceServer server, Func<NtsKeConfig, object> field) => Task.FromResult(ConfigDiff.Text(field(server.NtsKe!.Config)));

    /// <summary>Live keys proven by tests of their own: source entries (added and removed above) and sections (their keys are here).</summary>
    private static bool ProvenElsewhere(ConfigKey key) =>
        key.Type == ConfigType.Section || key.Type == ConfigType.SourceList || ConfigDiff.IsSourceKey(key);

    [Fact]
    public void EveryKey_HasAValueTheReloadComparesOrIsCoveredByAnother()
    {
        var base_ = ConfigLoader.LoadEmbeddedDefault().Config!;
        foreach (ConfigKey key in ConfigKeys.All)
        {
            Assert.True(ConfigDiff.Value(key, base_) is not null || ConfigDiff.Covered.ContainsKey(key.Path), $"{key.Path}: the reload would not see it change");
        }
        string[] probed = ConfigKeys.All.Where(k => k.Reload == Reload.Live && !ProvenElsewhere(k)).Select(k => k.Path).ToArray();
        Assert.Equal(probed.Order(), s_inForce.Keys.Order());
    }

    [Fact]
    public async Task EveryLiveKey_SetToItsExample_IsAppliedByAReload_AndInForceInTheRunningServer()
    {
        var fixture = new NtsServerFixture();
        string baseline = fixture.Yaml.Replace("rate-limit: off", "rate-limit: {}", StringComparison.Ordinal);
        await using FromFile f = await FromFile.StartAsync(baseline);
        ApplianceConfig start = f.Server.Config;
        foreach (ConfigKey key in ConfigKeys.All.Where(k => s_inForce.ContainsKey(k.Path)))
        {
            var tree = (YamlMappingNode)ConfigFragment.Parse(baseline);
            SetAt(tree, key.Path, ConfigFragment.Parse(key.ExampleValue!));
            string yaml = ConfigFragment.Render(tree);
            ConfigResult wanted = ConfigLoader.Parse(yaml);
            Assert.True(wanted.IsValid, $"{key.Path}: {string.Join("\n", wanted.Errors)}");
            string before = ConfigDiff.Value(key, start)!;
            string after = ConfigDiff.Value(key, wanted.Config!)!;
            Assert.True(before != after, $"{key.Path}: its example {key.ExampleValue} is its value already: the test proves nothing");
            Assert.Equal(before, await s_inForce[key.Path](f.Server));

            ReloadResult changed = await f.ReloadAsync(yaml);
            Assert.True(changed.Ok, $"{key.Path}: {string.Join("\n", changed.ToLines())}");
            Assert.Equal([key.Path], changed.Applied);
            Assert.Empty(changed.NeedsRestart);
            Assert.Equal(after, await s_inForce[key.Path](f.Server));

            ReloadResult back = await f.ReloadAsync(baseline);
            Assert.Equal([key.Path], back.Applied);
            Assert.Equal(before, await s_inForce[key.Path](f.Server));
        }
    }

    /// <summary>Sets the value at a dotted path of the tree, creating the mappings on the way.</summary>
    private static void SetAt(YamlMappingNode root, string path, YamlNode value)
    {
        string[] segments = path.Split('.');
        YamlMappingNode mapping = root;
        foreach (string segment in segments[..^1])
        {
            var name = new YamlScalarNode(segment);
            if (!mapping.Children.TryGetValue(name, out YamlNode? next) || next is not YamlMappingNode child)
            {
                child = new YamlMappingNode();
                mapping.Children[name] = child;
            }
            mapping = child;
        }
        mapping.Children[new YamlScalarNode(segments[^1])] = value;
    }

    [Fact]
    public async Task Sighup_ReloadsTheFileTheProcessStartedFrom_AndLogsEveryLine()
    {
        int port = Ports.FreeUdpPort();
        string yaml = Plain(port, "rate-limit: {}");
        string path = ApplianceProcess.WriteConfig(yaml);
        try
        {
            await using PeerProcess server = ApplianceProcess.Start("serve", "--config", path);
            await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(30));
            var ntp = new IPEndPoint(IPAddress.Loopback, port);
            Assert.NotNull(await AskFrom("127.0.0.7", ntp, 1));

            await File.WriteAllTextAsync(path, Plain(port, "rate-limit: {}, batch: 32, access: { deny: [\"127.0.0.7\"] }"));
            await Run.CheckedAsync("kill", "-HUP", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await server.WaitForOutputAsync("reload: applied: ntp.access.deny", TimeSpan.FromSeconds(20));
            await server.WaitForOutputAsync("reload: needs a restart: ntp.batch", TimeSpan.FromSeconds(5));
            Assert.Null(await Silent("127.0.0.7", ntp, 2));
            Assert.NotNull(await AskFrom("127.0.0.8", ntp, 3));

            // An invalid file: every error with its line and column, logged; the old configuration serves on.
            await File.WriteAllTextAsync(path, yaml + "log: { level: loud }\n");
            await Run.CheckedAsync("kill", "-HUP", server.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await server.WaitForOutputAsync("serving on with the configuration in force", TimeSpan.FromSeconds(20));
            Assert.Matches($@"reload: {System.Text.RegularExpressions.Regex.Escape(path)}:4:\d+: .*log\.level", server.Output);
            Assert.Null(await Silent("127.0.0.7", ntp, 4));
            Assert.False(server.HasExited);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
