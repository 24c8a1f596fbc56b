using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Testing;
using CsCheck;

namespace Appliance.Protocol.Tests;

/// <summary>
/// On a CPU without AES-NI the NTS handler runs every AES-SIV operation on the reference cipher (the
/// platform's AES), one at a time, instead of the lanes, and AES-128-GCM-SIV on its portable path
/// (the platform's AES, POLYVAL in software): what goes out must not depend on which.
/// </summary>
public class NtsReferencePathTests
{
    private static readonly CookieKey s_current = new(5, Enumerable.Range(10, 32).Select(i => (byte)i).ToArray());
    private static readonly CookieKey s_previous = new(4, Enumerable.Range(60, 32).Select(i => (byte)i).ToArray());
    private static readonly CookieKey s_stranger = new(9, Enumerable.Range(90, 32).Select(i => (byte)i).ToArray());

    private enum Kind
    {
        Good,
        CookieOfThePreviousKey,
        TamperedAuthenticator,
        TamperedCookie,
        CookieOfAnUnknownKey,
    }

    private sealed record Client(AeadAlgorithm Aead, byte[] C2S, byte[] S2C, byte[] Uid);

    private static (byte[] Request, Client Client) Make(int n, Kind kind, AeadAlgorithm aead, int placeholders)
    {
        int length = AeadAlgorithms.KeyLength(aead);
        var client = new Client(aead, [.. Enumerable.Range(n, length).Select(i => (byte)i)], [.. Enumerable.Range(n + 70, length).Select(i => (byte)(i * 3))],
            [.. Enumerable.Range(n + 11, 32).Select(i => (byte)i)]);
        CookieKey key = kind switch
        {
            Kind.CookieOfThePreviousKey => s_previous,
            Kind.CookieOfAnUnknownKey => s_stranger,
            _ => s_current,
        };
        var cookie = new byte[NtsCookie.Length(aead)];
        NtsCookie.Seal(key, client.Uid.AsSpan(0, 16), aead, client.C2S, client.S2C, cookie);
        var packet = new byte[1024];
        int written = NtsClientPacket.WriteRequest(packet, 0x0102030405060708UL + (ulong)n, client.Uid, cookie, placeholders, client.Uid.AsSpan(16), AeadAlgorithms.Create(aead, client.C2S));
        byte[] request = packet[..written];
        if (kind == Kind.TamperedAuthenticator)
        {
            request[^1] ^= 0x20;
        }
        else if (kind == Kind.TamperedCookie)
        {
            request[NtpHeader.Length + 36 + 4 + 40] ^= 0x01; // inside the cookie's sealed part
        }
        return (request, client);
    }

    /// <summary>A batch through the three phases as the worker runs them: accept each, answer and seal per group.</summary>
    private static (Outcome Outcome, byte[] Response)[] Serve(NtsPacketHandler handler, byte[][] requests)
    {
        ServerState state = Packets.SyncedState();
        var policy = default(AllowAllPolicy);
        byte[][] buffers = [.. requests.Select(r => r.ToArray())];
        var outcomes = new Outcome[requests.Length];
        var lengths = new int[requests.Length];
        var deferred = new List<int>();
        for (int i = 0; i < requests.Length; i++)
        {
            outcomes[i] = NtpResponder.Respond(buffers[i], requests[i].Length, Packets.Context(), state, ref policy, handler, i, false, out lengths[i]);
            if (outcomes[i].Action == ResponseAction.Deferred)
            {
                deferred.Add(i);
            }
        }
        var answered = new List<int>();
        foreach (int[] members in deferred.Chunk(AesSivLanes.Width))
        {
            var group = default(NtsGroup);
            foreach (int slot in members)
            {
                group.Add(slot, buffers[slot]);
            }
            handler.Answer(ref group, state);
            foreach (int slot in members)
            {
                (outcomes[slot], lengths[slot]) = handler.Result(slot);
                if (outcomes[slot].Action == ResponseAction.Respond)
                {
                    answered.Add(slot);
                }
            }
        }
        foreach (int[] members in answered.Chunk(AesSivLanes.Width))
        {
            var group = default(NtsGroup);
            foreach (int slot in members)
            {
                NtpResponder.StampTransmit(buffers[slot], NtpTimestamp.FromUnixNanoseconds(Packets.ReceiveUnixNs + 1000 + slot));
                group.Add(slot, buffers[slot]);
            }
            handler.Seal(ref group);
        }
        return [.. outcomes.Select((o, i) => (o, buffers[i][..lengths[i]]))];
    }

    [Fact]
    public void ReferencePath_AnswersBitForBitAsTheLanes_ForMixedBatches() =>
        Gen.Select(Gen.Enum<Kind>(), Gen.Int[0, AeadAlgorithms.All.Count - 1], Gen.Int[0, 3]).Array[1, (2 * AesSivLanes.Width) + 3].Sample(kinds =>
        {
            var ring = new CookieKeyRingCell(new CookieKeyRing(s_current, [s_previous]));
            var lanes = new NtsPacketHandler(ring, new CountingRandom(), kinds.Length, useLanes: true);
            var reference = new NtsPacketHandler(ring, new CountingRandom(), kinds.Length, useLanes: false);
            Assert.True(lanes.UsesLanes);
            Assert.False(reference.UsesLanes);
            var made = kinds.Select((k, i) => Make(i * 5, k.Item1, AeadAlgorithms.All[k.Item2], k.Item3)).ToArray();
            byte[][] requests = [.. made.Select(m => m.Request)];

            var byLanes = Serve(lanes, requests);
            var byReference = Serve(reference, requests);

            for (int i = 0; i < kinds.Length; i++)
            {
                Assert.Equal(byLanes[i].Outcome, byReference[i].Outcome);
                Assert.Equal(byLanes[i].Response, byReference[i].Response);
                // And what both said is what a client expects of this request.
                ResponseReason expected = kinds[i].Item1 switch
                {
                    Kind.TamperedAuthenticator => ResponseReason.NtsBadAuthenticator,
                    Kind.TamperedCookie => ResponseReason.NtsCookieInvalid,
                    Kind.CookieOfAnUnknownKey => ResponseReason.NtsCookieUnknownKey,
                    _ => ResponseReason.Served,
                };
                Assert.Equal(expected, byLanes[i].Outcome.Reason);
                if (expected == ResponseReason.Served)
                {
                    Client c = made[i].Client;
                    Assert.Equal(NtsResponseCheck.Authentic,
                        NtsClientPacket.CheckResponse(byReference[i].Response, c.Uid, AeadAlgorithms.Create(c.Aead, c.S2C), new byte[2048], out int cookies));
                    Assert.Equal(1 + kinds[i].Item3, cookies);
                }
            }
        }, iter: 150);
}
