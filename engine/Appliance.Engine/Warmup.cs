using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;

namespace Appliance.Engine;

/// <summary>
/// Runs the batch path on synthetic packets before a worker takes real ones. Without it the first
/// client after start pays for JIT compilation between its receive and transmit timestamps, which a
/// client sees as path asymmetry: a millisecond of offset error on a one-shot client such as ntpdig.
/// With NTS on, an authenticated request made with a cookie of the current ring runs too.
/// </summary>
internal static class Warmup
{
    public static void RequestPath(ServerState state, NtsPacketHandler? nts, int rounds = 64)
    {
        using var batch = new PacketBatch(1);
        var counters = new WorkerCounters();
        var scratch = new BatchScratch(1, nts);
        var policy = default(AllowAllPolicy);
        var source = new IPEndPoint(IPAddress.Loopback, 123);
        var request = new byte[PacketBatch.SlotSize];
        int plainLength = NtpHeader.Length;
        request[0] = NtpHeader.FirstOctet(LeapIndicator.Unsynchronised, 4, NtpMode.Client);
        int ntsLength = nts?.Keys.Current is { } ring ? NtsRequest(ring, request.AsSpan(1024)) : 0;
        for (int i = 0; i < rounds; i++)
        {
            bool useNts = ntsLength > 0 && (i & 1) == 1;
            batch.Clear();
            batch.Load(0, useNts ? request.AsSpan(1024, ntsLength) : request.AsSpan(0, plainLength), source, SystemClock.RealtimeNanoseconds());
            NtpWorker.ProcessBatch(batch, state, ref policy, counters, scratch);
            NtpWorker.StampAndSeal(batch, state, scratch, counters);
        }
    }

    private static int NtsRequest(CookieKeyRing ring, Span<byte> packet)
    {
        var c2s = new byte[32];
        var s2c = new byte[32];
        var cookie = new byte[NtsCookie.Length(AeadAlgorithm.AesSivCmac256)];
        NtsCookie.Seal(ring.Current, new byte[NtsCookie.NonceLength], AeadAlgorithm.AesSivCmac256, c2s, s2c, cookie);
        return NtsClientPacket.WriteRequest(packet, 1, new byte[NtsClientPacket.UniqueIdentifierLength], cookie, 1,
            new byte[NtsClientPacket.ClientNonceLength], new AesSiv(c2s));
    }
}
