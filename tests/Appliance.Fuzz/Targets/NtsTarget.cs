using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Testing;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The NTS packet path (RFC 8915 §5): the responder hands an NTS request to <see cref="NtsPacketHandler"/>,
/// which opens its cookie under a fixed key ring, verifies the authenticator with the cookie's C2S
/// key, writes fresh cookies and seals the response with S2C, in the worker's three phases (accept,
/// answer, seal). Octet 0 is the setting (bit 7: a synchronised server; bit 6: NTS required); the rest
/// is the request. Every request runs twice, on the AES-NI lanes (<c>AesSivLanes</c>) and on the
/// reference AES-SIV one operation at a time, with the same randomness. Invariants: no exception;
/// both paths give the same outcome and the same octets; and every response is what
/// <see cref="Responses.Check"/> requires, never longer than its request (§5.7).
/// </summary>
public static class NtsTarget
{
    public const int MaxInput = 1 + 2048;

    private static readonly CookieKeyRingCell s_keys = new(Fixed.Ring);

    public static void Run(ReadOnlySpan<byte> input)
    {
        if (!Responses.TrySplit(input, out byte setting, out ServerState state, out ReadOnlySpan<byte> request))
        {
            return;
        }
        bool requireNts = (setting & 0x40) != 0;

        byte[] lanes = new byte[Math.Max(request.Length, 1)];
        byte[] reference = new byte[lanes.Length];
        request.CopyTo(lanes);
        request.CopyTo(reference);
        (Outcome Outcome, int Length) fast = Respond(new NtsPacketHandler(s_keys, new CountingRandom(), 1, useLanes: true), lanes, request.Length, state, requireNts);
        (Outcome Outcome, int Length) slow = Respond(new NtsPacketHandler(s_keys, new CountingRandom(), 1, useLanes: false), reference, request.Length, state, requireNts);

        InvariantViolatedException.Check(fast == slow, $"the lanes say {fast}, the reference path {slow}");
        InvariantViolatedException.Check(lanes.AsSpan(0, fast.Length).SequenceEqual(reference.AsSpan(0, slow.Length)),
            "the lanes and the reference path wrote different responses");
        Responses.Check(request, lanes, fast.Outcome, fast.Length);
        if (fast.Outcome is { Action: ResponseAction.Respond, Nts: true })
        {
            // Only a cookie sealed under the ring opens, and only the fixture seals them: the client
            // that holds the fixture's keys must find the response authentic (§5.7).
            InvariantViolatedException.Check(AuthenticToTheClient(request, lanes.AsSpan(0, fast.Length)),
                "an NTS time response that the client holding the cookie's keys does not find authentic");
        }
    }

    private static bool AuthenticToTheClient(ReadOnlySpan<byte> request, ReadOnlySpan<byte> response)
    {
        if (!ExtensionFields.TryGetLayout(request[NtpHeader.Length..], 4, out ExtensionLayout layout))
        {
            return false;
        }
        ReadOnlySpan<byte> uniqueId = default;
        foreach (ExtensionField field in ExtensionFields.Enumerate(request.Slice(NtpHeader.Length, layout.FieldsLength)))
        {
            if (field.Type == NtsExtensionField.UniqueIdentifier)
            {
                uniqueId = field.Value;
            }
        }
        Span<byte> plaintext = stackalloc byte[2048];
        foreach (AeadAlgorithm aead in AeadAlgorithms.All)
        {
            if (NtsClientPacket.CheckResponse(response, uniqueId, AeadAlgorithms.Create(aead, Fixed.S2C(aead)), plaintext, out _) == NtsResponseCheck.Authentic)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>One request through the three phases, as a worker runs a group of one.</summary>
    private static (Outcome, int) Respond(NtsPacketHandler handler, byte[] buffer, int length, ServerState state, bool requireNts)
    {
        var policy = default(AllowAllPolicy);
        Outcome outcome = NtpResponder.Respond(buffer, length, Fixed.Context, state, ref policy, handler, 0, requireNts, out int responseLength);
        if (outcome.Action != ResponseAction.Deferred)
        {
            return (outcome, responseLength);
        }
        var group = default(NtsGroup);
        group.Add(0, buffer);
        handler.Answer(ref group, state);
        (outcome, responseLength) = handler.Result(0);
        InvariantViolatedException.Check(outcome.Action != ResponseAction.Deferred, "still deferred after Answer");
        if (outcome.Action == ResponseAction.Respond)
        {
            NtpResponder.StampTransmit(buffer, NtpTimestamp.FromUnixNanoseconds(Fixed.ReceiveUnixNs + 1000));
            handler.Seal(ref group);
        }
        return (outcome, responseLength);
    }
}
