using System.Security.Cryptography;
using Appliance.Protocol.Roughtime;
using BenchmarkDotNet.Attributes;
using NSec.Cryptography;

namespace Appliance.Benchmarks;

/// <summary>
/// The Roughtime server's batch path (RFC 10049, in memory): every request of a received batch
/// checked and hashed into the Merkle tree, one Ed25519 signature over the batch's SREP, and each
/// answer written in place over its request; and one signature alone. A batch of 1 is the worst
/// case, a signature per request; 64 is a full recvmmsg batch. Budget: 0 B per request.
/// </summary>
[MemoryDiagnoser]
public class RoughtimeBenchmarks
{
    private readonly byte[][] _requests = new byte[64][];
    private readonly byte[][] _buffers = new byte[64][];
    private RoughtimeResponder _responder = null!;
    private Key _online = null!;
    private readonly byte[] _signature = new byte[64];
    private readonly byte[] _srep = new byte[96];

    [Params(1, 64)]
    public int Batch { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        using Key longTerm = Key.Create(SignatureAlgorithm.Ed25519);
        byte[] publicKey = longTerm.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        _online = Key.Create(SignatureAlgorithm.Ed25519);
        _responder = new RoughtimeResponder(publicKey, 64, 2048)
        {
            Delegation = RoughtimeDelegation.Create(longTerm, Key.Create(SignatureAlgorithm.Ed25519), 0, ulong.MaxValue),
        };
        for (int i = 0; i < 64; i++)
        {
            _requests[i] = new byte[RoughtimeClient.RequestPacketLength];
            RoughtimeClient.WriteRequest(_requests[i], RandomNumberGenerator.GetBytes(32), publicKey, [RoughtimeVersion.Rfc]);
            _buffers[i] = new byte[2048];
        }
    }

    /// <summary>One batch answered; divide by <see cref="Batch"/> for a request.</summary>
    [Benchmark]
    public int AnswerBatch()
    {
        _responder.Clear();
        for (int i = 0; i < Batch; i++)
        {
            _requests[i].CopyTo(_buffers[i], 0); // the datagram as received
            _responder.Accept(i, _buffers[i].AsSpan(0, RoughtimeClient.RequestPacketLength));
        }
        _responder.Sign(1_800_000_000, 3);
        int total = 0;
        for (int i = 0; i < Batch; i++)
        {
            total += _responder.WriteResponse(i, _buffers[i], out _);
        }
        return total;
    }

    /// <summary>One Ed25519 signature over an SREP-sized message with its context: the per-batch cost.</summary>
    [Benchmark]
    public byte Signature()
    {
        RoughtimeDelegation.Sign(_online, RoughtimeContext.Response, _srep, _signature);
        return _signature[0];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _responder.Delegation?.Dispose();
        _online.Dispose();
    }
}
