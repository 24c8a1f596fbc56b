using System.Buffers.Binary;
using System.Net;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Timestamping;
using BenchmarkDotNet.Attributes;

namespace Appliance.Benchmarks;

/// <summary>
/// The whole per-batch path of a worker through the in-memory engine (no sockets): 64 requests from
/// 64 clients, access list and rate limiter on, answered in place and stamped. Budget: 0 B per request.
/// <see cref="Mode"/>: basic, without interleaved state (<c>ntp.interleaved: false</c>); basic clients
/// with the state kept (the default: every response's timestamps saved); interleaved, every request
/// naming the previous response to its client, so every answer is interleaved (RFC 9769).
/// </summary>
[MemoryDiagnoser]
public class EngineBenchmarks
{
    private const int Batch = 64;
    private readonly byte[] _request = new byte[48];
    private readonly byte[][] _requests = new byte[Batch][];
    private readonly IPEndPoint[] _clients = new IPEndPoint[Batch];
    private long _received = 1_795_435_203_000_000_000;
    private BatchScratch _stamp = null!;
    private readonly WorkerCounters _counters = new();
    private PacketBatch _batch = null!;
    private ServerPolicy _policy;
    private ServerState _state = null!;

    [Params("basic", "basic, state kept", "interleaved")]
    public string Mode { get; set; } = "basic";

    [GlobalSetup]
    public void Setup()
    {
        _stamp = new BatchScratch(Batch, null, Mode == "basic" ? null : new InterleavedTable(EngineOptions.DefaultInterleavedEntries, 3));
        _request[0] = NtpHeader.FirstOctet(LeapIndicator.Unsynchronised, 4, NtpMode.Client);
        BinaryPrimitives.WriteUInt64BigEndian(_request.AsSpan(40), 0x0123456789ABCDEF);
        _batch = new PacketBatch(Batch);
        for (int i = 0; i < Batch; i++)
        {
            _clients[i] = new IPEndPoint(IPAddress.Parse($"192.0.2.{i + 1}"), 40000 + i);
            _requests[i] = [.. _request];
        }
        Assert(AccessRule.TryParse("0.0.0.0/0", true, out AccessRule v4));
        Assert(AccessRule.TryParse("192.0.2.200/32", false, out AccessRule deny));
        var limiter = new RateLimiter(RateLimitSettings.Default with { Burst = 1000, Interval = TimeSpan.FromMilliseconds(1) }, 1 << 16, 1, 2);
        _policy = new ServerPolicy(new AccessList([v4, deny]), DenyAction.Ignore, limiter);
        _state = new ServerState
        {
            Leap = LeapIndicator.NoWarning,
            Stratum = 2,
            ReferenceId = 0xC0000201,
            Precision = -24,
            RootDelay = 0.001,
            RootDispersion = 0.0005,
        };
    }

    private static void Assert(bool condition)
    {
        if (!condition)
        {
            throw new InvalidOperationException("benchmark setup failed");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _batch.Dispose();

    [Benchmark(OperationsPerInvoke = Batch, Description = "ProcessBatch+StampTransmit, per request")]
    public void WholeBatchPath()
    {
        // Each request its own receive timestamp, later every time (kernel timestamps differ and move
        // on): the interleaved state keys on them, so its table fills and evicts as a worker's does.
        for (int i = 0; i < Batch; i++)
        {
            _batch.Load(i, _requests[i], _clients[i], _received + (i * 1000));
        }
        _received += Batch * 1000;
        NtpWorker.ProcessBatch(_batch, _state, ref _policy, _counters, _stamp);
        NtpWorker.StampTransmit(_batch, _state, _stamp, _received + 50_000);
        NtpWorker.SaveInterleaved(_batch, _stamp);
        if (Mode == "interleaved")
        {
            // The next request of each client names this response (origin = its receive timestamp), as chrony's xleave does.
            for (int i = 0; i < Batch; i++)
            {
                _batch.Payload(i).Slice(NtpHeader.ReceiveOffset, 8).CopyTo(_requests[i].AsSpan(NtpHeader.OriginOffset));
                BinaryPrimitives.WriteUInt64BigEndian(_requests[i].AsSpan(NtpHeader.ReceiveOffset), 0x0123456789AB0000);
            }
        }
    }
}
