using System.Buffers.Binary;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>What the driver of an <see cref="NtsKeServerSession"/> does next.</summary>
public enum NtsKeServerStep : byte
{
    /// <summary>Read more of the request and <see cref="NtsKeServerSession.Receive"/> it (or <see cref="NtsKeServerSession.Close"/> at end of stream).</summary>
    NeedBytes,

    /// <summary>
    /// Export C2S and S2C for <see cref="NtsKeServerSession.Aead"/> from TLS (RFC 8915 §5.1) and pass
    /// them, with fresh random nonces, to <see cref="NtsKeServerSession.SupplyKeys"/>.
    /// </summary>
    NeedKeys,

    /// <summary>Send <see cref="NtsKeServerSession.Response"/>, then close the connection (RFC 8915 §4: one request, one response).</summary>
    SendThenClose,

    /// <summary>Nothing to send: close the connection.</summary>
    Closed,
}

/// <summary>
/// How one NTS-KE connection ended: the session machine's outcomes and the TLS shell's (admission,
/// handshake, timeouts). A stable metric label (<see cref="NtsKeOutcomeNames"/>); add, never renumber.
/// </summary>
public enum NtsKeServerReason : byte
{
    /// <summary>NTPv4 and an AEAD agreed, eight cookies sent.</summary>
    Ok,

    /// <summary>The client did not offer NTPv4: an empty Next Protocol record sent (RFC 8915 §4.1.2).</summary>
    NoProtocol,

    /// <summary>None of the client's AEADs is supported: an empty AEAD record sent (RFC 8915 §4.1.5).</summary>
    NoAead,

    /// <summary>The request breaks RFC 8915 §4: Error record Bad Request (1) sent.</summary>
    BadRequest,

    /// <summary>A record type this server does not know, with the critical bit set: Error record 0 sent (RFC 8915 §4).</summary>
    UnrecognizedCritical,

    /// <summary>No End of Message within the request size limit: Error record Bad Request sent.</summary>
    RequestTooLarge,

    /// <summary>No cookie key ring yet: Error record Internal Server Error (2) sent.</summary>
    NoKeys,

    /// <summary>The client closed the connection before its End of Message.</summary>
    ClientClosed,

    /// <summary>Closed at accept: the server holds its maximum of connections.</summary>
    MaxConnections,

    /// <summary>Closed at accept: the client address opened too many connections lately.</summary>
    ClientRate,

    /// <summary>The TLS handshake did not finish in time.</summary>
    HandshakeTimeout,

    /// <summary>The TLS handshake failed.</summary>
    Tls,

    /// <summary>The client did not ask for ALPN "ntske/1" (RFC 8915 §4).</summary>
    Alpn,

    /// <summary>The client was silent longer than the idle timeout, or the connection failed while the request was read.</summary>
    IdleTimeout,

    /// <summary>The server is stopping.</summary>
    Shutdown,

    /// <summary>A fault of this server (logged).</summary>
    Internal,

    /// <summary>Closed at accept, before TLS: the client address is denied by <c>ntp.access</c>.</summary>
    Denied,

    /// <summary>Closed at accept: the client address (IPv6: its /64) holds its maximum of open connections.</summary>
    ClientConcurrency,

    /// <summary>The exchange was not over by its deadline (handshake time and request time from accept), however the client trickled its octets.</summary>
    Deadline,
}

/// <summary>
/// The (result, reason) label pairs of <c>appliance_ntske_handshakes_total</c>, one per
/// <see cref="NtsKeServerReason"/>, allocated once. They are the labels the server has always
/// exported: "ok"; "error" for an ending inside the session that gave no cookies (an Error record,
/// an empty negotiation, the client's close, a fault of ours); "closed" for a connection dropped
/// (admission, TLS, ALPN, a timeout or the deadline, shutdown).
/// </summary>
public static class NtsKeOutcomeNames
{
    private static readonly (string Result, string Reason)[] s_names =
    [
        ("ok", "ok"), ("error", "no_protocol"), ("error", "no_aead"), ("error", "bad_request"),
        ("error", "unrecognized_critical"), ("error", "request_too_large"), ("error", "no_keys"), ("error", "client_closed"),
        ("closed", "max_connections"), ("closed", "client_rate"), ("closed", "handshake_timeout"), ("closed", "tls"),
        ("closed", "alpn"), ("closed", "idle_timeout"), ("closed", "shutdown"), ("error", "internal"),
        ("closed", "denied"), ("closed", "client_concurrency"), ("closed", "deadline"),
    ];

