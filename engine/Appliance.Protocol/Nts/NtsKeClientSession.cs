using System.Buffers.Binary;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>What the driver of an <see cref="NtsKeClientSession"/> does next.</summary>
public enum NtsKeClientStep : byte
{
    /// <summary>Read more of the response and <see cref="NtsKeClientSession.Receive"/> it, or <see cref="NtsKeClientSession.Close"/> at end of stream.</summary>
    NeedBytes,

    /// <summary>The exchange succeeded: export the keys for <see cref="NtsKeClientSession.Aead"/> (RFC 8915 §5.1).</summary>
    Done,

    /// <summary>The exchange failed (<see cref="NtsKeClientSession.Reason"/>): discard the keys (RFC 8915 §4.1.3).</summary>
    Failed,
}

/// <summary>How an NTS-KE exchange ended, seen from the client. Stable names; add, never renumber.</summary>
public enum NtsKeClientReason : byte
{
    /// <summary>NTPv4 and an AEAD agreed, with at least one cookie.</summary>
    Ok,

    /// <summary>The server sent an Error record (RFC 8915 §4.1.3); its code is <see cref="NtsKeClientSession.ServerError"/>.</summary>
    ServerError,

    /// <summary>The server sent a Warning record (RFC 8915 §4.1.4): no warning codes are defined, and unrecognised ones MUST be treated as errors.</summary>
    ServerWarning,

    /// <summary>The server's Next Protocol record does not list NTPv4 (RFC 8915 §4.1.2).</summary>
    NoNtpV4,

    /// <summary>The server's AEAD record is empty: it supports none of those offered (RFC 8915 §4.1.5).</summary>
    NoCommonAead,

    /// <summary>The server chose an AEAD this client did not offer.</summary>
    UnsupportedAead,

    /// <summary>Negotiation succeeded but no New Cookie record came (RFC 8915 §4.1.6: servers MUST send at least one).</summary>
    NoCookies,

    /// <summary>A record type this client does not know, with the critical bit set (RFC 8915 §4): the client MUST abort.</summary>
    UnrecognizedCriticalRecord,

    /// <summary>A record that breaks RFC 8915 §4.1: duplicated, of the wrong length, missing, or not critical where it must be.</summary>
    Malformed,

    /// <summary>No End of Message within the response size limit.</summary>
    Oversized,

    /// <summary>Octets after End of Message (RFC 8915 §4.1.1: it is the last record).</summary>
    DataAfterEndOfMessage,

    /// <summary>The server closed the connection before its End of Message.</summary>
    ClosedBeforeEndOfMessage,
}

/// <summary>
/// The client side of one NTS-KE exchange as a machine over the octets TLS carries (RFC 8915 §4): it
/// writes the request (NTPv4, the AEADs offered), is fed the response in pieces of any size, and
/// ends in <see cref="NtsKeClientStep.Done"/> with the AEAD, cookies, Server and Port, or in
/// <see cref="NtsKeClientStep.Failed"/> with a typed reason. The response counts once the server has
/// closed (RFC 8915 §4: after its response it sends close_notify), so octets after End of Message are
/// seen however the response was split. The driver then exports the keys. No exception on any input.
/// </summary>
public sealed class NtsKeClientSession
{
    /// <summary>Largest response taken, in octets: eight cookies need under 2 KiB.</summary>
    public const int DefaultMaxResponse = 65536;

    private readonly AeadAlgorithm[] _offered;
    private readonly NtsKeMessageReader _response;
    private readonly List<byte[]> _cookies = [];
    private NtsKeClientStep _step;
    private NtsKeClientReason _reason;
    private bool _endOfMessage;
    private bool _sawProtocol;
    private bool _sawAead;
    private bool _sawCompliantEcho;

