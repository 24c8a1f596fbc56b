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
        // As if synchronised: the paths of served time (interleaved mode among them) are the ones to compile.
        state = state.IsSynchronised ? state : state with { Leap = LeapIndicator.NoWarning, Stratum = 2 };
        using var batch = new PacketBatch(1);
        var counters = new WorkerCounters();
        // With interleaved state, so that its paths are compiled too (RFC 9769: the plain request names the previous answer).
        var scratch = new BatchScratch(1, nts, new InterleavedTable(4, 0));
        var policy = default(AllowAllPolicy);
        var source = new IPEndPoint(IPAddress.Loopback, 123);
        var request = new byte[PacketBatch.SlotSize];
        int plainLength = NtpHeader.Length;
        request[0] = NtpHeader.FirstOctet(LeapIndicator.Unsynchronised, 4, NtpMode.Client);
        // NTS requests, one per AEAD (AES-SIV on the lanes, GCM-SIV on its own path), after the plain one.
        int siv = 0, gcm = 0;
        if (nts?.Keys.Current is { } ring)
        {
            siv = NtsRequest(ring, AeadAlgorithm.AesSivCmac256, request.AsSpan(512, 512));
            gcm = NtsRequest(ring, AeadAlgorithm.Aes128GcmSiv, request.AsSpan(1024, 512));
        }
        for (int i = 0; i < rounds; i++)
        {
            Span<byte> packet = (i % 3) switch
            {
                1 when siv > 0 => request.AsSpan(512, siv),
                2 when gcm > 0 => request.AsSpan(1024, gcm),
                _ => request.AsSpan(0, plainLength),
            };
            batch.Clear();
            batch.Load(0, packet, source, SystemClock.RealtimeNanoseconds());
            NtpWorker.ProcessBatch(batch, state, ref policy, counters, scratch);
            NtpWorker.StampAndSeal(batch, state, scratch, counters);
            NtpWorker.SaveInterleaved(batch, scratch);
            if (packet.Length == plainLength)
            {
                batch.Payload(0).Slice(NtpHeader.ReceiveOffset, 8).CopyTo(request.AsSpan(NtpHeader.OriginOffset));
                request[NtpHeader.ReceiveOffset + 7] = 1; // a receive timestamp of the client's, not its transmit's
            }
        }
    }

    private static int NtsRequest(CookieKeyRing ring, AeadAlgorithm aead, Span<byte> packet)
    {
        var c2s = new byte[AeadAlgorithms.KeyLength(aead)];
        var s2c = new byte[c2s.Length];
        var cookie = new byte[NtsCookie.Length(aead)];
        NtsCookie.Seal(ring.Current, new byte[NtsCookie.NonceLength], aead, c2s, s2c, cookie);
        return NtsClientPacket.WriteRequest(packet, 1, new byte[NtsClientPacket.UniqueIdentifierLength], cookie, 1,
            new byte[AeadAlgorithms.MaxNonceLength], AeadAlgorithms.Create(aead, c2s));
    }
}
