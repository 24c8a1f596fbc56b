using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using Appliance.Protocol.Roughtime;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Ntp;
using Appliance.Server.Roughtime;
using Appliance.Server.Tests.Control;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>
/// The Roughtime listener through the whole appliance, on loopback: the public key taken from
/// `appliance keys` (the real CLI), requests written and answers verified by the client written from
/// RFC 10049 §5.4 (every signature, the Merkle path, the delegation), MIDP ± RADI held against the
/// time the appliance serves over NTP, on UDP and TCP; what gets no answer; the key file.
/// </summary>
public sealed class RoughtimeServerTests : IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"appliance-roughtime-{Guid.NewGuid():N}");

    private string KeyFile => Path.Combine(_directory, "state", "roughtime.key");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <param name="unsynchronised">No local clock: one upstream source on a port where nothing answers, so the appliance never synchronises.</param>
    private async Task<(ApplianceServer Server, string Socket)> StartAsync(bool unsynchronised = false)
    {
        string time = unsynchronised
            ? $"clock: {{ mode: software }}\nsources: [ {{ ntp: {{ address: \"127.0.0.1:{Ports.FreeUdpPort()}\" }} }} ]"
            : "clock: { mode: software, local: { stratum: 10 } }";
        string socket = ControlTests.NewSocketPath();
        int port = Ports.FreeUdpPort();
        ConfigResult result = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{port}}"], workers: 1, rate-limit: off }
            {{time}}
            metrics: { listen: "127.0.0.1:0" }
            control: { socket: {{socket}} }
            roughtime: { listen: ["127.0.0.1:0", "[::1]:0"], key: {{KeyFile}} }
            """);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return (await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders()), socket);
    }

    private static byte[] Request(byte[] publicKey, out byte[] nonce, uint[]? versions = null)
    {
        nonce = RandomNumberGenerator.GetBytes(32);
        var request = new byte[RoughtimeClient.RequestPacketLength];
        RoughtimeClient.WriteRequest(request, nonce, publicKey, versions ?? [RoughtimeVersion.Rfc, RoughtimeVersion.Draft]);
        return request;
    }

    private static async Task<byte[]?> UdpExchangeAsync(IPEndPoint server, byte[] request, TimeSpan timeout)
    {
        using var client = new UdpClient(server.AddressFamily);
        client.Connect(server);
        await client.SendAsync(request);
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            return (await client.ReceiveAsync(cancel.Token)).Buffer;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    /// <summary>Each request on one TCP connection, one after another; an answer, or null where the server closed instead.</summary>
    private static async Task<List<byte[]?>> TcpExchangeAsync(IPEndPoint server, IEnumerable<byte[]> requests)
    {
        using var client = new TcpClient(server.AddressFamily);
        await client.ConnectAsync(server);
        NetworkStream stream = client.GetStream();
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var answers = new List<byte[]?>();
        foreach (byte[] request in requests)
        {
            var header = new byte[RoughtimePacket.HeaderLength];
            try
            {
                await stream.WriteAsync(request, cancel.Token);
                if (await stream.ReadAtLeastAsync(header, header.Length, throwOnEndOfStream: false, cancel.Token) < header.Length)
                {
                    answers.Add(null);
                    break;
                }
            }
            catch (IOException)
            {
                answers.Add(null); // closed with our request unread: a reset
                break;
            }
            var answer = new byte[header.Length + BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8))];
            header.CopyTo(answer, 0);
            await stream.ReadExactlyAsync(answer.AsMemory(header.Length), cancel.Token);
            answers.Add(answer);
        }
        return answers;
    }

    /// <summary>The appliance's served time now, from its NTP listener (transmit timestamp, Unix seconds).</summary>
    private static async Task<double> ServedNtpTimeAsync(IPEndPoint ntp)
    {
        byte[]? reply = await NtpQuery.ExchangeAsync(ntp, NtpQuery.ClientRequest(7), TimeSpan.FromSeconds(5));
        Assert.NotNull(reply);
        ulong transmit = BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(40));
        return (double)(transmit >> 32) - 2_208_988_800 + ((transmit & 0xFFFF_FFFF) / 4294967296.0);
    }

    private static void AssertCovers(RoughtimeReading reading, double served)
    {
        Assert.Equal(RoughtimeResponder.MinRadiusSeconds, reading.Radius); // stratum 10 on a local clock: a root distance of microseconds
        Assert.InRange(served, (double)reading.Midpoint - reading.Radius, (double)reading.Midpoint + reading.Radius);
    }

    [Fact]
    public async Task UdpAndTcp_AnswersVerifyUnderThePublishedKey_AndMidpointCoversTheServedNtpTime()
    {
        (ApplianceServer server, string socket) = await StartAsync();
        await using (server)
        {
            JsonElement keys = await ControlTests.JsonVerbAsync(socket, "keys");
            JsonElement roughtime = keys.GetProperty("roughtime");
            byte[] publicKey = Convert.FromBase64String(roughtime.GetProperty("public_key").GetString()!);
            Assert.Equal(Convert.ToHexStringLower(publicKey), roughtime.GetProperty("public_key_hex").GetString());
            Assert.Equal(KeyFile, roughtime.GetProperty("key_file").GetString());
            CommandResult table = await ControlTests.CliAsync(socket, "keys");
            Assert.Contains(Convert.ToBase64String(publicKey), table.StdOut, StringComparison.Ordinal);
            Assert.DoesNotContain(File.ReadAllText(KeyFile).Trim(), table.StdOut + keys.GetRawText(), StringComparison.Ordinal);

            IPEndPoint ntp = server.NtpEndPoints[0];
            Assert.Equal(2, server.Roughtime!.UdpEndPoints.Count);
            foreach (IPEndPoint endPoint in server.Roughtime.UdpEndPoints)
            {
                foreach (uint[] versions in (uint[][])[[RoughtimeVersion.Rfc], [RoughtimeVersion.Draft], [RoughtimeVersion.Rfc, RoughtimeVersion.Draft]])
                {
                    byte[] request = Request(publicKey, out _, versions);
                    byte[]? answer = await UdpExchangeAsync(endPoint, request, TimeSpan.FromSeconds(5));
                    double served = await ServedNtpTimeAsync(ntp);
                    Assert.NotNull(answer);
                    Assert.True(answer.Length <= request.Length, $"{answer.Length}-byte answer to a {request.Length}-byte request");
                    Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(request, answer, publicKey, out RoughtimeReading reading));
                    Assert.Equal(versions[0], reading.Version);
                    AssertCovers(reading, served);
                }
            }

            // TCP: three requests on one connection, each answered and verified.
            IPEndPoint tcp = server.Roughtime.TcpEndPoints[0];
            Assert.Equal(server.Roughtime.UdpEndPoints[0], tcp);
            byte[][] requests = [Request(publicKey, out _), Request(publicKey, out _), Request(publicKey, out _)];
            List<byte[]?> answers = await TcpExchangeAsync(tcp, requests);
            double servedTcp = await ServedNtpTimeAsync(ntp);
            Assert.Equal(3, answers.Count);
            for (int i = 0; i < 3; i++)
            {
                Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(requests[i], answers[i], publicKey, out RoughtimeReading reading));
                AssertCovers(reading, servedTcp);
            }

            // The online key was delegated once, and the report says for when.
            keys = await ControlTests.JsonVerbAsync(socket, "keys");
            roughtime = keys.GetProperty("roughtime");
            Assert.Equal(1, roughtime.GetProperty("delegations").GetInt64());
            DateTimeOffset maxt = roughtime.GetProperty("online_key_maxt").GetDateTimeOffset();
            // MIDP + 24 h: MIDP is the served time rounded to the second, a moment ago.
            Assert.InRange(maxt - DateTimeOffset.UtcNow, TimeSpan.FromHours(23), TimeSpan.FromHours(24) + TimeSpan.FromSeconds(2));

            // A TCP answer is counted once the server's write returns, which may be after the client read it.
            await Eventually.TrueAsync(() => server.Roughtime.Counters.Answered(RoughtimeCounters.Tcp) == 3, TimeSpan.FromSeconds(5),
                () => $"{server.Roughtime.Counters.Answered(RoughtimeCounters.Tcp)} TCP answers counted");
            MetricsScrape scrape = await MetricsScrape.FetchAsync($"http://{server.MetricsEndPoint}/metrics");
            Assert.Equal(6, scrape["appliance_roughtime_responses_total{transport=\"udp\"}"]);
            Assert.Equal(3, scrape["appliance_roughtime_responses_total{transport=\"tcp\"}"]);
            Assert.Equal(1, scrape["appliance_roughtime_delegations_total"]);
            Assert.True(scrape["appliance_roughtime_signatures_total"] is >= 1 and <= 9);
        }
    }

    [Fact]
    public async Task ABurstOfRequests_IsAnsweredUnderFewerSignaturesThanRequests_EachAnswerVerifying()
    {
        (ApplianceServer server, string _) = await StartAsync();
        await using (server)
        {
            byte[] publicKey = server.Roughtime!.Keys.PublicKey;
            IPEndPoint endPoint = server.Roughtime.UdpEndPoints[0];
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            client.Connect(endPoint);
            client.ReceiveTimeout = 5000;
            const int Burst = 64;
            bool batched = false;
            // A burst sent back to back queues faster than the listener's thread wakes: its first receive
            // takes several. A round whose every datagram was signed alone (a host that scheduled the
            // thread between each) is sent again, at most a few times.
            for (int round = 0; round < 5 && !batched; round++)
            {
                long signaturesBefore = server.Roughtime.Counters.Signatures;
                var requests = new Dictionary<string, byte[]>();
                for (int i = 0; i < Burst; i++)
                {
                    byte[] request = Request(publicKey, out byte[] nonce);
                    requests[Convert.ToHexString(nonce)] = request;
                    client.Send(request);
                }
                var buffer = new byte[2048];
                for (int i = 0; i < Burst; i++)
                {
                    int n = client.Receive(buffer);
                    byte[] answer = buffer[..n];
                    Assert.True(RoughtimeMessage.TryParse(answer.AsSpan(RoughtimePacket.HeaderLength), out RoughtimeMessage message));
                    Assert.True(message.TryGet(RoughtimeTag.Nonc, out ReadOnlySpan<byte> nonce));
                    byte[] request = requests[Convert.ToHexString(nonce)];
                    Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(request, answer, publicKey, out _));
                }
                batched = server.Roughtime.Counters.Signatures - signaturesBefore < Burst;
            }
            Assert.True(batched, "every request of five bursts was signed alone");
        }
    }

    [Fact]
    public async Task NothingIsSigned_WhileUnsynchronised_NorForAnInvalidRequest()
    {
        (ApplianceServer server, string _) = await StartAsync(unsynchronised: true);
        await using (server)
        {
            byte[] publicKey = server.Roughtime!.Keys.PublicKey;
            IPEndPoint endPoint = server.Roughtime.UdpEndPoints[0];
            var quiet = TimeSpan.FromMilliseconds(500);
            Assert.Null(await UdpExchangeAsync(endPoint, Request(publicKey, out _), quiet));
            Assert.Null((await TcpExchangeAsync(server.Roughtime.TcpEndPoints[0], [Request(publicKey, out _)]))[0]);
            RoughtimeCounters unsynchronised = server.Roughtime.Counters;
            await Eventually.TrueAsync(() => unsynchronised.Dropped(RoughtimeCounters.Udp, (int)RoughtimeListenerDrop.Unsynchronised) == 1
                && unsynchronised.Dropped(RoughtimeCounters.Tcp, (int)RoughtimeListenerDrop.Unsynchronised) == 1, TimeSpan.FromSeconds(5),
                () => "the unsynchronised drops were not counted");
            Assert.Null(server.Roughtime.Keys.Current); // no online key was ever made
        }

        (server, _) = await StartAsync();
        await using (server)
        {
            byte[] publicKey = server.Roughtime!.Keys.PublicKey;
            IPEndPoint endPoint = server.Roughtime.UdpEndPoints[0];
            var quiet = TimeSpan.FromMilliseconds(500);

            // A request under 1024 bytes would be answered by a larger datagram (§5.1, §9.7): nothing.
            byte[] full = Request(publicKey, out _);
            byte[] shorter = new byte[full.Length - 4];
            RoughtimePacket.WriteHeader(shorter, shorter.Length - RoughtimePacket.HeaderLength);
            full.AsSpan(RoughtimePacket.HeaderLength, shorter.Length - RoughtimePacket.HeaderLength).CopyTo(shorter.AsSpan(RoughtimePacket.HeaderLength));
            Assert.Null(await UdpExchangeAsync(endPoint, shorter, quiet));
            // Another server's key in SRV; no version served; a datagram of NTP.
            Assert.Null(await UdpExchangeAsync(endPoint, Request(RandomNumberGenerator.GetBytes(32), out _), quiet));
            Assert.Null(await UdpExchangeAsync(endPoint, Request(publicKey, out _, [0x80000005]), quiet));
            Assert.Null(await UdpExchangeAsync(endPoint, NtpQuery.ClientRequest(1), quiet));
            // On TCP, a frame not ROUGHTIM closes the connection; a valid request after it on a new one is answered.
            byte[] junk = new byte[1036];
            Assert.Null((await TcpExchangeAsync(server.Roughtime.TcpEndPoints[0], [junk]))[0]);
            byte[] good = Request(publicKey, out _);
            byte[]? answer = (await TcpExchangeAsync(server.Roughtime.TcpEndPoints[0], [good]))[0];
            Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(good, answer, publicKey, out _));

            RoughtimeCounters counters = server.Roughtime.Counters;
            // Each datagram was taken before its exchange timed out; wait until the thread has counted the last.
            await Eventually.TrueAsync(() => counters.Received(RoughtimeCounters.Udp) == 4, TimeSpan.FromSeconds(5),
                () => $"{counters.Received(RoughtimeCounters.Udp)} UDP requests counted");
            Assert.Equal(1, counters.Dropped(RoughtimeCounters.Udp, (int)RoughtimeDrop.OtherServer));
            Assert.Equal(1, counters.Dropped(RoughtimeCounters.Udp, (int)RoughtimeDrop.Version));
            Assert.Equal(1, counters.Dropped(RoughtimeCounters.Udp, (int)RoughtimeDrop.TooShort));
            Assert.Equal(1, counters.Dropped(RoughtimeCounters.Udp, (int)RoughtimeDrop.Framing));
            Assert.Equal(1, counters.Dropped(RoughtimeCounters.Tcp, (int)RoughtimeDrop.Framing));
            Assert.Equal(0, counters.Answered(RoughtimeCounters.Udp));
            // Counted once the server's write returns, which may be after the client has read the answer.
            await Eventually.TrueAsync(() => counters.Answered(RoughtimeCounters.Tcp) == 1, TimeSpan.FromSeconds(5),
                () => $"{counters.Answered(RoughtimeCounters.Tcp)} TCP answers counted");
        }
    }

    [Fact]
    public async Task Tcp_HoldsAtMostEightConnectionsPerClient_WhileAnotherClientIsStillServed()
    {
        (ApplianceServer server, string _) = await StartAsync();
        await using (server)
        {
            byte[] publicKey = server.Roughtime!.Keys.PublicKey;
            IPEndPoint endPoint = server.Roughtime.TcpEndPoints.First(e => e.AddressFamily == AddressFamily.InterNetwork);
            var held = new List<TcpClient>();
            try
            {
                for (int i = 0; i < RoughtimeServer.MaxTcpConnectionsPerClient; i++)
                {
                    var idle = new TcpClient(AddressFamily.InterNetwork);
                    held.Add(idle);
                    await idle.ConnectAsync(endPoint);
                    await idle.GetStream().WriteAsync(Request(publicKey, out _)); // served, so the connection is surely admitted and open
                    await idle.GetStream().ReadExactlyAsync(new byte[RoughtimePacket.HeaderLength]);
                }
                await Eventually.TrueAsync(() => server.Roughtime.TcpConnections == RoughtimeServer.MaxTcpConnectionsPerClient, TimeSpan.FromSeconds(5),
                    () => $"{server.Roughtime.TcpConnections} connections open");
                // The ninth from 127.0.0.1 is closed at accept; a request on it gets nothing.
                Assert.Null((await TcpExchangeAsync(endPoint, [Request(publicKey, out _)]))[0]);
                Assert.Equal(1, server.Roughtime.Counters.Dropped(RoughtimeCounters.Tcp, (int)RoughtimeListenerDrop.Refused));
                // Another client is served meanwhile.
                using var other = new TcpClient(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
                await other.ConnectAsync(endPoint);
                byte[] request = Request(publicKey, out _);
                await other.GetStream().WriteAsync(request);
                var answer = new byte[request.Length];
                int n = await other.GetStream().ReadAtLeastAsync(answer, RoughtimePacket.HeaderLength);
                int total = RoughtimePacket.HeaderLength + (int)BinaryPrimitives.ReadUInt32LittleEndian(answer.AsSpan(8));
                await other.GetStream().ReadExactlyAsync(answer.AsMemory(n, total - n));
                Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(request, answer.AsSpan(0, total), publicKey, out _));
            }
            finally
            {
                held.ForEach(c => c.Dispose());
            }
            await Eventually.TrueAsync(() => server.Roughtime.TcpConnections == 0, TimeSpan.FromSeconds(5),
                () => $"{server.Roughtime.TcpConnections} connections still open after their clients closed");
        }
    }

    [Fact]
    public async Task TheLongTermKey_IsMadeOnce_0600_AndKeptAcrossRestarts_ADamagedOrOpenFileStopsTheStart()
    {
        byte[] first;
        (ApplianceServer server, string _) = await StartAsync();
        await using (server)
        {
            first = server.Roughtime!.Keys.PublicKey;
            Assert.True(server.Roughtime.Keys.Created);
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(KeyFile));
        string seed = File.ReadAllText(KeyFile);
        Assert.Matches("^[0-9a-f]{64}\n$", seed);

        (server, _) = await StartAsync();
        await using (server)
        {
            Assert.False(server.Roughtime!.Keys.Created);
            Assert.Equal(first, server.Roughtime.Keys.PublicKey);
        }
        Assert.Equal(seed, File.ReadAllText(KeyFile));

        File.SetUnixFileMode(KeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var open = await Assert.ThrowsAsync<StartupFailedException>(() => StartAsync());
        Assert.Contains($"chmod 600 {KeyFile}", open.Message, StringComparison.Ordinal);
        Assert.Contains("mode 0604", open.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(KeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(KeyFile, seed[..40] + "\n");
        var damaged = await Assert.ThrowsAsync<StartupFailedException>(() => StartAsync());
        Assert.Contains("is not a Roughtime key file", damaged.Message, StringComparison.Ordinal);
        Assert.Contains("restore it from a backup", damaged.Message, StringComparison.Ordinal);
        Assert.Equal(seed[..40] + "\n", File.ReadAllText(KeyFile)); // never replaced: clients trust the key in it
    }

    [Fact]
    public void OnlineKey_IsKeptWhileHalfItsLifetimeIsLeft_ThenReplaced_AndReplacedAtOnceWhenTheServedTimeLeavesIt()
    {
        Directory.CreateDirectory(_directory);
        RoughtimeKeys keys = RoughtimeKeys.Load(KeyFile, TimeSpan.FromHours(24));
        const ulong T = 1_800_000_000;
        RoughtimeDelegation first = keys.For(T);
        Assert.Equal(T - RoughtimeKeys.MintLeewaySeconds, first.Mint);
        Assert.Equal(T + 86_400, first.Maxt);
        Assert.Same(first, keys.For(T + 43_200));          // half left: kept
        RoughtimeDelegation second = keys.For(T + 43_201);  // less than half: a new online key
        Assert.NotSame(first, second);
        Assert.Equal(T + 43_201 + 86_400, second.Maxt);
        RoughtimeDelegation third = keys.For(T);            // the served time stepped back before MINT
        Assert.NotSame(second, third);
        Assert.True(third.Covers(T));
        Assert.Equal(3, keys.Delegations);
        Assert.Same(third, keys.Current);

        // Each delegation is signed by the long-term key: a response under it verifies for a client holding that key alone.
        var responder = new RoughtimeResponder(keys.PublicKey, 1, 2048) { Delegation = keys.For(T) };
        byte[] request = Request(keys.PublicKey, out _);
        Assert.Equal(RoughtimeDrop.None, responder.Accept(0, request));
        Assert.True(responder.Sign(T, 3));
        byte[] answer = new byte[request.Length];
        int length = responder.WriteResponse(0, answer, out _);
        Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(request, answer.AsSpan(0, length), keys.PublicKey, out RoughtimeReading reading));
        Assert.Equal(T, reading.Midpoint);
    }
}