    /// <param name="aeads">The AEADs to offer, most preferred first (RFC 8915 §4.1.5); each must be supported.</param>
    public NtsKeClientSession(ReadOnlySpan<AeadAlgorithm> aeads, int maxResponse = DefaultMaxResponse)
    {
        if (aeads.IsEmpty || aeads.Length > ushort.MaxValue / 2)
        {
            throw new ArgumentException("offer at least one AEAD (RFC 8915 §4.1.5)", nameof(aeads));
        }
        foreach (AeadAlgorithm aead in aeads)
        {
            if (!AeadAlgorithms.IsSupported((ushort)aead))
            {
                throw new ArgumentException($"AEAD {(ushort)aead} is not supported", nameof(aeads));
            }
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(maxResponse, NtsKeRecords.HeaderLength);
        _offered = aeads.ToArray();
        _response = new NtsKeMessageReader(maxResponse, 2048);
    }

    public NtsKeClientStep Step => _step;

    /// <summary>How the exchange ended; only once <see cref="Step"/> is not <see cref="NtsKeClientStep.NeedBytes"/>.</summary>
    public NtsKeClientReason Reason => _step != NtsKeClientStep.NeedBytes ? _reason : throw new InvalidOperationException("the NTS-KE exchange has not ended");

    /// <summary>The AEAD the server chose (the keys' length and the NTP path's AEAD).</summary>
    public AeadAlgorithm? Aead { get; private set; }

    /// <summary>
    /// The AEAD id of the exporter context (RFC 8915 §5.1) for <see cref="Aead"/>'s keys: the same, or
    /// 15 for AES-128-GCM-SIV when the server did not echo the compliant-context record, as chrony's
    /// client does (<see cref="NtsKeRecords.ExporterAead"/>).
    /// </summary>
    public AeadAlgorithm? ExporterAead => Aead is { } aead ? NtsKeRecords.ExporterAead(aead, _sawCompliantEcho) : null;

    /// <summary>Whether the request asks for the compliant GCM-SIV context: it does when it offers AEAD 30.</summary>
    private bool OffersCompliantContext => Array.IndexOf(_offered, AeadAlgorithm.Aes128GcmSiv) >= 0;

    public IReadOnlyList<byte[]> Cookies => _cookies;

    /// <summary>Where to send NTP (RFC 8915 §4.1.7), when the server named a host.</summary>
    public string? Server { get; private set; }

    /// <summary>The NTP port (RFC 8915 §4.1.8), when the server named one.</summary>
    public ushort? Port { get; private set; }

    /// <summary>The code of the server's Error record, if it sent one.</summary>
    public NtsKeErrorCode? ServerError { get; private set; }

    /// <summary>The code of the server's Warning record, if it sent one.</summary>
    public ushort? ServerWarning { get; private set; }

    /// <summary>Length of the request <see cref="WriteRequest"/> writes.</summary>
    public int RequestLength => (3 * NtsKeRecords.HeaderLength) + 2 + (2 * _offered.Length) + (OffersCompliantContext ? NtsKeRecords.HeaderLength : 0);

    /// <summary>
    /// The request (RFC 8915 §4): Next Protocol (NTPv4, critical: §4.1.2), AEAD Algorithm (those
    /// offered, critical), with AEAD 30 among them the compliant-context record (non-critical, as
    /// chrony sends it), End of Message. Returns its length, <see cref="RequestLength"/>.
    /// </summary>
    public int WriteRequest(Span<byte> destination)
    {
        int n = NtsKeRecords.WriteUInt16(destination, true, NtsKeRecordType.NextProtocol, NtsKeRecords.NtpV4);
        NtsKeRecords.WriteHeader(destination[n..], true, NtsKeRecordType.AeadAlgorithm, 2 * _offered.Length);
        n += NtsKeRecords.HeaderLength;
        foreach (AeadAlgorithm aead in _offered)
        {
            BinaryPrimitives.WriteUInt16BigEndian(destination[n..], (ushort)aead);
            n += 2;
        }
        if (OffersCompliantContext)
        {
            n += NtsKeRecords.Write(destination[n..], false, NtsKeRecordType.CompliantAes128GcmSivExport, []);
        }
        return n + NtsKeRecords.Write(destination[n..], true, NtsKeRecordType.EndOfMessage, []);
    }

    /// <summary>
    /// Takes the next octets of the response. Each record is judged when it is whole, and the checks
    /// at End of Message come before the check for octets after it, so the outcome is the same
    /// however the response was split.
    /// </summary>
    public NtsKeClientStep Receive(ReadOnlySpan<byte> data)
    {
        if (_step != NtsKeClientStep.NeedBytes || data.IsEmpty)
        {
            return _step;
        }
        if (_endOfMessage)
        {
            return Fail(NtsKeClientReason.DataAfterEndOfMessage);
        }
        int taken = _response.Append(data);
        while (_response.TryRead(out NtsKeRecord record))
        {
            if (record.Type == (ushort)NtsKeRecordType.EndOfMessage)
            {
                if (record.Body.Length != 0)
                {
                    return Fail(NtsKeClientReason.Malformed);
                }
                if (EndOfResponse() is { } failure)
                {
                    return Fail(failure);
                }
                _endOfMessage = true;
                return _response.HasUnread || taken < data.Length ? Fail(NtsKeClientReason.DataAfterEndOfMessage) : _step;
            }
            if (Judge(record) is { } reason)
            {
                return Fail(reason);
            }
        }
        return _response.IsFull ? Fail(NtsKeClientReason.Oversized) : _step;
    }

    /// <summary>The server closed its side (end of stream).</summary>
    public NtsKeClientStep Close()
    {
        if (_step != NtsKeClientStep.NeedBytes)
        {
            return _step;
        }
        if (!_endOfMessage)
        {
            return Fail(NtsKeClientReason.ClosedBeforeEndOfMessage);
        }
        _reason = NtsKeClientReason.Ok;
        _step = NtsKeClientStep.Done;
        return _step;
    }

    /// <summary>One record of the response before End of Message; the failure it means, else null.</summary>
    private NtsKeClientReason? Judge(NtsKeRecord record)
    {
        ReadOnlySpan<byte> body = record.Body;
        switch ((NtsKeRecordType)record.Type)
        {
            case NtsKeRecordType.NextProtocol:
                // §4.1.2: exactly one, critical; it lists what the server will speak of what was asked.
                if (_sawProtocol || !record.Critical || (body.Length & 1) != 0)
                {
                    return NtsKeClientReason.Malformed;
                }
                _sawProtocol = true;
                return NtsKeRecords.Contains(body, NtsKeRecords.NtpV4) ? null : NtsKeClientReason.NoNtpV4;
            case NtsKeRecordType.AeadAlgorithm:
                // §4.1.5: in a response, one algorithm, or none when the server supports none offered.
                if (_sawAead || body.Length is not (0 or 2))
                {
                    return NtsKeClientReason.Malformed;
                }
                _sawAead = true;
                if (body.IsEmpty)
                {
                    return NtsKeClientReason.NoCommonAead;
                }
                var chosen = (AeadAlgorithm)BinaryPrimitives.ReadUInt16BigEndian(body);
                if (Array.IndexOf(_offered, chosen) < 0)
                {
                    return NtsKeClientReason.UnsupportedAead;
                }
                Aead = chosen;
                return null;
            case NtsKeRecordType.Error:
                if (body.Length != 2)
                {
                    return NtsKeClientReason.Malformed;
                }
                ServerError = (NtsKeErrorCode)BinaryPrimitives.ReadUInt16BigEndian(body);
                return NtsKeClientReason.ServerError;
            case NtsKeRecordType.Warning:
                if (body.Length != 2)
                {
                    return NtsKeClientReason.Malformed;
                }
                ServerWarning = BinaryPrimitives.ReadUInt16BigEndian(body);
                return NtsKeClientReason.ServerWarning;
            case NtsKeRecordType.NewCookie:
                if (body.IsEmpty)
                {
                    return NtsKeClientReason.Malformed;
                }
                _cookies.Add(body.ToArray());
                return null;
            case NtsKeRecordType.Server:
                // §4.1.7: one record, an IPv4 or IPv6 address or a host name, in ASCII.
                if (Server is not null || !IsHostText(body))
                {
                    return NtsKeClientReason.Malformed;
                }
                Server = System.Text.Encoding.ASCII.GetString(body);
                return null;
            case NtsKeRecordType.Port:
                // §4.1.8: one 16-bit port.
                if (Port is not null || body.Length != 2)
                {
                    return NtsKeClientReason.Malformed;
                }
                Port = BinaryPrimitives.ReadUInt16BigEndian(body);
                return null;
            case NtsKeRecordType.CompliantAes128GcmSivExport:
                // chrony's spec: an empty body, else an invalid response. The echo counts only for AEAD 30,
                // which the server can agree to only when we offered it (and so asked): ExporterAead.
                if (!body.IsEmpty)
                {
                    return NtsKeClientReason.Malformed;
                }
                _sawCompliantEcho = true;
                return null;
            default:
                // §4: an unrecognised record is ignored unless critical; then the client MUST abort.
                return record.Critical ? NtsKeClientReason.UnrecognizedCriticalRecord : null;
        }
    }

    private NtsKeClientReason? EndOfResponse()
    {
        if (!_sawProtocol || !_sawAead)
        {
            // §4.1.2: a response carries exactly one Next Protocol record; §4.1.5: and one AEAD record with NTPv4.
            return NtsKeClientReason.Malformed;
        }
        return _cookies.Count == 0 ? NtsKeClientReason.NoCookies : null;
    }

    /// <summary>Printable ASCII without spaces: what an address or a host name (A-labels) is made of.</summary>
    private static bool IsHostText(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
        {
            return false;
        }
        foreach (byte b in body)
        {
            if (b is < 0x21 or > 0x7E)
            {
                return false;
            }
        }
        return true;
    }

    private NtsKeClientStep Fail(NtsKeClientReason reason)
    {
        _reason = reason;
        _step = NtsKeClientStep.Failed;
        return _step;
    }

    /// <summary>
    /// Runs a session over an arbitrary response to its end, for fuzzing and property tests: offers
    /// AEAD 15, 30 and 17, feeds <paramref name="response"/> in pieces of the lengths <paramref name="splits"/>
    /// gives in turn (each at least one octet; all at once when it is empty), then end of stream.
    /// Never throws; <paramref name="cookieOctets"/> is what the cookies kept hold.
    /// </summary>
    public static NtsKeClientReason Fuzz(ReadOnlySpan<byte> response, ReadOnlySpan<int> splits, out int cookieOctets)
    {
        var session = new NtsKeClientSession([AeadAlgorithm.AesSivCmac256, AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac512]);
        NtsKeClientStep step = session.Step;
        for (int offset = 0, i = 0; offset < response.Length && step == NtsKeClientStep.NeedBytes; i++)
        {
            int length = splits.IsEmpty ? response.Length : Math.Clamp(splits[i % splits.Length], 1, response.Length - offset);
            step = session.Receive(response.Slice(offset, length));
            offset += length;
        }
        session.Close();
        cookieOctets = 0;
        foreach (byte[] cookie in session.Cookies)
        {
            cookieOctets += cookie.Length;
        }
        return session.Reason;
    }
}
