using System.Buffers.Binary;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>NTS-KE record types (RFC 8915 §4.1).</summary>
public enum NtsKeRecordType : ushort
{
    EndOfMessage = 0,
    NextProtocol = 1,
    Error = 2,
    Warning = 3,
    AeadAlgorithm = 4,
    NewCookie = 5,
    Server = 6,
    Port = 7,

    /// <summary>
    /// chrony's "Compliant AES-128-GCM-SIV Exporter Context" (type 1024, non-critical, empty body;
    /// chrony-project.org/doc/spec/nts-compliant-128gcm.html): chrony 4.4 to 4.6.0 put AEAD id 15,
    /// not 30, in the RFC 8915 §5.1 exporter context of AES-128-GCM-SIV keys, and later chrony keeps
    /// doing so unless both sides send this record.
    /// </summary>
    CompliantAes128GcmSivExport = 1024,
}

/// <summary>NTS-KE error codes (RFC 8915 §4.1.3).</summary>
public enum NtsKeErrorCode : ushort
{
    UnrecognizedCriticalRecord = 0,
    BadRequest = 1,
    InternalServerError = 2,
}

/// <summary>One record: C bit, 15-bit type, 16-bit body length, body (RFC 8915 §4).</summary>
/// <remarks>
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |C|         Record Type         |          Body Length          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// .                        Record Body                            .
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// </code>
/// </remarks>
public readonly ref struct NtsKeRecord(bool critical, ushort type, ReadOnlySpan<byte> body)
{
    public bool Critical { get; } = critical;
    public ushort Type { get; } = type;
    public ReadOnlySpan<byte> Body { get; } = body;
}

/// <summary>The NTS-KE record codec over spans.</summary>
public static class NtsKeRecords
{
    public const int HeaderLength = 4;

    /// <summary>NTS Next Protocol id for NTPv4 (RFC 8915 §7.7).</summary>
    public const ushort NtpV4 = 0;

    /// <summary>Cookies handed out per key exchange: RFC 8915 §4.1.6 says servers SHOULD send eight.</summary>
    public const int CookieCount = 8;

    /// <summary>Length of the TLS exporter context (RFC 8915 §5.1).</summary>
    public const int ExporterContextLength = 5;

    /// <summary>The TLS exporter label for NTS keys (RFC 8915 §5.1).</summary>
    public static ReadOnlySpan<byte> ExporterLabel => "EXPORTER-network-time-security"u8;

    /// <summary>
    /// The exporter context of RFC 8915 §5.1: Protocol ID (NTPv4, 2 octets) ‖ AEAD id (2 octets) ‖
    /// 0x00 for the C2S key or 0x01 for the S2C key. <paramref name="aead"/> is the id the context
    /// carries (<see cref="ExporterAead"/>), which for AES-128-GCM-SIV need not be the one agreed.
    /// </summary>
    public static void WriteExporterContext(Span<byte> context, AeadAlgorithm aead, bool serverToClient)
    {
        BinaryPrimitives.WriteUInt16BigEndian(context, NtpV4);
        BinaryPrimitives.WriteUInt16BigEndian(context[2..], (ushort)aead);
        context[4] = serverToClient ? (byte)1 : (byte)0;
    }

    /// <summary>
    /// The AEAD id for the exporter context of keys for <paramref name="agreed"/>: itself, except
    /// AES-128-GCM-SIV without the compliant-context record on both sides
    /// (<see cref="NtsKeRecordType.CompliantAes128GcmSivExport"/>), where it is 15, as every chrony
    /// since 4.4 computes it; key lengths still follow the AEAD agreed.
    /// </summary>
    public static AeadAlgorithm ExporterAead(AeadAlgorithm agreed, bool compliantContext) =>
        agreed == AeadAlgorithm.Aes128GcmSiv && !compliantContext ? AeadAlgorithm.AesSivCmac256 : agreed;

