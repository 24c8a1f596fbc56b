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
}

/// <summary>NTS-KE error codes (RFC 8915 §4.1.3).</summary>
public enum NtsKeErrorCode : ushort
{
    UnrecognizedCriticalRecord = 0,
    BadRequest = 1,
    InternalServerError = 2,
}

/// <summary>One record: C bit, 15-bit type, 16-bit body length, body (RFC 8915 §4).</summary>
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
        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)((critical ? 0x8000 : 0) | (ushort)type));
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)body.Length);
        body.CopyTo(destination[HeaderLength..]);
        return HeaderLength + body.Length;
    }

    public static int WriteUInt16(Span<byte> destination, bool critical, NtsKeRecordType type, ushort value)
    {
        Span<byte> body = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(body, value);
        return Write(destination, critical, type, body);
    }

    public static int WriteError(Span<byte> destination, NtsKeErrorCode code)
    {
        int n = WriteUInt16(destination, true, NtsKeRecordType.Error, (ushort)code);
        return n + Write(destination[n..], true, NtsKeRecordType.EndOfMessage, []);
    }
}

/// <summary>Where parsing a client's request stands.</summary>
public enum NtsKeRequestStatus : byte
{
    /// <summary>No End of Message yet: read more (up to the size limit).</summary>
    Incomplete,

    Complete,

    /// <summary>Malformed: answer with an Error record and close.</summary>
    Error,
}

/// <summary>The parsed client request (RFC 8915 §4.1): what it offered and what the server picks.</summary>
public readonly record struct NtsKeRequest(NtsKeRequestStatus Status, NtsKeErrorCode Error, string Reason, bool NtpV4, AeadAlgorithm? Aead, int Length)
{
    public static NtsKeRequest Parse(ReadOnlySpan<byte> buffer)
    {
        bool sawProtocol = false, sawAead = false, ntpV4 = false;
        AeadAlgorithm? aead = null;
        int offset = 0;
        while (NtsKeRecords.TryRead(buffer[offset..], out NtsKeRecord record, out int consumed))
        {
            offset += consumed;
            switch ((NtsKeRecordType)record.Type)
            {
                case NtsKeRecordType.EndOfMessage:
                    if (offset != buffer.Length)
                    {
                        return Fail(NtsKeErrorCode.BadRequest, "data after End of Message", offset);
                    }
                    if (!sawProtocol)
                    {
                        return Fail(NtsKeErrorCode.BadRequest, "no Next Protocol record", offset);
                    }
                    if (ntpV4 && !sawAead)
                    {
                        return Fail(NtsKeErrorCode.BadRequest, "no AEAD Algorithm record", offset);
                    }
                    return new NtsKeRequest(NtsKeRequestStatus.Complete, default, "", ntpV4, aead, offset);
                case NtsKeRecordType.NextProtocol:
                    if (sawProtocol || (record.Body.Length & 1) != 0)
                    {
                        return Fail(NtsKeErrorCode.BadRequest, "duplicate or malformed Next Protocol record", offset);
                    }
                    sawProtocol = true;
                    for (int i = 0; i < record.Body.Length; i += 2)
                    {
                        ntpV4 |= BinaryPrimitives.ReadUInt16BigEndian(record.Body[i..]) == NtsKeRecords.NtpV4;
                    }
                    break;
                case NtsKeRecordType.AeadAlgorithm:
                    if (sawAead || (record.Body.Length & 1) != 0)
                    {
                        return Fail(NtsKeErrorCode.BadRequest, "duplicate or malformed AEAD Algorithm record", offset);
                    }
                    sawAead = true;
                    // The first of the client's algorithms that this server supports.
                    for (int i = 0; i < record.Body.Length && aead is null; i += 2)
                    {
                        ushort id = BinaryPrimitives.ReadUInt16BigEndian(record.Body[i..]);
                        if (AeadAlgorithms.IsSupported(id))
                        {
                            aead = (AeadAlgorithm)id;
                        }
                    }
                    break;
                case NtsKeRecordType.Error:
                case NtsKeRecordType.Warning:
                    return Fail(NtsKeErrorCode.BadRequest, "a client does not send Error or Warning records", offset);
                case NtsKeRecordType.NewCookie:
                case NtsKeRecordType.Server:
                case NtsKeRecordType.Port:
                    // A client may suggest a server or port; this server decides. Cookies from a client mean nothing.
                    break;
                default:
                    if (record.Critical)
                    {
                        return Fail(NtsKeErrorCode.UnrecognizedCriticalRecord, $"unrecognized critical record type {record.Type}", offset);
                    }
                    break;
            }
        }
        return new NtsKeRequest(NtsKeRequestStatus.Incomplete, default, "", ntpV4, aead, offset);
    }

    private static NtsKeRequest Fail(NtsKeErrorCode code, string reason, int length) =>
        new(NtsKeRequestStatus.Error, code, reason, false, null, length);
}

/// <summary>Builds the server's NTS-KE response (RFC 8915 §4.1).</summary>
public static class NtsKeResponse
{
    public const int CookieCount = 8;

    /// <summary>
    /// Next Protocol (NTPv4 if offered, else empty), AEAD (the chosen one, else empty), and when both
    /// were agreed: Server and Port records as given, then the cookies, then End of Message.
    /// </summary>
    public static int Write(Span<byte> destination, in NtsKeRequest request, ReadOnlySpan<byte> cookies, int cookieLength, string? server, ushort? port)
    {
        int n = request.NtpV4
            ? NtsKeRecords.WriteUInt16(destination, true, NtsKeRecordType.NextProtocol, NtsKeRecords.NtpV4)
            : NtsKeRecords.Write(destination, true, NtsKeRecordType.NextProtocol, []);
        if (request.NtpV4)
        {
            n += request.Aead is { } aead
                ? NtsKeRecords.WriteUInt16(destination[n..], true, NtsKeRecordType.AeadAlgorithm, (ushort)aead)
                : NtsKeRecords.Write(destination[n..], true, NtsKeRecordType.AeadAlgorithm, []);
        }
        if (request.NtpV4 && request.Aead is not null)
        {
            if (server is not null)
            {
                Span<byte> name = stackalloc byte[System.Text.Encoding.ASCII.GetByteCount(server)];
                System.Text.Encoding.ASCII.GetBytes(server, name);
                n += NtsKeRecords.Write(destination[n..], true, NtsKeRecordType.Server, name);
            }
            if (port is { } p)
            {
                n += NtsKeRecords.WriteUInt16(destination[n..], true, NtsKeRecordType.Port, p);
            }
            for (int offset = 0; offset + cookieLength <= cookies.Length; offset += cookieLength)
            {
                n += NtsKeRecords.Write(destination[n..], false, NtsKeRecordType.NewCookie, cookies.Slice(offset, cookieLength));
            }
        }
        return n + NtsKeRecords.Write(destination[n..], true, NtsKeRecordType.EndOfMessage, []);
    }
}
