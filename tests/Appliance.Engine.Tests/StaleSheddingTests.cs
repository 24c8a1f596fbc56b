using System.Net;
using System.Net.Sockets;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Testing;
using Appliance.Timestamping;

namespace Appliance.Engine.Tests;

/// <summary>
/// Graceful overload (issue #20): a request that waited in its socket's queue past
/// <c>ntp.max-queue-delay</c> while the worker is overloaded is shed unanswered and counted stale,
/// before it is parsed; fresh ones are answered.
/// </summary>
public class StaleSheddingTests
{
    private const long Now = 1_795_435_203_000_000_000;
    private static readonly IPEndPoint s_client = new(IPAddress.Parse("192.0.2.7"), 40000);

    [Fact]
    public void RequestsOlderThanTheBudget_AreShed_FreshOnesAnswered()
    {
        using var batch = new PacketBatch(6);
        var counters = new WorkerCounters();
        var scratch = new BatchScratch(6, null) { ShedBefore = Now - 2_000_000 };
        batch.Load(0, NtpQuery.ClientRequest(1), s_client, Now - 500_000);            // 0.5 ms in the queue: answered
        batch.Load(1, NtpQuery.ClientRequest(2), s_client, Now - 2_000_001);          // just over 2 ms: shed
        batch.Load(2, NtpQuery.ClientRequest(3), s_client, Now - 40_000_000);         // 40 ms: shed
        batch.Load(3, NtpQuery.ClientRequest(4), s_client, 0);                        // no kernel stamp: no age, answered
        batch.Load(4, NtpQuery.ClientRequest(5), s_client, Now - 5_000_000_000);      // "5 s": a clock step, not a queue: answered
        batch.Load(5, new byte[10], s_client, Now - 40_000_000);                      // stale and malformed: shed before it is read
        var policy = default(AllowAllPolicy);

        NtpWorker.ProcessBatch(batch, EngineFixture.SyncedCell().Current, ref policy, counters, scratch);

        Assert.Equal([48, 0, 0, 48, 48, 0], Enumerable.Range(0, 6).Select(batch.ResponseLength));
        Assert.Equal(3, counters.Get(ResponseAction.Drop, ResponseReason.Stale));
        Assert.Equal(0, counters.Get(ResponseAction.Drop, ResponseReason.TooShort));
        Assert.Equal(3, counters.Get(ResponseAction.Respond, ResponseReason.Served));
        Assert.Equal(6, counters.Received);
    }

    [Fact]
    public void AStaleNtsRequest_IsShedBeforeItsFieldsAreRead()
    {
        // An NTS-looking request whose fields do not parse: read, it would be nts_malformed (or
        // malformed_extension_field); shed, it is stale and nothing of it is looked at.
        byte[] request = [.. NtpQuery.ClientRequest(7), 0x01, 0x04, 0x00, 0x28, .. new byte[12]];
        using var batch = new PacketBatch(2);
        var counters = new WorkerCounters();
        var scratch = new BatchScratch(2, null) { ShedBefore = Now - 2_000_000 };
        batch.Load(0, request, s_client, Now - 10_000_000);
        batch.Load(1, request, s_client, Now - 100_000);
        var policy = default(AllowAllPolicy);

        NtpWorker.ProcessBatch(batch, EngineFixture.SyncedCell().Current, ref policy, counters, scratch);

        Assert.Equal(1, counters.Get(ResponseAction.Drop, ResponseReason.Stale));
        Assert.Equal(0, batch.ResponseLength(0));
        Assert.Equal(1, counters.Get(ResponseAction.Drop, ResponseReason.MalformedExtensionField) + counters.Get(ResponseAction.Drop, ResponseReason.NtsMalformed));
    }