    /// <summary>Reads one record; false when the buffer does not yet hold a whole one.</summary>
    public static bool TryRead(ReadOnlySpan<byte> buffer, out NtsKeRecord record, out int consumed)
    {
        record = default;
        consumed = 0;
        if (buffer.Length < HeaderLength)
        {
            return false;
        }
        ushort first = BinaryPrimitives.ReadUInt16BigEndian(buffer);
        int length = BinaryPrimitives.ReadUInt16BigEndian(buffer[2..]);
        if (buffer.Length < HeaderLength + length)
        {
            return false;
        }
        record = new NtsKeRecord((first & 0x8000) != 0, (ushort)(first & 0x7FFF), buffer.Slice(HeaderLength, length));
        consumed = HeaderLength + length;
        return true;
    }

    public static int Write(Span<byte> destination, bool critical, NtsKeRecordType type, ReadOnlySpan<byte> body)
    {
        WriteHeader(destination, critical, type, body.Length);
        body.CopyTo(destination[HeaderLength..]);
        return HeaderLength + body.Length;
    }

    /// <summary>Writes a record's header only; its <paramref name="bodyLength"/> octets follow, written by the caller.</summary>
    public static void WriteHeader(Span<byte> destination, bool critical, NtsKeRecordType type, int bodyLength)
    {
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)((critical ? 0x8000 : 0) | (ushort)type));
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)bodyLength);
    }

    public static int WriteUInt16(Span<byte> destination, bool critical, NtsKeRecordType type, ushort value)
    {
        Span<byte> body = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(body, value);
        return Write(destination, critical, type, body);
    }

    /// <summary>Length of the answer <see cref="WriteError"/> writes: Error (4 + 2) and End of Message (4).</summary>
    public const int ErrorResponseLength = HeaderLength + 2 + HeaderLength;

    public static int WriteError(Span<byte> destination, NtsKeErrorCode code)
    {
        int n = WriteUInt16(destination, true, NtsKeRecordType.Error, (ushort)code);
        return n + Write(destination[n..], true, NtsKeRecordType.EndOfMessage, []);
    }

    /// <summary>True when every octet of a list body (RFC 8915 §4.1.2, §4.1.5) is part of a 16-bit value.</summary>
    internal static bool IsUInt16List(ReadOnlySpan<byte> body) => body.Length > 0 && (body.Length & 1) == 0;

    internal static bool Contains(ReadOnlySpan<byte> list, ushort value)
    {
        for (int i = 0; i + 1 < list.Length; i += 2)
        {
            if (BinaryPrimitives.ReadUInt16BigEndian(list[i..]) == value)
            {
                return true;
            }
        }
        return false;
    }
}

/// <summary>
/// One NTS-KE message as it arrives over TLS, in pieces of any size (RFC 8915 §4): the octets are
/// held, at most <c>limit</c> of them (DESIGN.md boundary 6: bounded before it is parsed), and handed
/// out as whole records, in order, as soon as each is complete. Both session machines read through it.
/// </summary>
internal sealed class NtsKeMessageReader
{
    private readonly int _limit;
    private byte[] _buffer;
    private int _length;
    private int _read;

    public NtsKeMessageReader(int limit, int initialCapacity)
    {
        _limit = limit;
        _buffer = new byte[Math.Min(limit, initialCapacity)];
    }

    /// <summary>The limit is reached: no more octets will be taken.</summary>
    public bool IsFull => _length == _limit;

    /// <summary>Octets taken that no record has consumed yet.</summary>
    public bool HasUnread => _read < _length;

    /// <summary>Takes as much of <paramref name="data"/> as the limit allows; returns how many octets.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        int take = Math.Min(data.Length, _limit - _length);
        if (_length + take > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Min(_limit, Math.Max(_buffer.Length * 2, _length + take)));
        }
        data[..take].CopyTo(_buffer.AsSpan(_length));
        _length += take;
        return take;
    }

    /// <summary>The next whole record, whose body stays valid until the next <see cref="Append"/>.</summary>
    public bool TryRead(out NtsKeRecord record)
    {
        if (!NtsKeRecords.TryRead(_buffer.AsSpan(_read, _length - _read), out record, out int consumed))
        {
            return false;
        }
        _read += consumed;
        return true;
    }
}
