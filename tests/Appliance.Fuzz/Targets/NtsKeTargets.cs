using Appliance.Protocol.Nts;
using Appliance.Testing;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// NTS-KE (RFC 8915 §4): the record codec and the two key-exchange machines, through their
/// <c>Fuzz(bytes, splits)</c> entries. The input's first octet is how many split lengths follow (0-3:
/// its value mod 4), each one octet; the rest is the octets TLS carries, fed in pieces of those lengths
/// in turn (all at once when there are none), so a finding reproduces however TLS cut the stream.
/// </summary>
public static class NtsKeTargets
{
    /// <summary>Past the server's request limit (1024 in the fuzz setting) and a full eight-cookie response.</summary>
    public const int MaxInput = 4096;

    /// <summary>
    /// The most a server answers: Next Protocol, AEAD, Server, Port and End of Message records, and
    /// eight cookies of the longest AEAD (the server's own bound; warnings and errors are shorter).
    /// </summary>
    private const int MaxServerResponse = (5 * NtsKeRecords.HeaderLength) + 2 + 2 + 255 + 2
        + (NtsKeRecords.CookieCount * (NtsKeRecords.HeaderLength + 256));

    /// <summary>
    /// The record codec: every record <see cref="NtsKeRecords.TryRead"/> finds covers exactly its header
    /// and body and writes back to the same octets; and the message reader, fed the same octets in
    /// pieces under a limit, hands out exactly the records that fit the limit, in order, never more.
    /// </summary>
    public static void Records(ReadOnlySpan<byte> input)
    {
        ReadOnlySpan<byte> octets = Split(input, out int[] splits);
        var whole = new List<(bool Critical, ushort Type, int Offset, int Length)>();
        int offset = 0;
        byte[] rewritten = new byte[NtsKeRecords.HeaderLength + ushort.MaxValue];
        while (NtsKeRecords.TryRead(octets[offset..], out NtsKeRecord record, out int consumed))
        {
            InvariantViolatedException.Check(consumed == NtsKeRecords.HeaderLength + record.Body.Length && consumed <= octets.Length - offset,
                $"a record of {record.Body.Length} body octets consumed {consumed}");
            int n = NtsKeRecords.Write(rewritten, record.Critical, (NtsKeRecordType)record.Type, record.Body);
            InvariantViolatedException.Check(rewritten.AsSpan(0, n).SequenceEqual(octets.Slice(offset, consumed)), "a record does not write back to its own octets");
            whole.Add((record.Critical, record.Type, offset + NtsKeRecords.HeaderLength, record.Body.Length));
            if (NtsKeRecords.IsUInt16List(record.Body))
            {
                _ = NtsKeRecords.Contains(record.Body, NtsKeRecords.NtpV4);
            }
            offset += consumed;
        }
        InvariantViolatedException.Check(octets.Length - offset < NtsKeRecords.HeaderLength
            || octets.Length - offset < NtsKeRecords.HeaderLength + ((octets[offset + 2] << 8) | octets[offset + 3]),
            "TryRead stopped before a whole record");

        int limit = splits.Length == 0 ? octets.Length : Math.Min(octets.Length, splits[0] * 16);
        var reader = new NtsKeMessageReader(limit, 16);
        int fed = 0, taken = 0, next = 0;
        for (int i = 0; fed < octets.Length; i++)
        {
            int length = splits.Length == 0 ? octets.Length : Math.Clamp(splits[i % splits.Length], 1, octets.Length - fed);
            taken += reader.Append(octets.Slice(fed, length));
            fed += length;
            InvariantViolatedException.Check(taken <= limit, $"the reader took {taken} octets past its limit of {limit}");
            while (reader.TryRead(out NtsKeRecord record))
            {
                InvariantViolatedException.Check(next < whole.Count, "the reader found a record the whole octets do not have");
                (bool critical, ushort type, int bodyOffset, int bodyLength) = whole[next++];
                InvariantViolatedException.Check(record.Critical == critical && record.Type == type && record.Body.SequenceEqual(octets.Slice(bodyOffset, bodyLength)),
                    "the reader's record differs from the one in the whole octets");
            }
        }
        int fits = whole.Count(r => r.Offset + r.Length <= limit);
        InvariantViolatedException.Check(next == fits, $"the reader handed out {next} records where {fits} fit its limit");
        InvariantViolatedException.Check(reader.IsFull == (taken == limit), "IsFull disagrees with what was taken");
    }

    /// <summary>
    /// The server machine: it never throws, ends with a defined reason, answers at most a full
    /// eight-cookie response; and the outcome of a request (up to its first End of Message) does not
    /// depend on how it was split.
    /// </summary>
    public static void Server(ReadOnlySpan<byte> input)
    {
        ReadOnlySpan<byte> request = Split(input, out int[] splits);
        NtsKeServerReason reason = NtsKeServerSession.Fuzz(request, splits, out int sent);
        InvariantViolatedException.Check(Enum.IsDefined(reason), $"reason {(int)reason}");
        InvariantViolatedException.Check(sent is >= 0 and <= MaxServerResponse, $"a response of {sent} octets");

        ReadOnlySpan<byte> message = request[..ProtocolFixtures.EndOfFirstMessage(request)];
        NtsKeServerReason whole = NtsKeServerSession.Fuzz(message, [], out int wholeSent);
        NtsKeServerReason split = NtsKeServerSession.Fuzz(message, splits, out int splitSent);
        InvariantViolatedException.Check(whole == split && wholeSent == splitSent,
            $"the request whole ends {whole} ({wholeSent} octets sent), split {split} ({splitSent})");
    }

    /// <summary>
    /// The client machine: it never throws, ends with a defined reason, keeps no more cookie octets
    /// than it was sent; and the outcome does not depend on how the response was split (it is done
    /// only after the server closes).
    /// </summary>
    public static void Client(ReadOnlySpan<byte> input)
    {
        ReadOnlySpan<byte> response = Split(input, out int[] splits);
        NtsKeClientReason split = NtsKeClientSession.Fuzz(response, splits, out int splitCookies);
        InvariantViolatedException.Check(Enum.IsDefined(split), $"reason {(int)split}");
        InvariantViolatedException.Check(splitCookies >= 0 && splitCookies <= response.Length, $"{splitCookies} cookie octets from {response.Length}");
        NtsKeClientReason whole = NtsKeClientSession.Fuzz(response, [], out int wholeCookies);
        InvariantViolatedException.Check(whole == split && wholeCookies == splitCookies,
            $"the response whole ends {whole} ({wholeCookies} cookie octets), split {split} ({splitCookies})");
    }

    /// <summary>The split lengths at the front of <paramref name="input"/>, and the octets after them.</summary>
    internal static ReadOnlySpan<byte> Split(ReadOnlySpan<byte> input, out int[] splits)
    {
        if (input.IsEmpty)
        {
            splits = [];
            return input;
        }
        int count = Math.Min(input[0] & 3, input.Length - 1);
        splits = new int[count];
        for (int i = 0; i < count; i++)
        {
            splits[i] = Math.Max(1, (int)input[1 + i]);
        }
        return input[(1 + count)..];
    }
}
