using System.Buffers.Binary;
using Appliance.Protocol.Nts;

namespace Appliance.Protocol;

/// <summary>
/// The server side of NTP (RFC 5905 §8, §9.2 "fast_xmit"): turns one client request into a response in
/// place, or into nothing. Pure and allocation-free: the caller passes the receive time, the current
/// <see cref="ServerState"/> and the policy, and stamps the transmit time as late as possible with
/// <see cref="StampTransmit"/>.
/// </summary>
public static class NtpResponder
{
    /// <summary>Length of a crypto-NAK MAC: a key id of zero and no digest (RFC 5905 §7.3).</summary>
    public const int CryptoNakLength = 4;

    /// <summary>
    /// Handles the request in <paramref name="buffer"/>[..<paramref name="requestLength"/>] and writes
    /// the response over it. The response is never longer than the request (anti-amplification,
    /// RFC 8915 §5.7 applies the same rule to NTS).
    /// </summary>
    public static Outcome Respond<TPolicy>(
        Span<byte> buffer,
        int requestLength,
        in RequestContext context,
        ServerState state,
        ref TPolicy policy,
        out int responseLength)
        where TPolicy : struct, IClientPolicy =>
        Respond(buffer, requestLength, context, state, ref policy, null, 0, false, out responseLength);

    /// <summary>
    /// As above, with NTS (RFC 8915): an NTS request that parses is handed to <paramref name="nts"/>
    /// as batch slot <paramref name="slot"/> and comes back <see cref="ResponseAction.Deferred"/>: the
    /// caller finishes it with <see cref="NtsPacketHandler.Answer"/>, stamps the transmit time, then
    /// calls <see cref="NtsPacketHandler.Seal"/>. With <paramref name="requireNts"/>, plain requests get nothing.
    /// </summary>
    public static Outcome Respond<TPolicy>(
        Span<byte> buffer,
        int requestLength,
        in RequestContext context,
        ServerState state,
        ref TPolicy policy,
        NtsPacketHandler? nts,
        int slot,
        bool requireNts,
        out int responseLength)
        where TPolicy : struct, IClientPolicy
    {
        responseLength = 0;
        if (requestLength <= 0 || requestLength > buffer.Length)
        {
            return Outcome.Drop(ResponseReason.TooShort);
        }
        ReadOnlySpan<byte> request = buffer[..requestLength];

        // Mode 6/7 queries are short (12 bytes for ntpq), so look at the mode before the length.
        var mode = (NtpMode)(request[0] & 7);
        if (mode == NtpMode.Control)
        {
            return Outcome.Drop(ResponseReason.ControlQuery);
        }
        if (mode == NtpMode.Private)
        {
            return Outcome.Drop(ResponseReason.PrivateQuery);
        }
        if (requestLength < NtpHeader.Length)
        {
            return Outcome.Drop(ResponseReason.TooShort);
        }
        if (mode != NtpMode.Client)
        {
            return Outcome.Drop(ResponseReason.UnexpectedMode);
        }
        byte version = (byte)((request[0] >> 3) & 7);
        if (version is not (3 or 4))
        {
            return Outcome.Drop(ResponseReason.UnsupportedVersion);
        }
        if (!ExtensionFields.TryGetLayout(request[NtpHeader.Length..], version, out ExtensionLayout layout))
        {
            return Outcome.Drop(ResponseReason.MalformedExtensionField);
        }

        // Everything the response needs from the request is read before it is overwritten.
        sbyte poll = (sbyte)request[2];
        var clientTransmit = NtpTimestamp.Read(request[NtpHeader.TransmitOffset..]);

        bool ntsRequest = nts is not null && layout.HasFields && NtsPacketHandler.LooksLikeNts(buffer.Slice(NtpHeader.Length, layout.FieldsLength));
        ResponseReason answered = ResponseReason.Served;
        switch (policy.Evaluate(context, ntsRequest))
        {
            case PolicyVerdict.Allow:
                break;
            case PolicyVerdict.RateLeak:
                answered = ResponseReason.RateLimited;
                break;
            case PolicyVerdict.DenyIgnore:
                return Outcome.Drop(ResponseReason.Denied);
            case PolicyVerdict.DenyKiss:
                responseLength = KissOfDeath.Write(buffer, version, poll, clientTransmit, KissCode.Deny);
                return new Outcome(ResponseAction.KissOfDeath, ResponseReason.Denied);
            case PolicyVerdict.RestrictKiss:
                responseLength = KissOfDeath.Write(buffer, version, poll, clientTransmit, KissCode.Restrict);
                return new Outcome(ResponseAction.KissOfDeath, ResponseReason.Denied);
            case PolicyVerdict.RateDrop:
                return Outcome.Drop(ResponseReason.RateLimited);
            case PolicyVerdict.RateKiss:
                responseLength = KissOfDeath.Write(buffer, version, poll, clientTransmit, KissCode.Rate);
                return new Outcome(ResponseAction.KissOfDeath, ResponseReason.RateLimited);
            default:
                return Outcome.Drop(ResponseReason.Denied);
        }

        if (ntsRequest)
        {
            return nts!.Accept(slot, buffer, requestLength, layout, version, poll, clientTransmit, context, answered);
        }
        if (requireNts)
        {
            return Outcome.Drop(ResponseReason.NtsRequired);
        }

        bool synchronised = WriteTimeHeader(buffer, version, poll, clientTransmit, context, state);
        responseLength = NtpHeader.Length;

        if (layout.HasMac)
        {
            // Symmetric keys are not offered: answer a MAC with a crypto-NAK (RFC 5905 §7.3), which
            // the client recognises and does not use as time.
            BinaryPrimitives.WriteUInt32BigEndian(buffer[NtpHeader.Length..], 0);
            responseLength += CryptoNakLength;
            return new Outcome(ResponseAction.Respond, ResponseReason.UnknownKey);
        }
        return new Outcome(ResponseAction.Respond, !synchronised ? ResponseReason.Unsynchronised : answered);
    }

