using Appliance.Protocol;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The NTP header and extension fields (RFC 5905 §7.3, RFC 7822) through the plain responder. Octet 0
/// is the setting: bit 7 a synchronised server, bits 0-2 the policy's verdict (so KoD and rate-limit
/// paths are reached); the rest is the request. Invariants: no exception; nothing sent means 0 octets;
/// a response is a server-mode header of the request's version, echoing its transmit timestamp as
/// origin (§8), and never longer than the request (anti-amplification, RFC 8915 §5.7).
/// </summary>
public static class NtpTarget
{
    /// <summary>A jumbo-free datagram: what the engine's receive buffers hold.</summary>
    public const int MaxInput = 1 + 2048;

    private static readonly PolicyVerdict[] s_verdicts = Enum.GetValues<PolicyVerdict>();

    public static void Run(ReadOnlySpan<byte> input)
    {
        if (!Responses.TrySplit(input, out byte setting, out ServerState state, out ReadOnlySpan<byte> request))
        {
            return;
        }
        var policy = new ScriptedPolicy(s_verdicts[(setting & 7) % s_verdicts.Length]);
        byte[] buffer = new byte[Math.Max(request.Length, 1)];
        request.CopyTo(buffer);
        Outcome outcome = NtpResponder.Respond(buffer, request.Length, Fixed.Context, state, ref policy, out int length);
        InvariantViolatedException.Check(outcome.Action != ResponseAction.Deferred, "a plain responder defers nothing");
        Responses.Check(request, buffer, outcome, length);
    }
}

/// <summary>A policy whose verdict the input chose.</summary>
internal struct ScriptedPolicy(PolicyVerdict verdict) : IClientPolicy
{
    public readonly PolicyVerdict Evaluate(in RequestContext context, bool nts) => verdict;

    public readonly bool WithinRate(NetAddress client, long limiterNanoseconds) => verdict == PolicyVerdict.Allow;
}

/// <summary>What every response of the server must be, plain or NTS.</summary>
internal static class Responses
{
    /// <summary>The setting octet in front of a request: bit 7 says the server is synchronised.</summary>
    public static bool TrySplit(ReadOnlySpan<byte> input, out byte setting, out ServerState state, out ReadOnlySpan<byte> request)
    {
        setting = input.IsEmpty ? (byte)0 : input[0];
        state = (setting & 0x80) != 0 ? Fixed.Synced() : Fixed.Unsynchronised;
        request = input.IsEmpty ? default : input[1..];
        return !input.IsEmpty;
    }

    public static void Check(ReadOnlySpan<byte> request, ReadOnlySpan<byte> buffer, Outcome outcome, int length)
    {
        if (outcome.Action == ResponseAction.Drop)
        {
            InvariantViolatedException.Check(length == 0, $"dropped ({outcome.Reason}) but {length} octets to send");
            return;
        }
        InvariantViolatedException.Check(length >= NtpHeader.Length && length <= request.Length,
            $"{outcome.Action} ({outcome.Reason}) of {length} octets to a request of {request.Length}: amplification or a short header");
        var sent = NtpHeader.Read(buffer);
        var asked = NtpHeader.Read(request);
        InvariantViolatedException.Check(sent.Mode == NtpMode.Server, $"a response in mode {sent.Mode}");
        InvariantViolatedException.Check(sent.Version == asked.Version, $"a version {sent.Version} response to version {asked.Version}");
        InvariantViolatedException.Check(sent.Origin == asked.Transmit, "the origin timestamp is not the request's transmit timestamp");
        InvariantViolatedException.Check(outcome.Action != ResponseAction.KissOfDeath || sent.Stratum == 0, "a KoD with a stratum");
    }
}