    public static int Count => s_names.Length;

    public static string Result(NtsKeServerReason reason) => s_names[(int)reason].Result;

    public static string Reason(NtsKeServerReason reason) => s_names[(int)reason].Reason;
}

/// <summary>What an NTS-KE server says beyond the negotiation: its limits and where NTP is served.</summary>
public sealed class NtsKeServerOptions
{
    /// <param name="maxRequest">Largest request taken, in octets; the End of Message must come within it.</param>
    /// <param name="ntpServer">Host for the NTPv4 Server record (RFC 8915 §4.1.7), or null to send none.</param>
    /// <param name="ntpPort">Port for the NTPv4 Port record (RFC 8915 §4.1.8), or null to send none.</param>
    /// <param name="aeads">The AEADs this server agrees to (null: every one, <see cref="AeadAlgorithms.All"/>).</param>
    public NtsKeServerOptions(int maxRequest, string? ntpServer = null, ushort? ntpPort = null, IReadOnlyList<AeadAlgorithm>? aeads = null)
    {
        aeads ??= AeadAlgorithms.All;
        if (aeads.Count == 0 || aeads.Any(a => !AeadAlgorithms.IsSupported((ushort)a)))
        {
            throw new ArgumentException("enable at least one AEAD, each one this server speaks (RFC 8915 §4.1.5)", nameof(aeads));
        }
        Aeads = [.. aeads.Distinct()];
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRequest, NtsKeRecords.HeaderLength);
        if (ntpServer is not null && (ntpServer.Length is 0 or > ushort.MaxValue || !System.Text.Ascii.IsValid(ntpServer)))
        {
            throw new ArgumentException("the NTPv4 Server record carries a host name or address in ASCII (RFC 8915 §4.1.7)", nameof(ntpServer));
        }
        MaxRequest = maxRequest;
        NtpServer = ntpServer is null ? null : System.Text.Encoding.ASCII.GetBytes(ntpServer);
        NtpPort = ntpPort;
    }

    public int MaxRequest { get; }

    internal byte[]? NtpServer { get; }

    public ushort? NtpPort { get; }

    /// <summary>The AEADs this server agrees to; the client's order picks among them.</summary>
    public IReadOnlyList<AeadAlgorithm> Aeads { get; }

    internal bool Enables(ushort id) => AeadAlgorithms.IsSupported(id) && Aeads.Contains((AeadAlgorithm)id);

    /// <summary>
    /// The longest response: Next Protocol, AEAD, the compliant-context echo, Server, Port, eight of
    /// the largest cookies, End of Message.
    /// </summary>
    internal int MaxResponseLength =>
        (3 * (NtsKeRecords.HeaderLength + 2)) + (2 * NtsKeRecords.HeaderLength) + (NtpServer?.Length ?? 0)
        + (NtsKeRecords.CookieCount * (NtsKeRecords.HeaderLength + NtsCookie.MaxLength)) + NtsKeRecords.HeaderLength;
}

/// <summary>
/// The server side of one NTS-KE connection as a machine over the octets TLS carries (RFC 8915 §4):
/// fed the request in pieces of any size, it answers with a step, and the driver only moves octets
/// and supplies what TLS alone has (the exporter keys) and randomness. Every rule of the request
/// lives here: records, the critical bit, Next Protocol and AEAD negotiation, Error and Warning
/// records from a client, data after End of Message, the size limit, the Server and Port records, and
/// eight cookies sealed under the key ring's current key. No clock, no I/O, no exception on any input.
/// </summary>
public sealed class NtsKeServerSession
{
    /// <summary>Random octets <see cref="SupplyKeys"/> needs: one nonce per cookie.</summary>
    public const int RandomLength = NtsKeRecords.CookieCount * NtsCookie.NonceLength;

    private readonly NtsKeServerOptions _options;
    private readonly CookieKeyRing? _ring;
    private readonly NtsKeMessageReader _request;
    private NtsKeServerStep _step;
    private NtsKeServerReason _reason;
    private byte[] _response = [];
    private int _responseLength;
    private bool _sawProtocol;
    private bool _sawAead;
    private bool _ntpV4;
    private bool _compliantAsked;
    private AeadAlgorithm? _aead;