    [Fact]
    public void AClientWithinItsRate_IsAnsweredThoughStale_OneOverItsRateIsShed()
    {
        // Under a spoofed flood the flood's sources are over their rate; the clients polling beside it are not.
        var limiter = new RateLimiter(new RateLimitSettings(TimeSpan.FromSeconds(1), 2, 0, false, 1024), 1024, 1, 2);
        var flooder = new IPEndPoint(IPAddress.Parse("192.0.2.66"), 123);
        long monotonic = SystemClock.MonotonicNanoseconds();
        limiter.Check(NetAddress.FromIPAddress(s_client.Address), monotonic); // seen once: known, a token left
        limiter.Check(NetAddress.FromIPAddress(flooder.Address), monotonic);
        limiter.Check(NetAddress.FromIPAddress(flooder.Address), monotonic); // its burst spent
        var policy = new ServerPolicy(null, DenyAction.Ignore, limiter);
        var stranger = new IPEndPoint(IPAddress.Parse("192.0.2.99"), 123);
        using var batch = new PacketBatch(3);
        var counters = new WorkerCounters();
        var scratch = new BatchScratch(3, null) { ShedBefore = Now - 2_000_000 };
        batch.Load(0, NtpQuery.ClientRequest(1), s_client, Now - 40_000_000);
        batch.Load(1, NtpQuery.ClientRequest(2), flooder, Now - 40_000_000);
        batch.Load(2, NtpQuery.ClientRequest(3), stranger, Now - 40_000_000); // unknown (a random-source flood's): shed

        NtpWorker.ProcessBatch(batch, EngineFixture.SyncedCell().Current, ref policy, counters, scratch);

        Assert.Equal(48, batch.ResponseLength(0));
        Assert.Equal(0, batch.ResponseLength(1));
        Assert.Equal(0, batch.ResponseLength(2));
        Assert.Equal(2, counters.Get(ResponseAction.Drop, ResponseReason.Stale));
        Assert.Equal(1, counters.Get(ResponseAction.Respond, ResponseReason.Served));
    }

    [Fact]
    public void WithoutABudget_NothingIsShed()
    {
        using var batch = new PacketBatch(1);
        var counters = new WorkerCounters();
        var scratch = new BatchScratch(1, null); // ShedBefore 0: ntp.max-queue-delay off, or no backlog
        batch.Load(0, NtpQuery.ClientRequest(1), s_client, Now - 500_000_000);
        var policy = default(AllowAllPolicy);
        NtpWorker.ProcessBatch(batch, EngineFixture.SyncedCell().Current, ref policy, counters, scratch);
        Assert.Equal(48, batch.ResponseLength(0));
        Assert.Equal(0, counters.Get(ResponseAction.Drop, ResponseReason.Stale));
    }

    private const long Budget = 2_000_000;
    private const long Interval = QueueGovernor.IntervalNanoseconds;
    private const long Ms = 1_000_000;

    /// <summary>A receive at <paramref name="atMs"/> on both clocks (monotonic from 0), its oldest request <paramref name="waitedMs"/> old.</summary>
    private static long Receive(QueueGovernor queue, bool full, double atMs, double waitedMs) =>
        queue.ShedBefore(full, Now + (long)((atMs - waitedMs) * Ms), Now + (long)(atMs * Ms), (long)(atMs * Ms));

    [Fact]
    public void AQueueThatStandsForAnInterval_IsShed_ABurstIsNot()
    {
        var queue = new QueueGovernor(Budget, 4 << 20, 0);
        // Full receives whose oldest request is 5 ms old, for just under an interval: a burst the worker is draining.
        for (double t = 0; t < 99; t += 1)
        {
            Assert.Equal(0, Receive(queue, full: true, t, 5));
        }
        // A fresh head in between starts the count again.
        Assert.Equal(0, Receive(queue, full: true, 99, 1));
        for (double t = 100; t < 199.5; t += 1)
        {
            Assert.Equal(0, Receive(queue, full: true, t, 5));
        }
        // Standing for a whole interval: shed what waited longer than the budget.
        Assert.Equal(Now + 200 * Ms - Budget, Receive(queue, full: true, 200, 5));
    }

