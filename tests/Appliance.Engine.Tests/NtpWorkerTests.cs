using System.Net;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Testing;
using Appliance.Timestamping;

namespace Appliance.Engine.Tests;

public class NtpWorkerTests
{
    internal static ServerStateCell SyncedCell() => new(new ServerState
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = 3,
        ReferenceId = 0x0A000001,
        ReferenceTime = NtpTimestamp.FromUnixNanoseconds(SystemClock.RealtimeNanoseconds() - 1_000_000_000),
        UpdatedAtUnixNanoseconds = SystemClock.RealtimeNanoseconds(),
        Precision = -20,
    });

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("::1")]
    public async Task Worker_AnswersAndCountsPerOutcome(string address)
    {
        var socket = TimestampedSocket.Open(new IPEndPoint(IPAddress.Parse(address), 0), new TimestampedSocketOptions());
        using var worker = new NtpWorker(socket, SyncedCell());
        worker.Start();

        byte[]? reply = await NtpQuery.ExchangeAsync(worker.LocalEndPoint, NtpQuery.ClientRequest(99), TimeSpan.FromSeconds(5));
        Assert.NotNull(reply);
        Assert.Equal(3, reply[1]);
        Assert.Null(await NtpQuery.ExchangeAsync(worker.LocalEndPoint, NtpQuery.ClientRequest(99, version: 6), TimeSpan.FromMilliseconds(200)));
        Assert.Null(await NtpQuery.ExchangeAsync(worker.LocalEndPoint, new byte[PacketBatch.SlotSize + 1], TimeSpan.FromMilliseconds(200)));

        Assert.Equal(3, worker.Counters.Received);
        Assert.Equal(3, worker.Counters.Timestamps(TimestampSource.KernelSoftware));
        Assert.Equal(1, worker.Counters.Get(ResponseAction.Respond, ResponseReason.Served));
        Assert.Equal(1, worker.Counters.Get(ResponseAction.Drop, ResponseReason.UnsupportedVersion));
        Assert.Equal(1, worker.Counters.Get(ResponseAction.Drop, ResponseReason.Oversized));
    }

    [Fact]
    public async Task Worker_TransmitTimestamp_IsAfterReceiveTimestamp()
    {
        var socket = TimestampedSocket.Open(new IPEndPoint(IPAddress.Loopback, 0), new TimestampedSocketOptions());
        using var worker = new NtpWorker(socket, SyncedCell());
        worker.Start();
        for (int i = 0; i < 20; i++)
        {
            byte[]? reply = await NtpQuery.ExchangeAsync(worker.LocalEndPoint, NtpQuery.ClientRequest((ulong)i), TimeSpan.FromSeconds(5));
            var header = NtpHeader.Read(reply);
            double processing = header.Transmit.SecondsSince(header.Receive);
            Assert.InRange(processing, 0, 0.1);
        }
    }

    [Fact]
    public void Dispose_StopsTheLoopWithinTheReceiveTimeout()
    {
        var socket = TimestampedSocket.Open(new IPEndPoint(IPAddress.Loopback, 0), new TimestampedSocketOptions());
        var worker = new NtpWorker(socket, SyncedCell());
        Exception? fault = null;
        worker.OnFault = e => fault = e;
        worker.Start();
        Thread.Sleep(100);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        worker.Dispose();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(4), "the receive loop did not stop");
        Assert.Null(fault);
    }

    [Fact]
    public void ProcessBatch_InMemory_AnswersLoadedRequestsAndLeavesKissUnstamped()
    {
        using var batch = new PacketBatch(4);
        var counters = new WorkerCounters();
        var stamp = new bool[4];
        var source = new IPEndPoint(IPAddress.Parse("192.0.2.7"), 40000);
        long rx = 1_795_435_203_000_000_000;
        batch.Load(0, NtpQuery.ClientRequest(1), source, rx);
        batch.Load(1, new byte[10], source, rx);
        var policy = default(AllowAllPolicy);

        NtpWorker.ProcessBatch(batch, SyncedCell().Current, ref policy, counters, stamp);
        NtpWorker.StampTransmit(batch, SyncedCell().Current, stamp, rx + 5000);

        Assert.Equal(48, batch.ResponseLength(0));
        Assert.Equal(0, batch.ResponseLength(1));
        Assert.Equal(NetAddress.FromIPAddress(source.Address), batch.Source(0));
        var response = NtpHeader.Read(batch.Payload(0));
        Assert.Equal(NtpTimestamp.FromUnixNanoseconds(rx), response.Receive);
        Assert.Equal(NtpTimestamp.FromUnixNanoseconds(rx + 5000), response.Transmit);
        Assert.Equal(2, counters.Received);
    }
}
