using System.Net;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;
using BenchmarkDotNet.Attributes;

namespace Appliance.Benchmarks;

/// <summary>
/// The whole per-batch NTS path (in memory): 64 authenticated requests with a cookie and a
/// placeholder each, cookies opened, authenticators verified, two fresh cookies per response, each
/// response stamped and sealed, for each session AEAD (the cookies are AES-SIV for both). Budget:
/// 0 B per request.
/// </summary>
[MemoryDiagnoser]
public class NtsBenchmarks
{
    private const int Batch = 64;
    private readonly WorkerCounters _counters = new();
    private readonly byte[][] _requests = new byte[Batch][];
    private BatchScratch _scratch = null!;
    private PacketBatch _batch = null!;
    private AllowAllPolicy _policy;
    private readonly ServerState _state = new()
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = 2,
        ReferenceId = 0xC0000201,
        Precision = -24,
    };

    [Params(AeadAlgorithm.AesSivCmac256, AeadAlgorithm.Aes128GcmSiv)]
    public AeadAlgorithm Aead { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var key = new CookieKey(1, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        var cell = new CookieKeyRingCell(new CookieKeyRing(key, []));
        _scratch = new BatchScratch(Batch, new NtsPacketHandler(cell, new CsprngBuffer(), Batch));
        int keyLength = AeadAlgorithms.KeyLength(Aead);
        for (int i = 0; i < Batch; i++)
        {
            byte[] c2s = Enumerable.Range(i, keyLength).Select(b => (byte)b).ToArray();
            byte[] s2c = Enumerable.Range(i + 50, keyLength).Select(b => (byte)b).ToArray();
            var cookie = new byte[NtsCookie.Length(Aead)];
            NtsCookie.Seal(key, new byte[16], Aead, c2s, s2c, cookie);
            var packet = new byte[1024];
            int n = NtsClientPacket.WriteRequest(packet, (ulong)i, Enumerable.Range(i, 32).Select(b => (byte)b).ToArray(), cookie, 1, new byte[16],
                AeadAlgorithms.Create(Aead, c2s));
            _requests[i] = packet[..n];
        }
        _batch = new PacketBatch(Batch);
        for (int i = 0; i < Batch; i++)
        {
            _batch.Load(i, _requests[i], new IPEndPoint(IPAddress.Parse($"192.0.2.{i + 1}"), 40000 + i), 1_795_435_203_000_000_000);
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _batch.Dispose();

    [Benchmark(OperationsPerInvoke = Batch, Description = "NTS ProcessBatch+StampAndSeal, per request")]
    public void WholeNtsBatchPath()
    {
        for (int i = 0; i < Batch; i++)
        {
            _requests[i].CopyTo(_batch.Payload(i));
        }
        NtpWorker.ProcessBatch(_batch, _state, ref _policy, _counters, _scratch);
        NtpWorker.StampAndSeal(_batch, _state, _scratch, _counters);
    }
}