    /// <param name="ring">The ring whose current key seals the cookies; null when there is none yet (answered with Internal Server Error).</param>
    public NtsKeServerSession(NtsKeServerOptions options, CookieKeyRing? ring)
    {
        _options = options;
        _ring = ring;
        _request = new NtsKeMessageReader(options.MaxRequest, Math.Min(options.MaxRequest, 512));
    }

    public NtsKeServerStep Step => _step;

    /// <summary>How the session ended; only once <see cref="Step"/> is <see cref="NtsKeServerStep.SendThenClose"/> or <see cref="NtsKeServerStep.Closed"/>.</summary>
    public NtsKeServerReason Reason => _step is NtsKeServerStep.SendThenClose or NtsKeServerStep.Closed
        ? _reason
        : throw new InvalidOperationException("the NTS-KE session has not ended");

    /// <summary>The AEAD agreed, for the keys <see cref="NtsKeServerStep.NeedKeys"/> asks for (their length).</summary>
    public AeadAlgorithm? Aead => _aead;

    /// <summary>
    /// The AEAD id the exporter context carries for those keys (RFC 8915 §5.1): <see cref="Aead"/>, or
    /// 15 for AES-128-GCM-SIV when the client did not send the compliant-context record, as chrony 4.4
    /// to 4.6.0 compute it (<see cref="NtsKeRecords.ExporterAead"/>). A client's keys that do not
    /// match are not NAKed but dropped, so this must be right at the key exchange.
    /// </summary>
    public AeadAlgorithm? ExporterAead => _aead is { } aead ? NtsKeRecords.ExporterAead(aead, _compliantAsked) : null;

    /// <summary>The octets to send at <see cref="NtsKeServerStep.SendThenClose"/>.</summary>
    public ReadOnlyMemory<byte> Response => _response.AsMemory(0, _responseLength);

    /// <summary>Cookies in <see cref="Response"/>.</summary>
    public int CookiesIssued => _reason == NtsKeServerReason.Ok && _step == NtsKeServerStep.SendThenClose ? NtsKeRecords.CookieCount : 0;

    /// <summary>
    /// Takes the next octets of the request. Records are judged as soon as each is whole, so where a
    /// request breaks a rule does not depend on how it was split. Octets after the request was
    /// answered are not read: the driver sends and closes.
    /// </summary>
    public NtsKeServerStep Receive(ReadOnlySpan<byte> data)
    {
        if (_step != NtsKeServerStep.NeedBytes)
        {
            return _step;
        }
        int taken = _request.Append(data);
        while (_request.TryRead(out NtsKeRecord record))
        {
            if (record.Type == (ushort)NtsKeRecordType.EndOfMessage)
            {
                // RFC 8915 §4.1.1: End of Message has an empty body and is the last record of the request;
                // §4: the client sends one request, then waits. Anything after it is a broken request.
                return record.Body.Length != 0 || _request.HasUnread || taken < data.Length
                    ? Refuse(NtsKeErrorCode.BadRequest, NtsKeServerReason.BadRequest)
                    : EndOfRequest();
            }
            if (Judge(record) is { } refusal)
            {
                return Refuse(refusal == NtsKeServerReason.UnrecognizedCritical ? NtsKeErrorCode.UnrecognizedCriticalRecord : NtsKeErrorCode.BadRequest, refusal);
            }
        }
        // DESIGN.md boundary 6: no End of Message within the limit, so none will come in time.
        return _request.IsFull ? Refuse(NtsKeErrorCode.BadRequest, NtsKeServerReason.RequestTooLarge) : NtsKeServerStep.NeedBytes;
    }

    /// <summary>The client closed its side (end of stream).</summary>
    public NtsKeServerStep Close()
    {
        if (_step == NtsKeServerStep.NeedBytes)
        {
            _step = NtsKeServerStep.Closed;
            _reason = NtsKeServerReason.ClientClosed;
        }
        return _step;
    }

