using System.Buffers.Binary;

namespace Appliance.Protocol;

/// <summary>Leap indicator, RFC 5905 §7.3.</summary>
public enum LeapIndicator : byte
{
    NoWarning = 0,
    InsertSecond = 1,
    DeleteSecond = 2,
    Unsynchronised = 3,
}

/// <summary>Association mode, RFC 5905 §7.3 (6 and 7 are the NTP control and private protocols).</summary>
public enum NtpMode : byte
{
    Reserved = 0,
    SymmetricActive = 1,
    SymmetricPassive = 2,
    Client = 3,
    Server = 4,
    Broadcast = 5,
    Control = 6,
    Private = 7,
}

/// <summary>
/// The 48-byte NTP header, RFC 5905 §7.3 Figure 8.
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |LI | VN  |Mode |    Stratum     |     Poll      |  Precision   |   0
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Root Delay                            |   4
/// |                         Root Dispersion                       |   8
/// |                          Reference ID                         |  12
/// |                     Reference Timestamp (64)                  |  16
/// |                      Origin Timestamp (64)                    |  24
/// |                      Receive Timestamp (64)                   |  32
/// |                      Transmit Timestamp (64)                  |  40
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// </summary>
public struct NtpHeader
{
    public const int Length = 48;
    public const int OriginOffset = 24;
    public const int ReceiveOffset = 32;
    public const int TransmitOffset = 40;

    public LeapIndicator Leap;
    public byte Version;
    public NtpMode Mode;
    public byte Stratum;
    public sbyte Poll;
    public sbyte Precision;
    public NtpShort RootDelay;
    public NtpShort RootDispersion;
    public uint ReferenceId;
    public NtpTimestamp Reference;
    public NtpTimestamp Origin;
    public NtpTimestamp Receive;
    public NtpTimestamp Transmit;

    /// <summary>Reads a header; false when the buffer is shorter than 48 bytes.</summary>
    public static bool TryRead(ReadOnlySpan<byte> packet, out NtpHeader header)
    {
        if (packet.Length < Length)
        {
            header = default;
            return false;
        }
        header = Read(packet);
        return true;
    }

    public static NtpHeader Read(ReadOnlySpan<byte> p)
    {
        p = p[..Length];
        byte first = p[0];
        return new NtpHeader
        {
            Leap = (LeapIndicator)(first >> 6),
            Version = (byte)((first >> 3) & 7),
            Mode = (NtpMode)(first & 7),
            Stratum = p[1],
            Poll = (sbyte)p[2],
            Precision = (sbyte)p[3],
            RootDelay = NtpShort.Read(p[4..]),
            RootDispersion = NtpShort.Read(p[8..]),
            ReferenceId = BinaryPrimitives.ReadUInt32BigEndian(p[12..]),
            Reference = NtpTimestamp.Read(p[16..]),
            Origin = NtpTimestamp.Read(p[24..]),
            Receive = NtpTimestamp.Read(p[32..]),
            Transmit = NtpTimestamp.Read(p[40..]),
        };
    }

    public readonly void Write(Span<byte> p)
    {
        p = p[..Length];
        p[0] = FirstOctet(Leap, Version, Mode);
        p[1] = Stratum;
        p[2] = (byte)Poll;
        p[3] = (byte)Precision;
        RootDelay.Write(p[4..]);
        RootDispersion.Write(p[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(p[12..], ReferenceId);
        Reference.Write(p[16..]);
        Origin.Write(p[24..]);
        Receive.Write(p[32..]);
        Transmit.Write(p[40..]);
    }

    public static byte FirstOctet(LeapIndicator leap, byte version, NtpMode mode) =>
        (byte)(((byte)leap << 6) | ((version & 7) << 3) | ((byte)mode & 7));
}
