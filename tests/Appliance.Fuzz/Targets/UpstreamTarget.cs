using System.Buffers.Binary;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Protocol.Crypto;
using Appliance.Testing;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The upstream client's response handling (RFC 5905 §8, RFC 8915 §5.7): an <see cref="NtpAssociation"/>
/// polls, sends, and is handed each datagram of the input as the reply. Octet 0 is the setting:
/// bit 0 an NTS association (keys and cookies from a fixed key exchange), bit 1 each datagram's origin
/// timestamp overwritten with the request's transmit timestamp (so mutations reach past the
/// "not ours" check). Then up to <see cref="MaxDatagrams"/> datagrams, each a 16-bit big-endian length
/// and its octets. Invariants: no exception; every reason and action is defined; a sample's T1 and T4
/// are the driver's own send and receive times and T3 is not before T2; the cookie pool stays bounded.
/// </summary>
public static class UpstreamTarget
{
    public const int MaxInput = 1 + (MaxDatagrams * (2 + 1280));

    public const int MaxDatagrams = 4;

    private const long Second = 1_000_000_000L;

    public static void Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty)
        {
            return;
        }
        byte setting = input[0];
        byte[] rest = input[1..].ToArray();
        int offset = 0;
        Drive((setting & 1) != 0, (setting & 2) != 0, _ =>
        {
            if (rest.Length - offset < 2)
            {
                return null;
            }
            int length = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(rest.AsSpan(offset)), rest.Length - offset - 2);
            byte[] datagram = rest.AsSpan(offset + 2, length).ToArray();
            offset += 2 + length;
            return datagram;
        });
    }

    /// <summary>
    /// Runs an association: each time it sends, <paramref name="reply"/> is given the request and
    /// returns the datagram that arrives (null: the run ends). Shared with the seed writer, whose
    /// replies are the real server's.
    /// </summary>
    internal static void Drive(bool nts, bool patchOrigin, Func<byte[], byte[]?> reply)
    {
        var association = new NtpAssociation(new AssociationOptions { Nts = nts, MinPoll = 4, MaxPoll = 6, Iburst = false }, new CountingRandom());
        long now = 1000 * Second; // monotonic
        byte[] request = new byte[1280];
        for (int datagrams = 0; datagrams < MaxDatagrams; datagrams++)
        {
            int length = 0;
            PollAction action = PollAction.Wait;
            for (int polls = 0; polls < 4 && action != PollAction.Send; polls++)
            {
                now = Math.Max(now, association.WakeAt);
                action = association.Poll(now, request, out length);
                InvariantViolatedException.Check(Enum.IsDefined(action), $"poll action {(int)action}");
                if (action == PollAction.Stop)
                {
                    return;
                }
                if (action == PollAction.KeyExchange)
                {
                    AeadAlgorithm aead = AeadAlgorithm.AesSivCmac256;
                    association.KeyExchanged(aead, Fixed.C2S(aead), Fixed.S2C(aead),
                        Enumerable.Range(0, NtpAssociation.CookiePool).Select(i => Fixed.Cookie(aead, (byte)i)), now);
                }
            }
            if (action != PollAction.Send)
            {
                return;
            }
            long t1 = Fixed.ReceiveUnixNs + now;
            association.Sent(t1, now);
            byte[] sent = request[..length];
            if (reply(sent) is not { } datagram)
            {
                return;
            }
            if (patchOrigin && datagram.Length >= NtpHeader.OriginOffset + 8)
            {
                sent.AsSpan(NtpHeader.TransmitOffset, 8).CopyTo(datagram.AsSpan(NtpHeader.OriginOffset));
            }
            now += 2_000_000;
            long t4 = Fixed.ReceiveUnixNs + now;
            ReplyReason reason = association.Receive(datagram, t4, now, out Measurement measurement);
            InvariantViolatedException.Check(Enum.IsDefined(reason), $"reply reason {(int)reason}");
            if (reason == ReplyReason.Sample)
            {
                InvariantViolatedException.Check(measurement.T1 == t1 && measurement.T4 == t4 && measurement.T3 >= measurement.T2,
                    $"a sample T1 {measurement.T1} T2 {measurement.T2} T3 {measurement.T3} T4 {measurement.T4} (sent {t1}, received {t4})");
            }
            InvariantViolatedException.Check(association.Cookies <= NtpAssociation.CookiePool, $"{association.Cookies} cookies kept");
        }
    }
}
