using System.Net;
using System.Net.Sockets;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Testing;
using Appliance.Timestamping;

namespace Appliance.Engine.Tests;

/// <summary>The reuseport steering program: one client, one worker.</summary>
public class SteeringTests
{
    /// <summary>Sends <paramref name="count"/> requests from <paramref name="source"/>; every reply must be a valid answer to its request.</summary>
    internal static int Exchange(Socket client, IPEndPoint server, int count, ulong nonceBase)
    {
        var buffer = new byte[256];
        int answered = 0;
        client.ReceiveTimeout = 2000;
        for (int i = 0; i < count; i++)
        {
            ulong nonce = nonceBase + (ulong)i;
            client.SendTo(NtpQuery.ClientRequest(nonce), server);
            int length = client.Receive(buffer);
            var header = NtpHeader.Read(buffer.AsSpan(0, length));
            Assert.Equal(48, length);
            Assert.Equal(NtpMode.Server, header.Mode);
            Assert.Equal(4, header.Version);
            Assert.Equal(3, header.Stratum);
            Assert.Equal(new NtpTimestamp(nonce), header.Origin);
            Assert.True(header.Transmit.SecondsSince(header.Receive) >= 0);
            answered++;
        }
        return answered;
    }

    [Fact]
    public void IPv4_32Clients4Workers_EachClientServedByExactlyOneWorker()
    {
        var options = EngineFixture.Options(workers: 4) with { RateLimit = RateLimitSettings.Default with { Burst = 1000 } };
        using NtpEngine engine = EngineFixture.Start(options);
        IPEndPoint server = new(IPAddress.Loopback, engine.LocalEndPoints[0].Port);
        var expectedPerWorker = new long[4];
        for (int c = 0; c < 32; c++)
        {
            var source = IPAddress.Parse($"127.0.0.{10 + c}");
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            client.Bind(new IPEndPoint(source, 0));
            Assert.Equal(5, Exchange(client, server, 5, (ulong)c << 32));

            // Exactly one worker's client table knows this client: the one the program picks.
            int[] owners = engine.Workers.Where(w => w.RateLimiter!.Tracks(NetAddress.FromIPAddress(source))).Select(w => w.Index).ToArray();
            int owner = Assert.Single(owners);
            Assert.Equal(ReusePortGroup.SteerIndex(source, 4), owner);
            expectedPerWorker[owner] += 5;
        }
        Assert.Equal(expectedPerWorker, engine.Workers.Select(w => w.Counters.Received).ToArray());
        Assert.True(expectedPerWorker.Count(n => n > 0) >= 3, "32 clients should spread over the workers");
    }

    [Fact]
    public async Task IPv6_ClientsSteeredByTheirSlash64()
    {
        await using NetworkNamespace ns = await NetworkNamespace.CreateAsync("steer6");
        for (int p = 0; p < 16; p++)
        {
            await Run.CheckedAsync("ip", "-n", ns.Name, "addr", "add", $"2001:db8:0:{p:x}::1/64", "dev", "lo", "nodad");
            await Run.CheckedAsync("ip", "-n", ns.Name, "addr", "add", $"2001:db8:0:{p:x}::2/64", "dev", "lo", "nodad");
        }
        var options = new EngineOptions
        {
            Listen = [new IPEndPoint(IPAddress.IPv6Any, 0)],
            Workers = 3,
            RateLimit = RateLimitSettings.Default with { Burst = 1000 },
        };
        using NtpEngine engine = NetworkNamespaceThread.Run(ns.Name, () => NtpEngine.Bind(options, EngineFixture.SyncedCell()));
        engine.Start();
        int port = engine.LocalEndPoints[0].Port;

        NetworkNamespaceThread.Run(ns.Name, () =>
        {
            for (int p = 0; p < 16; p++)
            {
                var first = IPAddress.Parse($"2001:db8:0:{p:x}::1");
                var second = IPAddress.Parse($"2001:db8:0:{p:x}::2");
                foreach (IPAddress source in (IPAddress[])[first, second])
                {
                    using var client = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
                    client.Bind(new IPEndPoint(source, 0));
                    Assert.Equal(3, Exchange(client, new IPEndPoint(source, port), 3, (ulong)p << 40));
                }
                int owner = Assert.Single(engine.Workers, w => w.RateLimiter!.Tracks(NetAddress.FromIPAddress(first))).Index;
                Assert.Equal(ReusePortGroup.SteerIndex(first, 3), owner);
                Assert.Equal(owner, ReusePortGroup.SteerIndex(second, 3));
            }
            return 0;
        });
        Assert.Equal(16 * 2 * 3, engine.Workers.Sum(w => w.Counters.Received));
        Assert.True(engine.Workers.Count(w => w.Counters.Received > 0) >= 2, "16 prefixes should spread over the workers");
    }

    [Fact]
    public void ReusePortGroup_PortHeldByAnotherSocket_RefusesToShareIt()
    {
        // A stray process with SO_REUSEPORT on "our" port would silently take traffic: refuse instead.
        using TimestampedSocket stray = TimestampedSocket.Open(new IPEndPoint(IPAddress.Loopback, 0), new TimestampedSocketOptions { ReusePort = true });
        var e = Assert.ThrowsAny<SocketException>(() => ReusePortGroup.Open(stray.LocalEndPoint, 2, new TimestampedSocketOptions()));
        Assert.Equal(SocketError.AddressAlreadyInUse, e.SocketErrorCode);
    }
}