    /// <summary>
    /// At <see cref="NtsKeServerStep.NeedKeys"/>: the C2S and S2C keys the TLS exporter gave for
    /// <see cref="Aead"/>, and <see cref="RandomLength"/> fresh random octets for the cookie nonces.
    /// The keys are sealed into the cookies and not kept.
    /// </summary>
    public NtsKeServerStep SupplyKeys(ReadOnlySpan<byte> c2s, ReadOnlySpan<byte> s2c, ReadOnlySpan<byte> random)
    {
        if (_step != NtsKeServerStep.NeedKeys || _aead is not AeadAlgorithm aead)
        {
            throw new InvalidOperationException("the NTS-KE session does not need keys");
        }
        int keyLength = AeadAlgorithms.KeyLength(aead);
        if (c2s.Length != keyLength || s2c.Length != keyLength || random.Length < RandomLength)
        {
            throw new ArgumentException($"AEAD {(ushort)aead} needs {keyLength}-octet keys and {RandomLength} random octets");
        }
        CookieKey key = _ring!.Current;
        int cookieLength = NtsCookie.Length(aead);
        Span<byte> response = StartResponse(_options.MaxResponseLength);
        int n = WriteNegotiation(response);
        if (_options.NtpServer is { } server)
        {
            n += NtsKeRecords.Write(response[n..], true, NtsKeRecordType.Server, server);
        }
        if (_options.NtpPort is { } port)
        {
            n += NtsKeRecords.WriteUInt16(response[n..], true, NtsKeRecordType.Port, port);
        }
        for (int i = 0; i < NtsKeRecords.CookieCount; i++)
        {
            // RFC 8915 §4.1.6: the critical bit of New Cookie is not set.
            NtsKeRecords.WriteHeader(response[n..], false, NtsKeRecordType.NewCookie, cookieLength);
            n += NtsKeRecords.HeaderLength;
            n += NtsCookie.Seal(key, random.Slice(i * NtsCookie.NonceLength, NtsCookie.NonceLength), aead, c2s, s2c, response.Slice(n, cookieLength));
        }
        n += NtsKeRecords.Write(response[n..], true, NtsKeRecordType.EndOfMessage, []);
        return Answer(n, NtsKeServerReason.Ok);
    }

    /// <summary>One record of the request before End of Message; the refusal when it breaks RFC 8915 §4.1, else null.</summary>
    private NtsKeServerReason? Judge(NtsKeRecord record)
    {
        switch ((NtsKeRecordType)record.Type)
        {
            case NtsKeRecordType.NextProtocol:
                // §4.1.2: exactly one, critical, at least one 16-bit protocol id.
                if (_sawProtocol || !record.Critical || !NtsKeRecords.IsUInt16List(record.Body))
                {
                    return NtsKeServerReason.BadRequest;
                }
                _sawProtocol = true;
                _ntpV4 = NtsKeRecords.Contains(record.Body, NtsKeRecords.NtpV4);
                return null;
            case NtsKeRecordType.AeadAlgorithm:
                // §4.1.5: at most one, at least one 16-bit algorithm id. Honouring the client's order
                // is optional; this server takes the first of them it has enabled, as chrony's does.
                if (_sawAead || !NtsKeRecords.IsUInt16List(record.Body))
                {
                    return NtsKeServerReason.BadRequest;
                }
                _sawAead = true;
                for (int i = 0; i < record.Body.Length; i += 2)
                {
                    ushort id = BinaryPrimitives.ReadUInt16BigEndian(record.Body[i..]);
                    if (_options.Enables(id))
                    {
                        _aead = (AeadAlgorithm)id;
                        break;
                    }
                }
                return null;
            case NtsKeRecordType.CompliantAes128GcmSivExport:
                // chrony's spec for the record: an empty body; anything else is a Bad Request.
                if (!record.Body.IsEmpty)
                {
                    return NtsKeServerReason.BadRequest;
                }
                _compliantAsked = true;
                return null;
            case NtsKeRecordType.Error:
            case NtsKeRecordType.Warning:
                // §4.1.3, §4.1.4: clients MUST NOT send them.
                return NtsKeServerReason.BadRequest;
            case NtsKeRecordType.NewCookie:
            case NtsKeRecordType.Server:
            case NtsKeRecordType.Port:
                // §4.1.7, §4.1.8: a client may suggest a server or port; this server decides. Cookies from a client mean nothing.
                return null;
            default:
                // §4: an unrecognised record is ignored unless critical, then refused with error 0.
                return record.Critical ? NtsKeServerReason.UnrecognizedCritical : null;
        }
    }

