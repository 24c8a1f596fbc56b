using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Appliance.Server.Configuration;
using Appliance.Server.Control;
using Appliance.Server.Hosting;
using Appliance.Server.Ntp;
using Appliance.Testing;
using Json.Schema;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests.Control;

/// <summary>
/// The control socket through the real `appliance` CLI (a child process) against a server in this
/// process: every verb's table and JSON (validated against the schema in docs/control.md), who may do
/// what (SO_PEERCRED, the socket's mode), and the bounds on what a client can send.
/// </summary>
public class ControlTests
{
    internal static string NewSocketPath() => Path.Combine(Path.GetTempPath(), $"appliance-ctl-{Guid.NewGuid():N}", "control.sock");

    private static async Task<(ApplianceServer Server, string Socket)> StartAsync(string ntpExtra = ", rate-limit: off", string socket = "")
    {
        socket = socket.Length == 0 ? NewSocketPath() : socket;
        int port = Ports.FreeUdpPort();
        ConfigResult result = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{port}}", "[::1]:{{port}}"], workers: 2{{ntpExtra}} }
            clock: { mode: software, local: { stratum: 10 } }
            metrics: { listen: off }
            control: { socket: {{socket}} }
            """);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return (await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders()), socket);
    }

    internal static Task<CommandResult> CliAsync(string socket, params string[] args) => ApplianceProcess.RunAsync([.. args, "--socket", socket]);

    /// <summary>Runs a verb with --json, checks it exits 0 and its output against the verb's schema, and returns it.</summary>
    internal static async Task<JsonElement> JsonVerbAsync(string socket, string verb, params string[] args)
    {
        CommandResult run = await CliAsync(socket, [verb, "--json", .. args]);
        Assert.True(run.ExitCode == 0, run.ToString());
        return AssertMatchesSchema(verb, run.StdOut);
    }

    internal static JsonElement AssertMatchesSchema(string verb, string json)
    {
        JsonElement element = JsonDocument.Parse(json).RootElement.Clone();
        var schema = JsonSchema.FromText(ControlSchema.For(verb).ToJsonString());
        EvaluationResults results = schema.Evaluate(element, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(results.IsValid, $"{verb} --json does not match its schema:\n{json}\n"
            + string.Join("\n", (results.Details ?? []).Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}"))));
        return element;
    }

    private static async Task SendAsync(IPEndPoint server, int requests)
    {
        for (int i = 0; i < requests; i++)
        {
            await NtpQuery.ExchangeAsync(server, NtpQuery.ClientRequest((ulong)(i + 1)), TimeSpan.FromMilliseconds(200));
        }
    }

    [Fact]
    public async Task Clients_ListsEachClientWithItsRequestsAndRateLimited_AndServerstatsAgrees()
    {
        (ApplianceServer server, string socket) = await StartAsync(", rate-limit: { interval: 10s, burst: 4, leak: 16 }");
        await using (server)
        {
            await SendAsync(server.NtpEndPoints[0], 10); // 127.0.0.1: 4 within the burst, 6 over it
            await SendAsync(server.NtpEndPoints[1], 3);  // ::1, listed as its /64

            JsonElement clients = await JsonVerbAsync(socket, "clients");
            Assert.True(clients.GetProperty("tracking").GetBoolean());
            Assert.Equal(2, clients.GetProperty("tracked").GetInt64());
            JsonElement[] rows = [.. clients.GetProperty("clients").EnumerateArray()];
            Assert.Equal(["127.0.0.1", "::/64"], rows.Select(r => r.GetProperty("address").GetString()));
            Assert.Equal(10, rows[0].GetProperty("requests").GetInt64());
            Assert.Equal(6, rows[0].GetProperty("rate_limited").GetInt64());
            Assert.Equal(0, rows[0].GetProperty("nts_requests").GetInt64());
            Assert.InRange(rows[0].GetProperty("last_seen_seconds_ago").GetDouble(), 0, 30);
            Assert.Equal(3, rows[1].GetProperty("requests").GetInt64());
            Assert.Equal(0, rows[1].GetProperty("rate_limited").GetInt64());

            JsonElement limited = await JsonVerbAsync(socket, "clients", "--limit", "1");
            Assert.Single(limited.GetProperty("clients").EnumerateArray());

            JsonElement stats = await JsonVerbAsync(socket, "serverstats");
            Assert.Equal(13, stats.GetProperty("received").GetInt64());
            Assert.Equal(7, stats.GetProperty("answered").GetInt64());
            Assert.Equal(6, stats.GetProperty("rate_limited").GetInt64());
            Assert.Equal(6, stats.GetProperty("dropped").GetProperty("rate_limited").GetInt64());
            Assert.Equal(13, stats.GetProperty("timestamp_sources").EnumerateObject().Sum(p => p.Value.GetInt64()));

            CommandResult table = await CliAsync(socket, "clients");
            Assert.True(table.ExitCode == 0, table.ToString());
            Assert.Matches(@"(?m)^127\.0\.0\.1\s+10\s+6\s+0\s+0\s+\d+(\.\d)?s ago$", table.StdOut);
            Assert.Matches(@"(?m)^::/64\s+3\s+0\s+0\s+0\s", table.StdOut);
            CommandResult statsTable = await CliAsync(socket, "serverstats");
            Assert.Matches(@"(?m)^NTP packets received\s*: 13$", statsTable.StdOut);
            Assert.Matches(@"(?m)^NTP dropped\s*: 6 \(rate_limited 6\)$", statsTable.StdOut);
        }
    }

    [Fact]
    public async Task Clients_WithoutRateLimiting_SaysThereIsNoTable()
    {
        (ApplianceServer server, string socket) = await StartAsync();
        await using (server)
        {
            JsonElement clients = await JsonVerbAsync(socket, "clients");
            Assert.False(clients.GetProperty("tracking").GetBoolean());
            CommandResult table = await CliAsync(socket, "clients");
            Assert.Contains("rate limiting is off", table.StdOut, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task StatusAndSources_DescribeTheClock()
    {
        (ApplianceServer server, string socket) = await StartAsync();
        await using (server)
        {
            await SendAsync(server.NtpEndPoints[0], 2);
            JsonElement status = await JsonVerbAsync(socket, "status");
            Assert.True(status.GetProperty("synchronised").GetBoolean());
            Assert.Equal(10, status.GetProperty("stratum").GetInt32());
            Assert.Equal("local", status.GetProperty("clock_status").GetString());
            Assert.Equal("software", status.GetProperty("clock_mode").GetString());
            Assert.Equal("127.127.1.1", status.GetProperty("reference_id").GetString());
            Assert.Equal(JsonValueKind.Null, status.GetProperty("system_peer").ValueKind);
            Assert.Equal("no_warning", status.GetProperty("leap").GetString());
            Assert.Equal(2, status.GetProperty("requests").GetInt64());
            Assert.InRange(status.GetProperty("uptime_seconds").GetDouble(), 0, 120);
            Assert.Equal(Program.Version, status.GetProperty("version").GetString());

            CommandResult table = await CliAsync(socket, "status");
            Assert.Matches(@"(?m)^Stratum\s+: 10$", table.StdOut);
            Assert.Matches(@"(?m)^Clock\s+: local \(software mode\)$", table.StdOut);

            JsonElement sources = await JsonVerbAsync(socket, "sources");
            Assert.Empty(sources.GetProperty("sources").EnumerateArray());
            Assert.Contains("No sources", (await CliAsync(socket, "sources")).StdOut, StringComparison.Ordinal);
            Assert.False((await JsonVerbAsync(socket, "keys")).GetProperty("nts").GetBoolean());
        }
    }

    [Fact]
    public async Task Sources_ListsAnUpstreamWithReachAndSelection()
    {
        await using TestNtpServer upstream = TestNtpServer.Shifted(0.002);
        string socket = NewSocketPath();
        int port = Ports.FreeUdpPort();
        ConfigResult result = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{port}}"], workers: 1, rate-limit: off }
            clock: { mode: software }
            sources:
              - ntp: { address: "{{upstream.EndPoint}}", iburst: true, minpoll: 4 }
            metrics: { listen: off }
            control: { socket: {{socket}} }
            """);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        await using ApplianceServer server = await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders());
        await Eventually.TrueAsync(() => server.Clock.Snapshot.Sources[0].Selection == Appliance.Discipline.PeerStatus.SystemPeer, TimeSpan.FromSeconds(30),
            () => $"the upstream is {server.Clock.Snapshot.Sources[0].Selection}");

        JsonElement sources = await JsonVerbAsync(socket, "sources");
        JsonElement source = Assert.Single(sources.GetProperty("sources").EnumerateArray());
        Assert.Equal(upstream.EndPoint.ToString(), source.GetProperty("name").GetString());
        Assert.Equal("ntp", source.GetProperty("kind").GetString());
        Assert.Equal("system_peer", source.GetProperty("selection").GetString());
        Assert.NotEqual(0, source.GetProperty("reach").GetInt32());
        Assert.InRange(source.GetProperty("offset_seconds").GetDouble(), 0.0005, 0.01); // the upstream is 2 ms ahead; loopback on a VM adds jitter
        Assert.True(source.GetProperty("answers").GetInt64() >= 1);

        JsonElement status = await JsonVerbAsync(socket, "status");
        Assert.Equal(upstream.EndPoint.ToString(), status.GetProperty("system_peer").GetString());
        Assert.Equal("synchronised", status.GetProperty("clock_status").GetString());

        CommandResult table = await CliAsync(socket, "sources");
        Assert.Matches($@"(?m)^{System.Text.RegularExpressions.Regex.Escape(upstream.EndPoint.ToString())}\s+ntp\s+reachable\s+system_peer\s+[0-7]+\s", table.StdOut);
    }

    [Fact]
    public async Task Keys_ListsTheRing_NeverItsBytes_AndClientsCountNtsRequests()
    {
        string socket = NewSocketPath();
        var fixture = new NtsServerFixture(extraNtsKe: $"control: {{ socket: {socket} }}", extraNtp: ", rate-limit: { interval: 1s, burst: 16 }");
        await using ApplianceServer server = await fixture.StartAsync();
        var ke = await fixture.KeAsync();
        (_, _, byte[]? response) = await fixture.QueryAsync(ke, ke.Cookies[0]);
        Assert.NotNull(response);

        JsonElement keys = await JsonVerbAsync(socket, "keys");
        Assert.True(keys.GetProperty("nts").GetBoolean());
        Assert.Equal("random", keys.GetProperty("mode").GetString());
        JsonElement[] ring = [.. keys.GetProperty("keys").EnumerateArray()];
        Assert.Single(ring, k => k.GetProperty("current").GetBoolean());
        Assert.True(keys.GetProperty("next_rotation").GetDateTimeOffset() > DateTimeOffset.UtcNow);
        CommandResult table = await CliAsync(socket, "keys");
        foreach (string secret in KeyMaterial(File.ReadAllText(fixture.KeyFile)))
        {
            Assert.DoesNotContain(secret, table.StdOut, StringComparison.Ordinal);
            Assert.DoesNotContain(secret, keys.GetRawText(), StringComparison.Ordinal);
        }
        Assert.Contains("seals (current)", table.StdOut, StringComparison.Ordinal);

        JsonElement clients = await JsonVerbAsync(socket, "clients");
        JsonElement client = Assert.Single(clients.GetProperty("clients").EnumerateArray());
        Assert.Equal(1, client.GetProperty("nts_requests").GetInt64());
        JsonElement stats = await JsonVerbAsync(socket, "serverstats");
        Assert.Equal(1, stats.GetProperty("nts_answered").GetInt64());
        Assert.Equal(1, stats.GetProperty("nts_ke_handshakes").GetProperty("ok/ok").GetInt64());
    }

    /// <summary>Every string value in the key file long enough to be key material.</summary>
    private static IEnumerable<string> KeyMaterial(string json)
    {
        var found = new List<string>();
        void Walk(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object: foreach (JsonProperty p in e.EnumerateObject()) { Walk(p.Value); } break;
                case JsonValueKind.Array: foreach (JsonElement x in e.EnumerateArray()) { Walk(x); } break;
                case JsonValueKind.String when e.GetString()!.Length >= 32: found.Add(e.GetString()!); break;
                default: break;
            }
        }
        Walk(JsonDocument.Parse(json).RootElement);
        Assert.NotEmpty(found);
        return found;
    }

    [Fact]
    public async Task Verbs_WithNoDaemon_SayItInOneLineWithTheFix_AndExit3()
    {
        string socket = NewSocketPath();
        foreach (string verb in ControlVerbs.Verbs)
        {
            CommandResult run = await CliAsync(socket, verb);
            Assert.Equal(ControlCommands.ExitUnavailable, run.ExitCode);
            string line = Assert.Single(run.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Equal($"appliance {verb}: no appliance is listening on {socket} (start it: `systemctl start appliance` or `appliance serve`; or give its socket with --socket PATH)", line);
        }
    }

    [Fact]
    public async Task StateChangingVerbs_AreForTheOwnerOnly_ReadOnlyOnesForTheGroup_NobodyElseConnects()
    {
        (ApplianceServer server, string socket) = await StartAsync();
        await using (server)
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(socket));
            // The test runs as root (uid 0, gid 0): uid 65534 in group 0 is "a member of the group".
            CommandResult member = await AsUserAsync(65534, 0, socket, "status");
            Assert.True(member.ExitCode == 0, member.ToString());
            Assert.Contains("Stratum", member.StdOut, StringComparison.Ordinal);
            foreach (string verb in (string[])["reload", "rotate-keys"])
            {
                CommandResult refused = await AsUserAsync(65534, 0, socket, verb);
                Assert.Equal(ControlCommands.ExitFailed, refused.ExitCode);
                Assert.Contains($"'{verb}' changes the running appliance: only its user (uid 0) or root may ask for it (you are uid 65534)", refused.StdErr, StringComparison.Ordinal);
            }
            CommandResult stranger = await AsUserAsync(65534, 65534, socket, "status");
            Assert.Equal(ControlCommands.ExitUnavailable, stranger.ExitCode);
            Assert.Contains("permission denied", stranger.StdErr, StringComparison.Ordinal);
        }
    }

    private static Task<CommandResult> AsUserAsync(int uid, int gid, string socket, string verb) =>
        Run.CommandAsync("setpriv", [$"--reuid={uid}", $"--regid={gid}", "--clear-groups", "env", "HOME=/tmp", "DOTNET_CLI_HOME=/tmp",
            .. ApplianceProcess.Command(verb, "--socket", socket)], TimeSpan.FromSeconds(60));

    /// <summary>Writes raw bytes to the socket and reads the whole answer, as a hostile or broken client would.</summary>
    private static async Task<JsonElement> RawAsync(string socket, byte[] request, bool closeWrite = true)
    {
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(socket));
        if (request.Length > 0)
        {
            await client.SendAsync(request, SocketFlags.None);
        }
        if (closeWrite)
        {
            client.Shutdown(SocketShutdown.Send);
        }
        using var answer = new MemoryStream();
        var buffer = new byte[8192];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        int n;
        while ((n = await client.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
        {
            answer.Write(buffer, 0, n);
        }
        return JsonDocument.Parse(answer.ToArray()).RootElement.Clone();
    }

    private static string ErrorOf(JsonElement answer)
    {
        Assert.False(answer.GetProperty("ok").GetBoolean());
        AssertMatchesSchema(ControlSchema.Error, answer.GetProperty("data").GetRawText());
        return answer.GetProperty("data").GetProperty("error").GetString()!;
    }

    [Fact]
    public async Task MalformedOversizedAndUnknownRequests_GetAnErrorAndAClosedConnection()
    {
        (ApplianceServer server, string socket) = await StartAsync();
        await using (server)
        {
            Assert.StartsWith("malformed request", ErrorOf(await RawAsync(socket, "{\"verb\": \n"u8.ToArray())), StringComparison.Ordinal);
            Assert.StartsWith("malformed request", ErrorOf(await RawAsync(socket, [0xFF, 0x00, 0x17, (byte)'\n'])), StringComparison.Ordinal);
            Assert.StartsWith("unknown verb 'shutdown'", ErrorOf(await RawAsync(socket, "{\"verb\":\"shutdown\"}\n"u8.ToArray())), StringComparison.Ordinal);
            byte[] huge = Encoding.ASCII.GetBytes("{\"verb\":\"status\",\"x\":\"" + new string('a', ControlServer.MaxRequestBytes) + "\"}\n");
            Assert.StartsWith("request too long", ErrorOf(await RawAsync(socket, huge)), StringComparison.Ordinal);
            Assert.StartsWith("--limit must be", ErrorOf(await RawAsync(socket, "{\"verb\":\"clients\",\"limit\":0}\n"u8.ToArray())), StringComparison.Ordinal);

            JsonElement ok = await RawAsync(socket, "{\"verb\":\"status\"}\n"u8.ToArray());
            Assert.True(ok.GetProperty("ok").GetBoolean());
            AssertMatchesSchema("status", ok.GetProperty("data").GetRawText());
        }
    }

    [Fact]
    public async Task SilentClients_AreCutOffInTime_AndTooManyAreToldBusy_WhileNtpAndControlGoOn()
    {
        (ApplianceServer server, string socket) = await StartAsync();
        await using (server)
        {
            // MaxConnections clients that connect and say nothing hold every slot...
            var answers = new List<Task<JsonElement>>();
            for (int i = 0; i < ControlServer.MaxConnections; i++)
            {
                answers.Add(RawAsync(socket, [], closeWrite: false));
            }
            await Task.Delay(500);
            // ...so the next is told "busy" (it does not wait for a slot: waiting, it would be served), and
            // NTP is served all the while.
            Assert.StartsWith("busy", ErrorOf(await RawAsync(socket, "{\"verb\":\"status\"}\n"u8.ToArray())), StringComparison.Ordinal);
            Assert.NotNull(await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(1), TimeSpan.FromSeconds(2)));

            // The silent ones are answered and closed when their time is up; then the socket serves again at
            // once (a slot is free before its client sees the end of its answer).
            foreach (Task<JsonElement> answer in answers)
            {
                Assert.StartsWith("no complete request within 5 s", ErrorOf(await answer), StringComparison.Ordinal);
            }
            JsonElement again = await RawAsync(socket, "{\"verb\":\"status\"}\n"u8.ToArray());
            Assert.True(again.GetProperty("ok").GetBoolean(), again.GetRawText());
        }
    }

    [Fact]
    public async Task Bind_ReplacesAStaleSocket_RefusesALiveOne_AndNeverDeletesAFileWithContent()
    {
        string socket = NewSocketPath();
        Directory.CreateDirectory(Path.GetDirectoryName(socket)!);
        // A socket file left by a daemon that died (.NET removes the file when its socket is disposed; python does not).
        await Run.CheckedAsync("python3", "-c", $"import socket; s = socket.socket(socket.AF_UNIX); s.bind('{socket}'); s.listen(1)");
        Assert.True(File.Exists(socket));
        (ApplianceServer first, _) = await StartAsync(socket: socket);
        await using (first)
        {
            Assert.Equal(socket, first.ControlSocket);
            Assert.True((await JsonVerbAsync(socket, "status")).GetProperty("synchronised").GetBoolean());

            StartupFailedException e = await Assert.ThrowsAsync<StartupFailedException>(() => StartAsync(socket: socket));
            Assert.Equal($"control socket {socket}: another running appliance answers on it (stop it first)", e.Message);

            // The same clash with control.socket: auto (not written) costs the second one its socket, not its start.
            int port = Ports.FreeUdpPort();
            ApplianceConfig config = ConfigLoader.Parse($$"""
                ntp: { listen: ["127.0.0.1:{{port}}"], workers: 1 }
                clock: { mode: software, local: { stratum: 10 } }
                metrics: { listen: off }
                """).Config! with { Control = new ControlConfig(socket, Explicit: false) };
            var logs = new CapturedLogs();
            await using (ApplianceServer second = await ApplianceServer.StartAsync(config, l => { l.ClearProviders(); l.AddProvider(logs); }))
            {
                Assert.Null(second.ControlSocket);
                Assert.Contains(logs.Lines, l => l.Contains("no control socket: another running appliance answers on it", StringComparison.Ordinal));
            }
            Assert.True((await JsonVerbAsync(socket, "status")).GetProperty("synchronised").GetBoolean());
        }
        Assert.False(File.Exists(socket), "the socket is removed at shutdown");

        File.WriteAllText(socket, "not a socket");
        StartupFailedException notSocket = await Assert.ThrowsAsync<StartupFailedException>(() => StartAsync(socket: socket));
        Assert.Contains("exists and is not a socket", notSocket.Message, StringComparison.Ordinal);
        Assert.Equal("not a socket", File.ReadAllText(socket));
    }
}
