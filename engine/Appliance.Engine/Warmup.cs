using System.Net;
using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Engine;

/// <summary>
/// Runs the batch path on synthetic packets before a worker takes real ones. Without it the first
/// client after start pays for JIT compilation between its receive and transmit timestamps, which a
/// client sees as path asymmetry: a millisecond of offset error on a one-shot client such as ntpdig.
/// </summary>
internal static class Warmup
{
    public static void RequestPath(ServerState state, int rounds = 64)
    {
        using var batch = new PacketBatch(1);
        var counters = new WorkerCounters();
        var stamp = new bool[1];
        var policy = default(AllowAllPolicy);
        var source = new IPEndPoint(IPAddress.Loopback, 123);
        Span<byte> request = stackalloc byte[NtpHeader.Length];
        for (int i = 0; i < rounds; i++)
        {
            batch.Clear();
            request.Clear();
            request[0] = NtpHeader.FirstOctet(LeapIndicator.Unsynchronised, 4, NtpMode.Client);
            batch.Load(0, request, source, SystemClock.RealtimeNanoseconds());
            NtpWorker.ProcessBatch(batch, state, ref policy, counters, stamp);
            NtpWorker.StampTransmit(batch, state, stamp, SystemClock.RealtimeNanoseconds());
        }
    }
}