    [Fact]
    public void Shedding_GoesOnForAnIntervalAfterTheLastShed()
    {
        var queue = new QueueGovernor(Budget, 4 << 20, 0);
        for (double t = 0; t <= 100; t += 1)
        {
            Receive(queue, full: true, t, 5);
        }
        queue.Shed(100 * Ms);
        // Heads fresh again (the shedding works), full receives: still shedding within the interval...
        Assert.NotEqual(0, Receive(queue, full: true, 150, 1));
        Assert.NotEqual(0, Receive(queue, full: true, 199, 1));
        // ... and no longer an interval after the last shed.
        Assert.Equal(0, Receive(queue, full: true, 201, 1));

        // A receive less than full within the interval (the shedding emptied the queue for a moment) is shed too.
        for (double t = 300; t <= 400; t += 1)
        {
            Receive(queue, full: true, t, 5);
        }
        queue.Shed(400 * Ms);
        Assert.NotEqual(0, Receive(queue, full: false, 402, 5));
        Assert.Equal(0, Receive(queue, full: false, 501, 5));
        // The standing count started again: full receives with stale heads for under an interval are answered.
        Assert.Equal(0, Receive(queue, full: true, 502, 5));
        Assert.Equal(0, Receive(queue, full: true, 601, 5));
        Assert.NotEqual(0, Receive(queue, full: true, 602, 5));
    }

    [Fact]
    public void AClockStep_IsNoQueue()
    {
        var queue = new QueueGovernor(Budget, 4 << 20, 0);
        for (double t = 0; t <= 300; t += 1)
        {
            Assert.Equal(0, Receive(queue, full: true, t, 1500)); // "1.5 s" in a queue: the clock stepped
        }
    }

    [Fact]
    public void TheBuffer_HalvesWhileShedding_StaysLowWhileTheQueueIsFull_AndGrowsBackWhenItEmpties()
    {
        var queue = new QueueGovernor(Budget, 1 << 20, 0);
        Assert.Equal(1 << 20, queue.Buffer);
        Assert.False(queue.AdjustBuffer(50 * Ms)); // within the first interval: unchanged

        long t = 0;
        int[] expected = [512 << 10, 256 << 10, 128 << 10, 64 << 10, 64 << 10];
        foreach (int size in expected)
        {
            t += Interval;
            Receive(queue, full: true, t / (double)Ms, 5);
            queue.Shed(t);
            queue.AdjustBuffer(t);
            Assert.Equal(size, queue.Buffer);
        }
        // No shedding now (the kernel drops the excess at 64 KiB), but every receive is full: it stays low.
        for (int i = 0; i < 5; i++)
        {
            t += Interval;
            Receive(queue, full: true, t / (double)Ms, 1);
            Assert.False(queue.AdjustBuffer(t));
        }
        Assert.Equal(64 << 10, queue.Buffer);
        // Most receives less than full: the queue was mostly empty, so it doubles, an interval at a time.
        t += Interval;
        Receive(queue, full: true, t / (double)Ms, 1);
        Receive(queue, full: false, t / (double)Ms, 0);
        Assert.False(queue.AdjustBuffer(t)); // half full: not most receives less than full
        t += Interval;
        Receive(queue, full: true, t / (double)Ms, 1);
        Receive(queue, full: false, t / (double)Ms, 0);
        Receive(queue, full: false, t / (double)Ms, 0);
        Assert.True(queue.AdjustBuffer(t));
        Assert.Equal(128 << 10, queue.Buffer);
        // Idle for a second: at its first receive it is back to the size it opened with, never more.
        t += 10 * Interval;
        Receive(queue, full: false, t / (double)Ms, 0);
        Assert.True(queue.AdjustBuffer(t));
        Assert.Equal(1 << 20, queue.Buffer);
        t += Interval;
        Receive(queue, full: false, t / (double)Ms, 0);
        Assert.False(queue.AdjustBuffer(t));
        Assert.Equal(1 << 20, queue.Buffer);
    }

