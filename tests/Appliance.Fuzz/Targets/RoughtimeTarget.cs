using Appliance.Protocol.Roughtime;
using NSec.Cryptography;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// Roughtime (RFC 10049), both sides. The input is a request: the server's responder takes it in a
/// batch beside a valid request, signs, and answers. Invariants: no exception; an answer is never
/// larger than its request (§9.7) and verifies, for that very request packet, with the client
/// written from the RFC; the valid neighbour is answered and verifies whatever the input did. The
/// input is also handed to the client as a response to the valid request: it must be rejected (only
/// the server's keys could make it valid) without an exception.
/// </summary>
public static class RoughtimeTarget
{
    public const int MaxInput = 2048;

    private static readonly Key s_longTerm = Key.Import(SignatureAlgorithm.Ed25519, Fixed.Octets(1, 32), KeyBlobFormat.RawPrivateKey);

    private static readonly byte[] s_publicKey = s_longTerm.PublicKey.Export(KeyBlobFormat.RawPublicKey);

    private static readonly RoughtimeDelegation s_delegation =
        RoughtimeDelegation.Create(s_longTerm, Key.Import(SignatureAlgorithm.Ed25519, Fixed.Octets(33, 32), KeyBlobFormat.RawPrivateKey), 0, ulong.MaxValue);

    /// <summary>The valid request every batch holds beside the input (a fixed nonce).</summary>
    public static byte[] ValidRequest { get; } = MakeRequest(Fixed.Octets(77, 32), [RoughtimeVersion.Rfc, RoughtimeVersion.Draft]);

    public static byte[] PublicKey => s_publicKey;

    /// <summary>The server's answer to a request other than <see cref="ValidRequest"/> (a seed that reaches deep into the client's checks).</summary>
    public static byte[] AnswerToAnother()
    {
        var responder = new RoughtimeResponder(s_publicKey, 1, MaxInput) { Delegation = s_delegation };
        responder.Clear();
        byte[] request = MakeRequest(Fixed.Octets(9, 32), [RoughtimeVersion.Rfc]);
        responder.Accept(0, request);
        responder.Sign(1_800_000_000, 3);
        return request[..responder.WriteResponse(0, request, out _)];
    }

    public static byte[] MakeRequest(byte[] nonce, uint[] versions)
    {
        var request = new byte[RoughtimeClient.RequestPacketLength];
        RoughtimeClient.WriteRequest(request, nonce, s_publicKey, versions);
        return request;
    }

    public static void Run(ReadOnlySpan<byte> input)
    {
        var responder = new RoughtimeResponder(s_publicKey, 2, MaxInput) { Delegation = s_delegation };
        responder.Clear();
        byte[] fuzzed = input.ToArray();
        byte[] neighbour = [.. ValidRequest];
        RoughtimeDrop accepted = responder.Accept(0, fuzzed);
        InvariantViolatedException.Check(responder.Accept(1, neighbour) == RoughtimeDrop.None, "the valid request was not accepted");
        responder.Sign(1_800_000_000, 3);

        var answer = new byte[MaxInput];
        int length = responder.WriteResponse(0, answer, out _);
        InvariantViolatedException.Check(length == 0 || accepted == RoughtimeDrop.None, $"answered a request it dropped ({accepted})");
        if (length > 0)
        {
            InvariantViolatedException.Check(length <= input.Length, $"a {length}-byte answer to a {input.Length}-byte request");
            RoughtimeRejection verdict = RoughtimeClient.Verify(input, answer.AsSpan(0, length), s_publicKey, out RoughtimeReading reading);
            InvariantViolatedException.Check(verdict == RoughtimeRejection.None, $"the client rejects the answer to this request: {verdict}");
            InvariantViolatedException.Check(reading.Midpoint == 1_800_000_000 && reading.Radius == 3, "the answer says another time");
        }
        int neighbourLength = responder.WriteResponse(1, neighbour, out _);
        InvariantViolatedException.Check(
            RoughtimeClient.Verify(ValidRequest, neighbour.AsSpan(0, neighbourLength), s_publicKey, out _) == RoughtimeRejection.None,
            "the valid request's answer does not verify beside this input");

        InvariantViolatedException.Check(RoughtimeClient.Verify(ValidRequest, input, s_publicKey, out _) != RoughtimeRejection.None,
            "the client accepted a response the server never signed");
    }
}