    /// <summary>
    /// Writes a server-mode header (RFC 5905 §9.2 "fast_xmit"): leap, stratum, precision, root delay and
    /// dispersion grown to the receive time, reference, origin = client transmit, receive time. The
    /// transmit timestamp is provisional. Returns whether the time is synchronised.
    /// </summary>
    internal static bool WriteTimeHeader(Span<byte> buffer, byte version, sbyte poll, NtpTimestamp clientTransmit, in RequestContext context, ServerState state)
    {
        bool synchronised = state.IsSynchronised;
        var header = new NtpHeader
        {
            Leap = synchronised ? state.Leap : LeapIndicator.Unsynchronised,
            Version = version,
            Mode = NtpMode.Server,
            Stratum = synchronised ? state.Stratum : ServerState.UnsynchronisedStratum,
            Poll = poll,
            Precision = state.Precision,
            RootDelay = NtpShort.FromSeconds(state.RootDelay),
            RootDispersion = NtpShort.FromSeconds(state.RootDispersionAt(context.ReceiveUnixNanoseconds)),
            ReferenceId = synchronised ? state.ReferenceId : 0,
            Reference = synchronised ? state.ReferenceTime : NtpTimestamp.Zero,
            Origin = clientTransmit,
            Receive = context.ReceiveTime,
            // Provisional: the caller overwrites it with StampTransmit just before sending.
            Transmit = context.ReceiveTime,
        };
        header.Write(buffer);
        return synchronised;
    }

    /// <summary>
    /// A receive timestamp as the server sends it when it keeps interleaved state (RFC 9769 §2): its
    /// lowest bit set, a transmit timestamp's cleared (<see cref="MarkTransmit"/>), as chrony does. So
    /// the two are never equal (§2: "MUST NOT send a packet that has a transmit timestamp equal to the
    /// receive timestamp"), and a basic request (origin = our transmit) is told from an interleaved
    /// one (origin = our receive) without a table lookup. The bit is 2^-32 s, below any precision.
    /// </summary>
    public static NtpTimestamp MarkReceive(NtpTimestamp receive) => new(receive.Value | 1);

    /// <summary>A transmit timestamp as the server sends it when it keeps interleaved state: its lowest bit cleared.</summary>
    public static NtpTimestamp MarkTransmit(NtpTimestamp transmit) => new(transmit.Value & ~1UL);

    /// <summary>
    /// Makes the time response just written in <paramref name="response"/> an interleaved one when its
    /// request asked for it (RFC 9769 §2): the request's origin is the receive timestamp of an earlier
    /// response to this client that <paramref name="table"/> still holds, and its receive and transmit
    /// timestamps differ. Then the response's origin is the request's receive timestamp and its
    /// transmit timestamp the earlier response's, taken from the table (once). Returns whether it did;
    /// otherwise the response stays in basic mode.
    /// </summary>
    /// <param name="requestOrigin">The request's origin, receive and transmit, read before the response was written over it.</param>
    /// <param name="source">The tag the earlier transmit timestamp was saved with (where it came from).</param>
    public static bool Interleave(Span<byte> response, NtpTimestamp requestOrigin, NtpTimestamp requestReceive, NtpTimestamp requestTransmit,
        NetAddress client, InterleavedTable table, out byte source)
    {
        source = 0;
        // Our receive timestamps are odd (MarkReceive), our transmit timestamps even: an even origin is a basic request.
        if ((requestOrigin.Value & 1) == 0 || requestReceive == requestTransmit
            || !table.TryTake(requestOrigin, client, out NtpTimestamp previousTransmit, out source))
        {
            return false;
        }
        requestReceive.Write(response[NtpHeader.OriginOffset..]);
        previousTransmit.Write(response[NtpHeader.TransmitOffset..]);
        return true;
    }

    /// <summary>Writes the transmit timestamp (T3) of a response built by <see cref="Respond"/>.</summary>
    public static void StampTransmit(Span<byte> response, NtpTimestamp transmit) =>
        transmit.Write(response[NtpHeader.TransmitOffset..]);
}