    [Fact]
    public void AQueueThatStoodForAMomentOnly_KeepsItsBuffer_OneStandingMostOfAnIntervalHalvesIt()
    {
        var queue = new QueueGovernor(Budget, 1 << 20, 0);
        // A stall: 10 of the interval's receives find the queue standing, then 40 a drained one.
        for (double t = 1; t <= 10; t += 1)
        {
            Receive(queue, full: true, t, 5);
        }
        queue.Shed(10 * Ms);
        for (double t = 11; t <= 50; t += 1)
        {
            Receive(queue, full: true, t, 1);
        }
        Assert.False(queue.AdjustBuffer(110 * Ms));
        Assert.Equal(1 << 20, queue.Buffer);
        // Standing for most of the next interval, shed or not (clients within their rate are answered late): halved.
        for (double t = 111; t <= 211; t += 1)
        {
            Receive(queue, full: true, t, 5);
        }
        Assert.True(queue.AdjustBuffer(215 * Ms));
        Assert.Equal(512 << 10, queue.Buffer);
    }

    /// <summary>
    /// Through a real worker: a lone request that waited out a stall is answered, and so is the
    /// queue that piled up behind a stall: the worker drains it by itself, so it is no overload.
    /// </summary>
    [Fact]
    public async Task AStallAndTheQueueBehindIt_AreAnsweredWhole()
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options());
        NtpWorker worker = engine.Workers[0];
        IPEndPoint server = engine.LocalEndPoints[0];
        int stall = 0;
        worker.BeforeBatch = _ =>
        {
            if (Interlocked.Exchange(ref stall, 0) == 1)
            {
                Thread.Sleep(30);
            }
        };

        Volatile.Write(ref stall, 1);
        Assert.NotNull(await NtpQuery.ExchangeAsync(server, NtpQuery.ClientRequest(1), TimeSpan.FromSeconds(5)));

        // One request starts a stall; 600 more pile up behind it meanwhile, 25 ms old when it ends.
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Connect(server);
        Volatile.Write(ref stall, 1);
        client.Send(NtpQuery.ClientRequest(2));
        await Task.Delay(5);
        for (int i = 0; i < 600; i++)
        {
            client.Send(NtpQuery.ClientRequest(100 + (ulong)i));
        }
        await WaitFor(() => worker.Counters.Get(ResponseAction.Respond, ResponseReason.Served) == 602);
        Assert.Equal(0, worker.Counters.Get(ResponseAction.Drop, ResponseReason.Stale));
    }

    /// <summary>
    /// A worker slowed to about 64 requests a millisecond, flooded for half a second: its queue
    /// stands past the budget, so after CoDel's interval it sheds, and answers the rest.
    /// </summary>
    [Fact]
    public async Task ASustainedOverload_IsShed_AndTheRestAnswered()
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options());
        NtpWorker worker = engine.Workers[0];
        worker.BeforeBatch = _ => Thread.Sleep(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Connect(engine.LocalEndPoints[0]);
        byte[] request = NtpQuery.ClientRequest(3);
        var flood = System.Diagnostics.Stopwatch.StartNew();
        long sent = 0;
        while (flood.ElapsedMilliseconds < 500)
        {
            client.Send(request);
            sent++;
        }
        // The kernel drops part of the flood at arrival once the worker lowers its buffer: wait for the queue to drain.
        long received;
        do
        {
            received = worker.Counters.Received;
            await Task.Delay(100);
        }
        while (worker.Counters.Received != received);
        long stale = worker.Counters.Get(ResponseAction.Drop, ResponseReason.Stale);
        long served = worker.Counters.Get(ResponseAction.Respond, ResponseReason.Served);
        Assert.True(stale > 0 && served > 0, $"sent {sent}, received {worker.Counters.Received}, served {served}, shed {stale}");
    }

    private static async Task WaitFor(Func<bool> condition)
    {
        for (int i = 0; i < 250 && !condition(); i++)
        {
            await Task.Delay(20);
        }
        Assert.True(condition());
    }
}
