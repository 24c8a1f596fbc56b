using System.Buffers.Binary;

namespace Appliance.Testing;

/// <summary>
/// IEEE 1588-2008 messages as a master sends them over UDP/IPv4 (Annex D) — or as someone pretending
/// to be it would: the 34-byte common header (§13.3) and each message's body, timestamps in Unix
/// nanoseconds.
/// </summary>
/// <remarks>
/// <code>
///  0      1      2-3            4      5      6-7        8-15        16-19   20-29               30-31     32       33
/// +------+------+--------------+------+------+----------+-----------+-------+-------------------+---------+--------+--------+
/// | type | ver  | length       |domain| res. | flags    | correction| res.  | sourcePortIdentity| sequence| control| logInt |
/// +------+------+--------------+------+------+----------+-----------+-------+-------------------+---------+--------+--------+
/// </code>
/// </remarks>
public static class PtpMessages
{
    /// <summary>flagField[1] bits (§13.3.2.6).</summary>
    public const byte Leap61 = 0x01, Leap59 = 0x02, UtcOffsetValid = 0x04, PtpTimescale = 0x08;

    /// <summary>Announce (§13.5, 64 bytes): currentUtcOffset at 44, grandmaster fields after it.</summary>
    public static byte[] Announce(ReadOnlySpan<byte> identity, ushort sequence, byte flags = 0, short utcOffset = 37, byte domain = 0)
    {
        byte[] message = Header(0xB, 64, identity, sequence, control: 5, flags, domain);
        BinaryPrimitives.WriteInt16BigEndian(message.AsSpan(44), utcOffset);
        message[47] = 128; // grandmasterPriority1
        message[48] = 248; // clockClass: default, slave-capable
        message[49] = 0xFE; // clockAccuracy unknown
        BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(50), 0xFFFF);
        message[52] = 128; // grandmasterPriority2
        identity[..8].CopyTo(message.AsSpan(53));
        message[63] = 0xA0; // timeSource INTERNAL_OSCILLATOR
        return message;
    }

    /// <summary>Sync (§13.6, 44 bytes): one-step with its origin timestamp, or two-step (the time follows in Follow_Up).</summary>
    public static byte[] Sync(ReadOnlySpan<byte> identity, ushort sequence, long? originNanoseconds, byte domain = 0)
    {
        byte[] message = Header(0x0, 44, identity, sequence, control: 0, 0, domain);
        if (originNanoseconds is { } origin)
        {
            WriteTimestamp(message.AsSpan(34), origin);
        }
        else
        {
            message[6] = 0x02; // twoStepFlag
        }
        return message;
    }

    /// <summary>Follow_Up (§13.7, 44 bytes): the precise origin of the two-step Sync of the same sequence.</summary>
    public static byte[] FollowUp(ReadOnlySpan<byte> identity, ushort sequence, long originNanoseconds, byte domain = 0)
    {
        byte[] message = Header(0x8, 44, identity, sequence, control: 2, 0, domain);
        WriteTimestamp(message.AsSpan(34), originNanoseconds);
        return message;
    }

    /// <summary>Delay_Resp (§13.8, 54 bytes): when the Delay_Req of <paramref name="requester"/> arrived.</summary>
    public static byte[] DelayResp(ReadOnlySpan<byte> identity, ushort sequence, long receiveNanoseconds, ReadOnlySpan<byte> requester, byte domain = 0)
    {
        byte[] message = Header(0x9, 54, identity, sequence, control: 3, 0, domain);
        WriteTimestamp(message.AsSpan(34), receiveNanoseconds);
        requester[..10].CopyTo(message.AsSpan(44));
        return message;
    }

    /// <summary>The sourcePortIdentity of a message (clockIdentity and port number).</summary>
    public static byte[] IdentityOf(ReadOnlySpan<byte> message) => message.Slice(20, 10).ToArray();

    /// <summary>The sequenceId of a message.</summary>
    public static ushort SequenceOf(ReadOnlySpan<byte> message) => BinaryPrimitives.ReadUInt16BigEndian(message[30..]);

    private static byte[] Header(byte type, int length, ReadOnlySpan<byte> identity, ushort sequence, byte control, byte flags1, byte domain)
    {
        var message = new byte[length];
        message[0] = type;
        message[1] = 2;
        BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(2), (ushort)length);
        message[4] = domain;
        message[7] = flags1;
        identity[..10].CopyTo(message.AsSpan(20));
        BinaryPrimitives.WriteUInt16BigEndian(message.AsSpan(30), sequence);
        message[32] = control;
        message[33] = 0x7F;
        return message;
    }

    /// <summary>UInteger48 seconds and UInteger32 nanoseconds (§5.3.3).</summary>
    private static void WriteTimestamp(Span<byte> field, long unixNanoseconds)
    {
        long seconds = unixNanoseconds / 1_000_000_000;
        BinaryPrimitives.WriteUInt16BigEndian(field, (ushort)(seconds >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(field[2..], (uint)seconds);
        BinaryPrimitives.WriteUInt32BigEndian(field[6..], (uint)(unixNanoseconds % 1_000_000_000));
    }
}
