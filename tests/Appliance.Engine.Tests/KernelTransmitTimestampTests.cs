using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Testing;
using Appliance.Timestamping;

namespace Appliance.Engine.Tests;

/// <summary>
/// The kernel's transmit timestamps through a real worker on loopback (SO_TIMESTAMPING TX_SOFTWARE,
/// read from the socket's error queue): an interleaved client's responses carry them from its third
/// exchange on (RFC 9769 §2). The loopback driver stamps in software as it takes the packet, as a
/// NIC's driver does.
/// </summary>
public class KernelTransmitTimestampTests
{
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public async Task InterleavedResponses_CarryTheKernelTransmitTimestampOfTheResponseBefore(string address)
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options(address));
        IPEndPoint server = engine.LocalEndPoints[0];
        NtpWorker worker = engine.Workers[0];
        Assert.True(worker.Sockets[0].TransmitTimestamps);
        using var client = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        client.Connect(server);

        // 1: basic (origin zero). Its transmit timestamp is the daemon's, and no kernel one is asked for.
        (NtpHeader first, _, _) = await Exchange(client, origin: default);
        Assert.Equal(0, worker.Counters.KernelTransmitTimestamps(TimestampSource.KernelSoftware, saved: true));

        // 2: interleaved. It carries the first response's (daemon) transmit timestamp, and asks the
        // kernel for its own.
        (NtpHeader second, long sentSecond, long receivedSecond) = await Exchange(client, origin: first.Receive);
        Assert.Equal(first.Transmit, second.Transmit);
        Assert.Equal(1, worker.Counters.Interleaved);
        Assert.Equal(2, worker.Counters.TransmitTimestamps(TimestampSource.UserSpace)); // the first response's own, and the daemon's the second carries
        await WaitFor(() => worker.Counters.KernelTransmitTimestamps(TimestampSource.KernelSoftware, saved: true) == 1);

        // 3: interleaved. It carries the kernel's stamp of the second response: after that response's
        // receive timestamp, before the client had it, and counted as the kernel's.
        (NtpHeader third, _, _) = await Exchange(client, origin: second.Receive);
        Assert.Equal(2, worker.Counters.Interleaved);
        Assert.Equal(1, worker.Counters.TransmitTimestamps(TimestampSource.KernelSoftware));
        long kernelTransmit = third.Transmit.ToUnixNanoseconds(sentSecond);
        Assert.InRange(kernelTransmit, second.Receive.ToUnixNanoseconds(sentSecond), receivedSecond);
        Assert.InRange(second.Receive.ToUnixNanoseconds(sentSecond), sentSecond, receivedSecond);
        Assert.Equal(0UL, third.Transmit.Value & 1); // marked as a transmit timestamp (never equal to a receive one)
        Assert.Equal(0, worker.Counters.UnreadableTransmitTimestamps);
        Assert.Equal(0, worker.Counters.SendErrors);
    }

    [Fact]
    public async Task BasicClients_AskTheKernelForNothing()
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options());
        NtpWorker worker = engine.Workers[0];
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Connect(engine.LocalEndPoints[0]);
        for (int i = 0; i < 5; i++)
        {
            (NtpHeader response, _, _) = await Exchange(client, origin: default);
            Assert.Equal(0UL, response.Transmit.Value & 1);
        }
        Assert.Equal(5, worker.Counters.TransmitTimestamps(TimestampSource.UserSpace));
        Assert.Equal(0, worker.Counters.KernelTransmitTimestamps(TimestampSource.KernelSoftware, saved: true)
            + worker.Counters.KernelTransmitTimestamps(TimestampSource.KernelSoftware, saved: false)
            + worker.Counters.UnreadableTransmitTimestamps);
    }

    [Fact]
    public void WithoutInterleavedMode_NoSocketAsksForTransmitTimestamps()
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options() with { InterleavedEntries = 0 });
        Assert.False(engine.Workers[0].Sockets[0].TransmitTimestamps);
    }

    /// <summary>
    /// One exchange as an RFC 9769 §2 client makes it: origin the previous response's receive
    /// timestamp (zero for basic mode), receive and transmit the client's own, different, readings.
    /// Returns the response and the client's clock before the send and after the receive.
    /// </summary>
    private static async Task<(NtpHeader Response, long Sent, long Received)> Exchange(Socket client, NtpTimestamp origin)
    {
        long sent = SystemClock.RealtimeNanoseconds();
        await client.SendAsync(NtpQuery.InterleavedRequest(origin.Value,
            NtpTimestamp.FromUnixNanoseconds(sent - 1000).Value, NtpTimestamp.FromUnixNanoseconds(sent).Value));
        var buffer = new byte[2048];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        int length = await client.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        long received = SystemClock.RealtimeNanoseconds();
        Assert.Equal(NtpHeader.Length, length);
        var response = NtpHeader.Read(buffer);
        Assert.Equal(origin.IsZero ? NtpTimestamp.FromUnixNanoseconds(sent) : NtpTimestamp.FromUnixNanoseconds(sent - 1000), response.Origin);
        Assert.Equal(1UL, BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(NtpHeader.ReceiveOffset)) & 1);
        return (response, sent, received);
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        for (int i = 0; i < 100 && !condition(); i++)
        {
            await Task.Delay(20);
        }
        Assert.True(condition());
    }
}