    private NtsKeServerStep EndOfRequest()
    {
        if (!_sawProtocol || (_ntpV4 && !_sawAead))
        {
            // §4.1.2: the request MUST carry Next Protocol; §4.1.5: and AEAD when NTPv4 is offered.
            return Refuse(NtsKeErrorCode.BadRequest, NtsKeServerReason.BadRequest);
        }
        if (_ring is null)
        {
            return Refuse(NtsKeErrorCode.InternalServerError, NtsKeServerReason.NoKeys);
        }
        if (!_ntpV4 || _aead is null)
        {
            // Nothing agreed: the negotiation records alone say so (empty bodies), no cookies.
            Span<byte> response = StartResponse(2 * (NtsKeRecords.HeaderLength + 2) + NtsKeRecords.HeaderLength);
            int n = WriteNegotiation(response);
            n += NtsKeRecords.Write(response[n..], true, NtsKeRecordType.EndOfMessage, []);
            return Answer(n, _ntpV4 ? NtsKeServerReason.NoAead : NtsKeServerReason.NoProtocol);
        }
        _step = NtsKeServerStep.NeedKeys;
        return _step;
    }

    /// <summary>
    /// Next Protocol (NTPv4 when offered, else empty; §4.1.2) and, when NTPv4 was offered, AEAD (the
    /// one chosen, else empty; §4.1.5 requires exactly one such record then).
    /// </summary>
    private int WriteNegotiation(Span<byte> response)
    {
        if (!_ntpV4)
        {
            return NtsKeRecords.Write(response, true, NtsKeRecordType.NextProtocol, []);
        }
        int n = NtsKeRecords.WriteUInt16(response, true, NtsKeRecordType.NextProtocol, NtsKeRecords.NtpV4);
        n += _aead is { } aead
            ? NtsKeRecords.WriteUInt16(response[n..], true, NtsKeRecordType.AeadAlgorithm, (ushort)aead)
            : NtsKeRecords.Write(response[n..], true, NtsKeRecordType.AeadAlgorithm, []);
        if (_aead == AeadAlgorithm.Aes128GcmSiv && _compliantAsked)
        {
            // The echo that makes both sides use the compliant context (AEAD 30) for the keys.
            n += NtsKeRecords.Write(response[n..], false, NtsKeRecordType.CompliantAes128GcmSivExport, []);
        }
        return n;
    }

    private NtsKeServerStep Refuse(NtsKeErrorCode code, NtsKeServerReason reason) =>
        Answer(NtsKeRecords.WriteError(StartResponse(NtsKeRecords.ErrorResponseLength), code), reason);

    private Span<byte> StartResponse(int capacity)
    {
        _response = new byte[capacity];
        return _response;
    }

    private NtsKeServerStep Answer(int length, NtsKeServerReason reason)
    {
        _responseLength = length;
        _reason = reason;
        _step = NtsKeServerStep.SendThenClose;
        return _step;
    }

    /// <summary>The fixed setting of <see cref="Fuzz"/>, made only when a fuzzer or test first calls it.</summary>
    private static class FuzzSetting
    {
        public static readonly CookieKeyRing Ring = new(new CookieKey(1, new byte[CookieKey.KeyLength]), []);
        public static readonly NtsKeServerOptions Options = new(1024, "ntp.example", 11123);
    }

    /// <summary>
    /// Runs a session over arbitrary input to its end, for fuzzing and property tests: the request in
    /// pieces of the lengths <paramref name="splits"/> gives in turn (each at least one octet; all at
    /// once when it is empty), fixed keys and nonces when asked, then end of stream. Never throws.
    /// </summary>
    public static NtsKeServerReason Fuzz(ReadOnlySpan<byte> input, ReadOnlySpan<int> splits, out int sent)
    {
        var session = new NtsKeServerSession(FuzzSetting.Options, FuzzSetting.Ring);
        NtsKeServerStep step = session.Step;
        for (int offset = 0, i = 0; offset < input.Length && step == NtsKeServerStep.NeedBytes; i++)
        {
            int length = splits.IsEmpty ? input.Length : Math.Clamp(splits[i % splits.Length], 1, input.Length - offset);
            step = session.Receive(input.Slice(offset, length));
            offset += length;
        }
        if (step == NtsKeServerStep.NeedBytes)
        {
            step = session.Close();
        }
        if (step == NtsKeServerStep.NeedKeys)
        {
            Span<byte> keys = stackalloc byte[2 * 64];
            int keyLength = AeadAlgorithms.KeyLength(session.Aead!.Value);
            session.SupplyKeys(keys[..keyLength], keys.Slice(64, keyLength), stackalloc byte[RandomLength]);
        }
        sent = session.Response.Length;
        return session.Reason;
    }
}
