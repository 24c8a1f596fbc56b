using System.Buffers.Binary;
using System.Net;
using Appliance.Protocol;
using Appliance.Testing;
using Appliance.Timestamping;

namespace Appliance.Engine.Tests;

/// <summary>
/// The server side of the interleaved client/server mode (RFC 9769 §2) through the worker's batch
/// path in memory: a client that never asks stays in basic mode; one that asks is answered with the
/// transmit timestamp of its previous response; a lost request, a replay, a client that restarts,
/// another client echoing someone's timestamp, and an unsynchronised server each get the rule's answer.
/// </summary>
public class InterleavedModeTests
{
    private const long Start = 1_795_435_203_000_000_000;

    /// <summary>A worker's batch path with interleaved state, and a clock for its receive and transmit timestamps.</summary>
    private sealed class Server : IDisposable
    {
        private readonly PacketBatch _batch = new(1);
        private readonly BatchScratch _scratch = new(1, null, new InterleavedTable(1024, 42));
        private long _clock = Start;

        public WorkerCounters Counters { get; } = new();

        public ServerState State { get; set; } = EngineFixture.SyncedCell().Current;

        /// <summary>One request from <paramref name="client"/>: received now, answered 30 µs later; the clock then moves on a second.</summary>
        public NtpHeader Exchange(IPEndPoint client, NtpTimestamp origin, NtpTimestamp receive, NtpTimestamp transmit)
        {
            byte[] request = NtpQuery.ClientRequest(transmit.Value);
            BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(NtpHeader.OriginOffset), origin.Value);
            BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(NtpHeader.ReceiveOffset), receive.Value);
            _batch.Load(0, request, client, _clock);
            var policy = new ServerPolicy(null, DenyAction.Ignore, null);
            NtpWorker.ProcessBatch(_batch, State, ref policy, Counters, _scratch);
            NtpWorker.StampTransmit(_batch, State, _scratch, _clock + 30_000);
            NtpWorker.SaveInterleaved(_batch, _scratch);
            _clock += 1_000_000_000;
            Assert.Equal(NtpHeader.Length, _batch.ResponseLength(0));
            return NtpHeader.Read(_batch.Payload(0));
        }

        /// <summary>What the server stamped as T2 and T3 of the exchange at <paramref name="at"/>, as sent (marked).</summary>
        public static (NtpTimestamp Receive, NtpTimestamp Transmit) Stamps(long at) =>
            (NtpResponder.MarkReceive(NtpTimestamp.FromUnixNanoseconds(at)), NtpResponder.MarkTransmit(NtpTimestamp.FromUnixNanoseconds(at + 30_000)));

        public void Dispose() => _batch.Dispose();
    }

    private static readonly IPEndPoint s_clientA = new(IPAddress.Parse("192.0.2.7"), 40000);
    private static readonly IPEndPoint s_clientB = new(IPAddress.Parse("192.0.2.8"), 40000);

    private static NtpTimestamp T(ulong v) => new(v);

    [Fact]
    public void ABasicClient_StaysInBasicMode()
    {
        using var server = new Server();
        NtpHeader first = server.Exchange(s_clientA, NtpTimestamp.Zero, NtpTimestamp.Zero, T(0x1000));
        // A basic client's next origin is our transmit timestamp (even): never looked up.
        NtpHeader second = server.Exchange(s_clientA, first.Transmit, T(0x2000), T(0x3000));
        Assert.Equal(T(0x3000), second.Origin);
        Assert.Equal(Server.Stamps(Start + 1_000_000_000), (second.Receive, second.Transmit));
        Assert.Equal(0, server.Counters.Interleaved);
    }

    [Fact]
    public void AnInterleavedClient_GetsThePreviousTransmitTimestamp_AndAReplayGetsBasicMode()
    {
        using var server = new Server();
        // §2: the first request is basic (origin and receive zero), as chrony's xleave first request is.
        NtpHeader first = server.Exchange(s_clientA, NtpTimestamp.Zero, NtpTimestamp.Zero, T(0x1000));
        Assert.Equal(T(0x1000), first.Origin);
        Assert.Equal(Server.Stamps(Start), (first.Receive, first.Transmit));
        Assert.Equal(1UL, first.Receive.Value & 1);

        // Interleaved: origin = our receive timestamp of the first, receive = when the client got it.
        NtpHeader second = server.Exchange(s_clientA, first.Receive, T(0x1500), T(0x2000));
        Assert.Equal(T(0x1500), second.Origin);                                   // the request's receive
        Assert.Equal(Server.Stamps(Start + 1_000_000_000).Receive, second.Receive); // this request's T2
        Assert.Equal(first.Transmit, second.Transmit);                             // the first response's T3
        Assert.Equal(1, server.Counters.Interleaved);

        // The same request again (a replay, or a duplicate): that receive timestamp is spent (§2).
        NtpHeader replay = server.Exchange(s_clientA, first.Receive, T(0x1500), T(0x2000));
        Assert.Equal(T(0x2000), replay.Origin);
        Assert.Equal(1, server.Counters.Interleaved);

        // And the client goes on in interleaved mode from the second response.
        NtpHeader third = server.Exchange(s_clientA, second.Receive, T(0x2500), T(0x3000));
        Assert.Equal(T(0x2500), third.Origin);
        Assert.Equal(Server.Stamps(Start + 1_000_000_000).Transmit, third.Transmit);
        Assert.Equal(2, server.Counters.Interleaved);
    }

    [Fact]
    public void ALostRequest_TheNextStillFindsTheLastReceiveTimestamp_ALostResponseFallsBackToBasic()
    {
        using var server = new Server();
        NtpHeader first = server.Exchange(s_clientA, NtpTimestamp.Zero, NtpTimestamp.Zero, T(0x1000));
        // A request that never arrived changes nothing here; the client's next one still names the first response.
        NtpHeader second = server.Exchange(s_clientA, first.Receive, T(0x1500), T(0x3000));
        Assert.Equal(first.Transmit, second.Transmit);

        // The second response is lost: the client asks again naming the first, which is spent: basic mode,
        // which the client tells by the origin (its own transmit), and the exchange goes on from there.
        NtpHeader retry = server.Exchange(s_clientA, first.Receive, T(0x1500), T(0x4000));
        Assert.Equal(T(0x4000), retry.Origin);
        NtpHeader next = server.Exchange(s_clientA, retry.Receive, T(0x4500), T(0x5000));
        Assert.Equal(retry.Transmit, next.Transmit);
        Assert.Equal(2, server.Counters.Interleaved);
    }

    [Fact]
    public void ARestartedClient_AnotherClient_AndAnEqualReceiveAndTransmit_GetBasicMode()
    {
        using var server = new Server();
        NtpHeader first = server.Exchange(s_clientA, NtpTimestamp.Zero, NtpTimestamp.Zero, T(0x1000));

        // Another client echoing A's receive timestamp learns nothing of A's.
        NtpHeader other = server.Exchange(s_clientB, first.Receive, T(0x1500), T(0x2000));
        Assert.Equal(T(0x2000), other.Origin);
        // §2: a request whose receive equals its transmit is not interleaved.
        NtpHeader equal = server.Exchange(s_clientA, first.Receive, T(0x2000), T(0x2000));
        Assert.Equal(T(0x2000), equal.Origin);
        // A's restart: origin zero again, basic, and interleaved from there.
        NtpHeader restarted = server.Exchange(s_clientA, NtpTimestamp.Zero, NtpTimestamp.Zero, T(0x9000));
        Assert.Equal(T(0x9000), restarted.Origin);
        NtpHeader after = server.Exchange(s_clientA, restarted.Receive, T(0x9500), T(0xA000));
        Assert.Equal(restarted.Transmit, after.Transmit);
        Assert.Equal(1, server.Counters.Interleaved);
    }

    [Fact]
    public void AnUnsynchronisedAnswer_IsNeverTheBaseOfAnInterleavedOne()
    {
        using var server = new Server { State = ServerState.Unsynchronised(-20) };
        NtpHeader unsynchronised = server.Exchange(s_clientA, NtpTimestamp.Zero, NtpTimestamp.Zero, T(0x1000));
        Assert.Equal(LeapIndicator.Unsynchronised, unsynchronised.Leap);
        server.State = EngineFixture.SyncedCell().Current;
        // Its timestamps were not saved: the synchronised answer that names it is basic.
        NtpHeader next = server.Exchange(s_clientA, unsynchronised.Receive, T(0x1500), T(0x2000));
        Assert.Equal(T(0x2000), next.Origin);
        Assert.Equal(0, server.Counters.Interleaved);
    }

    [Fact]
    public void AnUnsynchronisedServer_AnswersInBasicMode()
    {
        using var server = new Server();
        NtpHeader first = server.Exchange(s_clientA, NtpTimestamp.Zero, NtpTimestamp.Zero, T(0x1000));
        server.State = ServerState.Unsynchronised(-20);
        NtpHeader second = server.Exchange(s_clientA, first.Receive, T(0x1500), T(0x2000));
        Assert.Equal(T(0x2000), second.Origin);
        Assert.Equal(LeapIndicator.Unsynchronised, second.Leap);
        Assert.Equal(0, server.Counters.Interleaved);
    }

    [Fact]
    public void WithoutInterleavedState_TimestampsAreUnmarked()
    {
        using var batch = new PacketBatch(1);
        var scratch = new BatchScratch(1, null);
        batch.Load(0, NtpQuery.ClientRequest(1), s_clientA, Start);
        var policy = new ServerPolicy(null, DenyAction.Ignore, null);
        ServerState state = EngineFixture.SyncedCell().Current;
        NtpWorker.ProcessBatch(batch, state, ref policy, new WorkerCounters(), scratch);
        NtpWorker.StampTransmit(batch, state, scratch, Start + 4);
        NtpHeader response = NtpHeader.Read(batch.Payload(0));
        Assert.Equal(NtpTimestamp.FromUnixNanoseconds(Start), response.Receive);
        Assert.Equal(NtpTimestamp.FromUnixNanoseconds(Start + 4), response.Transmit);
        Assert.Equal(1UL, response.Transmit.Value & 1); // 4 ns: fraction 17, odd as the clock gave it; nothing cleared it
    }

    /// <summary>
    /// Datagrams the kernel coalesced (GRO, or a client's UDP GSO send on loopback) arrive with one
    /// receive stamp: each response still gets a receive timestamp of its own, so each can be named
    /// by its client's next request (RFC 9769 §2: a timestamp two responses share answers neither).
    /// </summary>
    [Fact]
    public void RequestsSharingOneKernelStamp_GetReceiveTimestampsOfTheirOwn()
    {
        var table = new InterleavedTable(64, 5);
        using var batch = new PacketBatch(3);
        var scratch = new BatchScratch(3, null, table);
        for (int i = 0; i < 3; i++)
        {
            batch.Load(i, NtpQuery.ClientRequest(1 + (ulong)i), s_clientA, Start);
        }
        var policy = new ServerPolicy(null, DenyAction.Ignore, null);
        ServerState state = EngineFixture.SyncedCell().Current;
        NtpWorker.ProcessBatch(batch, state, ref policy, new WorkerCounters(), scratch);
        NtpWorker.StampTransmit(batch, state, scratch, Start + 50);
        NtpWorker.SaveInterleaved(batch, scratch);

        NtpTimestamp[] receives = [.. Enumerable.Range(0, 3).Select(i => NtpHeader.Read(batch.Payload(i)).Receive)];
        Assert.Equal(3, receives.Distinct().Count());
        Assert.Equal(NtpResponder.MarkReceive(NtpTimestamp.FromUnixNanoseconds(Start)), receives[0]);
        Assert.All(receives, r => Assert.True(table.TryTake(r, NetAddress.FromIPAddress(s_clientA.Address), out _), "each response can be named once"));
    }

    /// <summary>
    /// Only equal stamps are told apart: a queue need not be in stamp order (several NIC queues, a
    /// step of the clock back at a leap second), and each slot keeps the kernel's stamp of its own.
    /// </summary>
    [Fact]
    public void StampsOutOfOrder_AreKeptAsTheKernelGaveThem()
    {
        var table = new InterleavedTable(64, 5);
        using var batch = new PacketBatch(3);
        var scratch = new BatchScratch(3, null, table);
        long[] stamps = [Start, Start - 20_000, Start - 1_000_000_000];
        for (int i = 0; i < 3; i++)
        {
            batch.Load(i, NtpQuery.ClientRequest(1 + (ulong)i), s_clientA, stamps[i]);
        }
        var policy = new ServerPolicy(null, DenyAction.Ignore, null);
        NtpWorker.ProcessBatch(batch, EngineFixture.SyncedCell().Current, ref policy, new WorkerCounters(), scratch);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(NtpResponder.MarkReceive(NtpTimestamp.FromUnixNanoseconds(stamps[i])), NtpHeader.Read(batch.Payload(i)).Receive);
        }
    }
}
