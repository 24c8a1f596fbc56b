using System.Buffers.Binary;
using Appliance.Protocol;
using BenchmarkDotNet.Attributes;

namespace Appliance.Benchmarks;

/// <summary>The pure responder on one request: the budget is 0 B allocated.</summary>
[MemoryDiagnoser]
public class ResponderBenchmarks
{
    private readonly byte[] _request = new byte[48];
    private readonly byte[] _buffer = new byte[1280];
    private readonly ServerState _state = new()
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = 2,
        ReferenceId = 0xC0000201,
        Precision = -24,
        RootDelay = 0.001,
        RootDispersion = 0.0005,
    };

    [GlobalSetup]
    public void Setup()
    {
        _request[0] = NtpHeader.FirstOctet(LeapIndicator.Unsynchronised, 4, NtpMode.Client);
        BinaryPrimitives.WriteUInt64BigEndian(_request.AsSpan(40), 0x0123456789ABCDEF);
    }

    [Benchmark]
    public int RespondToClientRequest()
    {
        _request.CopyTo(_buffer, 0);
        var policy = default(AllowAllPolicy);
        var context = new RequestContext(NetAddress.FromIPv4(0x7F000001), 1_795_435_203_000_000_000, NtpTimestamp.FromUnixNanoseconds(1_795_435_203_000_000_000));
        NtpResponder.Respond(_buffer, _request.Length, context, _state, ref policy, out int length);
        NtpResponder.StampTransmit(_buffer, context.ReceiveTime);
        return length;
    }
}
