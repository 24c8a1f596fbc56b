using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Testing;
using CsCheck;

namespace Appliance.Protocol.Tests;

/// <summary>
/// The upstream association machine, driven without sockets: its requests are answered by the
/// server's own responder (and NTS handler), or by hand-made packets where a server misbehaves.
/// </summary>
public class NtpAssociationTests
{
    private const long Second = 1_000_000_000L;

    /// <summary>The driver's part, by hand: a monotonic clock, a system clock 1.8e9 s after the epoch, and the wire.</summary>
    private sealed class Harness
    {
        public Harness(AssociationOptions? options = null) =>
            Association = new NtpAssociation(options ?? new AssociationOptions { MinPoll = 4, MaxPoll = 6, Iburst = false }, new CountingRandom());

        public NtpAssociation Association { get; }

        /// <summary>Monotonic nanoseconds.</summary>
        public long Now { get; set; } = 1000 * Second;

        /// <summary>The system clock (Unix ns) at <see cref="Now"/>.</summary>
        public long Realtime => Packets.ReceiveUnixNs + Now;

        public byte[] Request { get; } = new byte[1280];

        public int Length { get; private set; }

        /// <summary>Moves to <see cref="NtpAssociation.WakeAt"/> (if later) and polls.</summary>
        public PollAction PollWhenDue()
        {
            Now = Math.Max(Now, Association.WakeAt);
            return Poll();
        }

        public PollAction Poll()
        {
            PollAction action = Association.Poll(Now, Request, out int length);
            Length = length;
            if (action == PollAction.Send)
            {
                Association.Sent(Realtime, Now);
            }
            return action;
        }

        /// <summary>The request as the server receives it 1 ms later, answered by the real responder (stratum 2, 0.25 s ahead).</summary>
        public byte[] Answer(ServerState? state = null, long shift = Second / 4)
        {
            byte[] buffer = [.. Request.AsSpan(0, Length)];
            long t2 = Realtime + 1_000_000 + shift;
            var policy = default(AllowAllPolicy);
            var context = new RequestContext(NetAddress.FromIPv4(0x7F000001), t2, NtpTimestamp.FromUnixNanoseconds(t2));
            Outcome outcome = NtpResponder.Respond(buffer, Length, context, state ?? Packets.SyncedState(t2), ref policy, out int n);
            Assert.Equal(ResponseAction.Respond, outcome.Action);
            NtpResponder.StampTransmit(buffer, NtpTimestamp.FromUnixNanoseconds(t2 + 20_000));
            return buffer[..n];
        }

        /// <summary>The answer arrives 2 ms after the request left.</summary>
        public ReplyReason Receive(byte[] datagram, out Measurement measurement)
        {
            Now += 2_000_000;
            return Association.Receive(datagram, Realtime, Now, out measurement);
        }

        public NtpHeader RequestHeader => NtpHeader.Read(Request.AsSpan(0, Length));
    }

    /// <summary>An answer to <paramref name="request"/> written by hand (mode, version, timestamps as given).</summary>
    private static byte[] Reply(NtpHeader request, long receive = Packets.ReceiveUnixNs)
    {
        var answer = new NtpHeader
        {
            Leap = LeapIndicator.NoWarning,
            Version = 4,
            Mode = NtpMode.Server,
            Stratum = 2,
            Origin = request.Transmit,
            Receive = NtpTimestamp.FromUnixNanoseconds(receive),
            Transmit = NtpTimestamp.FromUnixNanoseconds(receive + 1000),
        };
        var bytes = new byte[NtpHeader.Length];
        answer.Write(bytes);
        return bytes;
    }

    private static byte[] Edited(NtpHeader request, Func<NtpHeader, NtpHeader> edit)
    {
        NtpHeader answer = NtpHeader.Read(Reply(request));
        answer = edit(answer);
        var bytes = new byte[NtpHeader.Length];
        answer.Write(bytes);
        return bytes;
    }

    [Fact]
    public void FirstPoll_IsAtOnce_AClientModeRequestWithARandomTransmitAndThePoll()
    {
        var h = new Harness();
        Assert.Equal(PollAction.Send, h.Poll());
        NtpHeader request = h.RequestHeader;
        Assert.Equal(NtpHeader.Length, h.Length);
        Assert.Equal(NtpMode.Client, request.Mode);
        Assert.Equal(4, request.Version);
        Assert.Equal(4, request.Poll);
        // Data minimisation: nothing of our clock in the request, the transmit timestamp is random.
        Assert.True(request.Receive.IsZero && request.Origin.IsZero && request.Reference.IsZero);
        Assert.NotEqual(0UL, request.Transmit.Value);
        Assert.True(h.Association.AwaitingReply);
        Assert.Equal(1, h.Association.Counters.Requests);
    }

    [Fact]
    public void Answer_GivesTheFourTimestamps_AndTheOffsetOfTheServer()
    {
        var h = new Harness();
        h.Poll();
        long t1 = h.Realtime;
        byte[] answer = h.Answer();

        Assert.Equal(ReplyReason.Sample, h.Receive(answer, out Measurement m));

        Assert.Equal(t1, m.T1);
        Assert.Equal(h.Realtime, m.T4);
        double offset = ((m.T2 - m.T1) + (double)(m.T3 - m.T4)) / 2e9;
        double delay = ((m.T4 - m.T1) - (double)(m.T3 - m.T2)) / 1e9;
        Assert.InRange(offset, 0.25 - 0.002, 0.25 + 0.002);
        Assert.InRange(delay, 0.0019, 0.0021);
        Assert.Equal(2, m.Response.Stratum);
        Assert.Equal(SourceState.Reachable, h.Association.State);
        Assert.Equal(1, h.Association.Schedule.Reach);
        Assert.False(h.Association.AwaitingReply);
    }

    [Fact]
    public void NextPoll_IsThePollIntervalFromTheSend_WithinOneSixteenth()
    {
        var h = new Harness();
        h.Poll();
        long sent = h.Now;
        h.Receive(h.Answer(), out _);
        long interval = h.Association.WakeAt - sent;
        Assert.InRange(interval, 16 * Second * 15 / 16, 16 * Second * 17 / 16);
        Assert.Equal(PollAction.Wait, h.Poll());
        Assert.Equal(PollAction.Send, h.PollWhenDue());
    }

    [Fact]
    public void Iburst_FourRequestsTwoSecondsApart_ThenThePoll()
    {
        var h = new Harness(new AssociationOptions { MinPoll = 6, MaxPoll = 10, Iburst = true });
        var sends = new List<long>();
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(PollAction.Send, h.PollWhenDue());
            sends.Add(h.Now);
            h.Receive(h.Answer(), out _);
        }
        double[] gaps = sends.Zip(sends.Skip(1), (a, b) => (b - a) / 1e9).ToArray();
        double[] expected = [2, 2, 2, 64, 64];
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.InRange(gaps[i], expected[i] * 15 / 16, expected[i] * 17 / 16); // ±1/16 of jitter
        }
    }

    [Fact]
    public void Timeout_TheRequestIsGivenUp_ALateAnswerIsNotOurs_ThreeLostMakeUnreachable()
    {
        var h = new Harness();
        h.Poll();
        byte[] late = h.Answer();
        Assert.Equal(PollAction.Wait, h.Poll()); // inside the timeout: still waiting
        h.Now += 1 * Second;                     // the timeout (1 s) is over
        Assert.Equal(PollAction.Wait, h.Poll()); // given up; the next poll is 16 s after the send
        Assert.False(h.Association.AwaitingReply);
        Assert.Equal(ReplyReason.NotOurs, h.Association.Receive(late, h.Realtime, h.Now, out _));
        Assert.Equal(0, h.Association.Counters.Invalid);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(PollAction.Send, h.PollWhenDue());
            h.Now = h.Association.WakeAt;
            h.Poll();
        }
        Assert.Equal(SourceState.Unreachable, h.Association.State);
        Assert.Equal(0, h.Association.Schedule.Reach);
    }

    [Fact]
    public void Timeout_RunsFromTheSend_NotFromThePoll()
    {
        var h = new Harness();
        Assert.Equal(PollAction.Send, h.Association.Poll(h.Now, h.Request, out int length));
        h.Now += 900_000_000; // the driver took 0.9 s to resolve the name and open the socket
        h.Association.Sent(h.Realtime, h.Now);
        byte[] buffer = h.Request[..length];
        h.Now += 600_000_000;
        Assert.Equal(PollAction.Wait, h.Association.Poll(h.Now, h.Request, out _));
        Assert.True(h.Association.AwaitingReply);
        NtpHeader request = NtpHeader.Read(buffer);
        Assert.Equal(ReplyReason.Sample, h.Association.Receive(Reply(request, h.Realtime), h.Realtime, h.Now, out _));
    }

    [Fact]
    public void AnswerAfterTheDeadline_ButBeforeThePoll_IsNotOurs()
    {
        var h = new Harness();
        h.Poll();
        byte[] answer = h.Answer();
        h.Now += 1 * Second;
        Assert.Equal(ReplyReason.NotOurs, h.Association.Receive(answer, h.Realtime, h.Now, out _));
    }

    [Fact]
    public void WrongOrigin_IsNotOurs_AndTheRealAnswerIsStillTaken()
    {
        var h = new Harness();
        h.Poll();
        NtpHeader request = h.RequestHeader;
        byte[] spoofed = Edited(request, a => a with { Origin = new NtpTimestamp(request.Transmit.Value + 1) });
        Assert.Equal(ReplyReason.NotOurs, h.Receive(spoofed, out _));
        Assert.True(h.Association.AwaitingReply);
        Assert.Equal(0, h.Association.Counters.Invalid);
        Assert.Equal(ReplyReason.Sample, h.Receive(h.Answer(), out _));
    }

    [Theory]
    [InlineData(NtpMode.SymmetricActive, 4, ReplyReason.BadMode)]
    [InlineData(NtpMode.Broadcast, 4, ReplyReason.BadMode)]
    [InlineData(NtpMode.Server, 2, ReplyReason.BadVersion)]
    [InlineData(NtpMode.Server, 5, ReplyReason.BadVersion)]
    public void WrongModeOrVersion_IsInvalid_TheExchangeGoesOn(NtpMode mode, byte version, ReplyReason expected)
    {
        var h = new Harness();
        h.Poll();
        byte[] bad = Edited(h.RequestHeader, a => a with { Mode = mode, Version = version });
        Assert.Equal(expected, h.Receive(bad, out _));
        Assert.Equal(1, h.Association.Counters.Invalid);
        Assert.True(h.Association.AwaitingReply);
        Assert.Equal(0, h.Association.Schedule.Reach);
    }

    [Fact]
    public void ShortDatagram_IsMalformed()
    {
        var h = new Harness();
        h.Poll();
        Assert.Equal(ReplyReason.Malformed, h.Receive(new byte[47], out _));
        Assert.Equal(1, h.Association.Counters.Invalid);
    }

    [Fact]
    public void ZeroReceiveOrTransmit_IsInvalid_AndEndsTheExchange()
    {
        var h = new Harness();
        h.Poll();
        byte[] bad = Edited(h.RequestHeader, a => a with { Receive = NtpTimestamp.Zero });
        Assert.Equal(ReplyReason.ZeroTimestamps, h.Receive(bad, out _));
        Assert.False(h.Association.AwaitingReply);
        Assert.Equal(1, h.Association.Counters.Invalid);
        Assert.Equal(0, h.Association.Counters.Answers);
    }

    [Fact]
    public void TransmitBeforeReceive_IsInvalid_NoSample()
    {
        var h = new Harness();
        h.Poll();
        byte[] bad = Edited(h.RequestHeader, a => a with { Transmit = NtpTimestamp.FromUnixNanoseconds(Packets.ReceiveUnixNs - 1000) });
        Assert.Equal(ReplyReason.TransmitBeforeReceive, h.Receive(bad, out _));
        Assert.Equal(1, h.Association.Counters.Invalid);
    }

    [Fact]
    public void UnsynchronisedServer_IsReachable_ButGivesNoSample()
    {
        var h = new Harness();
        h.Poll();
        Assert.Equal(ReplyReason.ServerUnsynchronised, h.Receive(h.Answer(ServerState.Unsynchronised(-20)), out _));
        Assert.Equal(SourceState.Unsynchronised, h.Association.State);
        Assert.Equal(1, h.Association.Schedule.Reach);
    }

    [Fact]
    public void TimestampsNearAnEraBoundary_AreTakenInT1sEra()
    {
        // RFC 5905 §6: the 32-bit seconds wrap in 2036; T2 and T3 are placed in the era nearest T1.
        var h = new Harness();
        h.Poll();
        long t1 = h.Realtime;
        NtpHeader request = h.RequestHeader;
        long receive = t1 + (137L * 365 * 86400 * Second); // one era (2^32 s, ~136 years) later reads the same on the wire
        byte[] answer = Reply(request, receive: receive);
        Assert.Equal(ReplyReason.Sample, h.Receive(answer, out Measurement m));
        Assert.InRange(Math.Abs(m.T2 - t1), 0, 400L * 86400 * Second); // within a year of T1, not 136 years on
    }

    [Fact]
    public void KodRate_RaisesThePoll_AndShowsRateLimited()
    {
        var h = new Harness();
        h.Poll();
        var kod = new byte[NtpHeader.Length];
        KissOfDeath.Write(kod, 4, 8, h.RequestHeader.Transmit, KissCode.Rate);
        Assert.Equal(ReplyReason.KissRate, h.Receive(kod, out _));
        Assert.Equal(8, h.Association.Schedule.Poll); // at least the server's poll (RFC 5905 §7.4)
        Assert.Equal(SourceState.RateLimited, h.Association.State);
        Assert.Equal(1, h.Association.Counters.KissOfDeath);
        Assert.Equal(PollAction.Send, h.PollWhenDue());
    }

    [Theory]
    [InlineData(KissCode.Deny, ReplyReason.KissDeny)]
    [InlineData(KissCode.Restrict, ReplyReason.KissRestrict)]
    public void KodDenyOrRestrict_StopsForGood(KissCode code, ReplyReason expected)
    {
        var h = new Harness();
        h.Poll();
        var kod = new byte[NtpHeader.Length];
        KissOfDeath.Write(kod, 4, 4, h.RequestHeader.Transmit, code);
        Assert.Equal(expected, h.Receive(kod, out _));
        Assert.Equal(PollAction.Stop, h.PollWhenDue());
        h.Now += 100_000 * Second;
        Assert.Equal(PollAction.Stop, h.Poll());
        Assert.Equal(SourceState.Denied, h.Association.State);
    }

    [Fact]
    public void PollAdaptation_SteadySamplesRaiseThePollToMaxpoll_UnsteadyOnesBackToMinpoll()
    {
        var h = new Harness(new AssociationOptions { MinPoll = 4, MaxPoll = 6, Iburst = false });
        for (int i = 0; i < 40; i++)
        {
            h.PollWhenDue();
            h.Receive(h.Answer(), out _);
            h.Association.Adapt(steady: true);
        }
        Assert.Equal(6, h.Association.Schedule.Poll);
        Assert.Equal(6, h.RequestHeader.Poll);
        for (int i = 0; i < 40; i++)
        {
            h.PollWhenDue();
            h.Receive(h.Answer(), out _);
            h.Association.Adapt(steady: false);
        }
        Assert.Equal(4, h.Association.Schedule.Poll);
    }

    [Fact]
    public void NetworkFailures_BackOffExponentially()
    {
        var h = new Harness(new AssociationOptions { MinPoll = 4, MaxPoll = 6, Iburst = false });
        double[] expected = [2, 4, 8, 16, 32, 64, 64, 64];
        foreach (double wait in expected)
        {
            Assert.Equal(PollAction.Send, h.PollWhenDue());
            h.Association.Failed(h.Now, AssociationFailure.Network);
            Assert.InRange((h.Association.WakeAt - h.Now) / 1e9, wait * 15 / 16, wait * 17 / 16);
        }
    }

    [Fact]
    public void SameRandomness_SameRequests()
    {
        byte[] Run()
        {
            var h = new Harness();
            h.Poll();
            return h.Request[..h.Length];
        }
        Assert.Equal(Run(), Run());
    }

    /// <summary>An NTS association whose server is the real NTS handler of <see cref="NtsFixture"/>.</summary>
    private static (Harness Harness, NtsFixture Server) NtsPair(int cookies = NtpAssociation.CookiePool)
    {
        var server = new NtsFixture();
        var h = new Harness(new AssociationOptions { MinPoll = 4, MaxPoll = 6, Iburst = false, Nts = true });
        Assert.Equal(PollAction.KeyExchange, h.Poll());
        Assert.Equal(SourceState.Starting, h.Association.State);
        h.Association.KeyExchanged(server.Aead, server.C2S, server.S2C, Enumerable.Repeat(server.Cookie, cookies).Select(c => c.ToArray()), h.Now);
        return (h, server);
    }

    private static byte[] NtsAnswer(Harness h, NtsFixture server)
    {
        byte[] buffer = [.. h.Request.AsSpan(0, h.Length), .. new byte[64]];
        server.Respond(buffer, h.Length, out int length);
        Assert.True(length > 0);
        return buffer[..length];
    }

    [Fact]
    public void Nts_NoCookies_AsksForAKeyExchange_ThenSendsAnAuthenticatedRequest()
    {
        (Harness h, NtsFixture server) = NtsPair();
        Assert.Equal(PollAction.Send, h.Poll());
        Assert.Equal(1, h.Association.Counters.KeyExchanges);
        Assert.Equal(NtpAssociation.CookiePool - 1, h.Association.Cookies);
        Assert.Equal(ReplyReason.Sample, h.Receive(NtsAnswer(h, server), out Measurement m));
        Assert.Equal(NtpAssociation.CookiePool, h.Association.Cookies); // one new cookie for the one used
        Assert.Equal(2, m.Response.Stratum);
    }

    [Fact]
    public void Nts_PlaceholdersRefillThePool()
    {
        (Harness h, NtsFixture server) = NtsPair(cookies: 3);
        Assert.Equal(PollAction.Send, h.Poll());
        Assert.Equal(2, h.Association.Cookies);
        Assert.Equal(ReplyReason.Sample, h.Receive(NtsAnswer(h, server), out _));
        Assert.Equal(NtpAssociation.CookiePool, h.Association.Cookies); // the used one and five placeholders
    }

    [Fact]
    public void Nts_AnUnauthenticatedAnswer_EvenAKod_IsIgnored()
    {
        (Harness h, NtsFixture server) = NtsPair();
        h.Poll();
        var kod = new byte[NtpHeader.Length];
        KissOfDeath.Write(kod, 4, 4, h.RequestHeader.Transmit, KissCode.Deny);
        Assert.Equal(ReplyReason.Unauthenticated, h.Receive(kod, out _)); // RFC 8915 §5.7: unauthenticated KoDs mean nothing
        byte[] tampered = NtsAnswer(h, server);
        tampered[^1] ^= 1;
        Assert.Equal(ReplyReason.Unauthenticated, h.Receive(tampered, out _));
        Assert.Equal(2, h.Association.Counters.Invalid);
        Assert.True(h.Association.AwaitingReply);
        Assert.Equal(PollAction.Wait, h.Poll());
        Assert.Equal(SourceState.Starting, h.Association.State);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(20)]
    [InlineData(28)]
    public void Nts_AnythingAfterTheAuthenticator_IsRefused(int trailing)
    {
        // RFC 8915 §5.6: octets after the authenticator are not authenticated (a field, a MAC, zeros).
        (Harness h, NtsFixture server) = NtsPair();
        h.Poll();
        byte[] answer = [.. NtsAnswer(h, server), .. new byte[trailing]];
        Assert.Equal(ReplyReason.Unauthenticated, h.Receive(answer, out _));
    }

    /// <summary>The Unique Identifier of the request the association just sent (its first field, RFC 8915 §5.7).</summary>
    private static byte[] RequestUid(Harness h)
    {
        foreach (ExtensionField field in ExtensionFields.Enumerate(h.Request.AsSpan(NtpHeader.Length, h.Length - NtpHeader.Length)))
        {
            Assert.Equal(NtsExtensionField.UniqueIdentifier, field.Type);
            return field.Value.ToArray();
        }
        throw new InvalidOperationException("no field");
    }

    [Theory]
    [InlineData("ours, another")]
    [InlineData("another, ours")]
    [InlineData("ours, ours")]
    [InlineData("ours, authenticator")]
    public void Nts_AnAuthenticAnswerWithAnotherFieldLayout_IsRefused_AndTheGenuineOneStillServes(string layout)
    {
        // Issue #14: a response with a second UID (the last one used to win) or a second authenticator,
        // sealed under the right key, is not a sample.
        (Harness h, NtsFixture server) = NtsPair();
        h.Poll();
        byte[] uid = RequestUid(h);
        byte[] answer = NtsAnswer(h, server);
        NtsResponseForge.Parts parts = NtsResponseForge.Open(answer, uid, server.S2C);
        byte[] another = [.. uid[16..], .. uid[..16]];
        byte[][] fields = layout.Split(", ").Select(which => which switch
        {
            "ours" => NtsResponseForge.Field(NtsExtensionField.UniqueIdentifier, uid),
            "another" => NtsResponseForge.Field(NtsExtensionField.UniqueIdentifier, another),
            _ => parts.Authenticator,
        }).ToArray();
        int cookies = h.Association.Cookies;

        Assert.Equal(ReplyReason.Unauthenticated, h.Receive(NtsResponseForge.Seal(parts.Header, fields, parts.Plaintext, server.S2C), out _));
        Assert.Equal(cookies, h.Association.Cookies); // none taken from it
        Assert.True(h.Association.AwaitingReply);
        // The same parts in the layout RFC 8915 §5.7 gives are a sample: only the layout was wrong.
        Assert.Equal(ReplyReason.Sample, h.Receive(NtsResponseForge.Seal(parts.Header, parts.Fields, parts.Plaintext, server.S2C), out _));
    }

    [Fact]
    public void Nts_ANakWithASecondUniqueIdentifier_IsNotANak_TheCookiesStay()
    {
        (Harness h, _) = NtsPair();
        h.Poll();
        byte[] uid = RequestUid(h);
        var kod = new byte[NtpHeader.Length];
        KissOfDeath.Write(kod, 4, 4, h.RequestHeader.Transmit, KissCode.NtsNak);
        byte[] other = NtsResponseForge.Field(NtsExtensionField.UniqueIdentifier, [.. uid[16..], .. uid[..16]]);
        byte[] ours = NtsResponseForge.Field(NtsExtensionField.UniqueIdentifier, uid);
        int cookies = h.Association.Cookies;

        Assert.Equal(ReplyReason.Unauthenticated, h.Receive([.. kod, .. other, .. ours], out _));
        Assert.Equal(cookies, h.Association.Cookies);
        Assert.Equal(ReplyReason.NtsNak, h.Receive([.. kod, .. ours], out _));
        Assert.Equal(0, h.Association.Cookies);
    }

    [Fact]
    public void Nts_Nak_DropsTheCookies_AndTheNextPollIsAKeyExchange()
    {
        (Harness h, NtsFixture server) = NtsPair();
        var stranger = new NtsFixture(keyId: 999); // cookies under a key the server does not have
        h.Association.KeyExchanged(server.Aead, server.C2S, server.S2C, Enumerable.Repeat(stranger.Cookie, 8).Select(c => c.ToArray()), h.Now);
        h.Poll();
        Assert.Equal(ReplyReason.NtsNak, h.Receive(NtsAnswer(h, server), out _));
        Assert.Equal(1, h.Association.Counters.NtsNaks);
        Assert.Equal(0, h.Association.Cookies);
        Assert.Equal(PollAction.KeyExchange, h.PollWhenDue());
    }

    [Fact]
    public void Nts_EveryCookieSpentWithoutAnswer_LeadsToAKeyExchange()
    {
        (Harness h, _) = NtsPair();
        for (int i = 0; i < NtpAssociation.CookiePool; i++)
        {
            Assert.Equal(PollAction.Send, h.PollWhenDue());
            h.Now += 1 * Second; // lost
            h.Poll();
        }
        Assert.Equal(PollAction.KeyExchange, h.PollWhenDue());
    }

    [Fact]
    public void Nts_KeyExchangeFailure_ShowsAndBacksOff()
    {
        var h = new Harness(new AssociationOptions { MinPoll = 4, MaxPoll = 6, Nts = true });
        Assert.Equal(PollAction.KeyExchange, h.Poll());
        h.Association.Failed(h.Now, AssociationFailure.KeyExchange);
        Assert.Equal(SourceState.KeyExchangeFailed, h.Association.State);
        Assert.InRange(h.Association.WakeAt - h.Now, 2 * Second * 15 / 16, 2 * Second * 17 / 16);
        Assert.Equal(PollAction.Wait, h.Poll());
        Assert.Equal(PollAction.KeyExchange, h.PollWhenDue());
    }

    private static Gen<byte[]> Mutated(byte[] answer) => Mutations.Of([answer], flips: 6, shrink: 50, grow: 30, maxLength: 1400);

    [Fact]
    public void Fuzz_RandomAndMutatedAnswers_NeverThrow_AndASampleNeedsOurOriginModeAndVersion()
    {
        var h = new Harness();
        h.Poll();
        NtpHeader request = h.RequestHeader;
        byte[] answer = h.Answer();
        Gen.OneOf(Gen.Byte.Array[0, 1500], Mutated(answer)).Sample(datagram =>
        {
            var fresh = new Harness();
            fresh.Poll();
            Assert.Equal(request.Transmit, fresh.RequestHeader.Transmit); // same randomness, same request
            ReplyReason reason = fresh.Association.Receive(datagram, fresh.Realtime, fresh.Now, out _);
            Assert.True(Enum.IsDefined(reason));
            if (reason == ReplyReason.Sample)
            {
                NtpHeader header = NtpHeader.Read(datagram);
                Assert.Equal(request.Transmit, header.Origin);
                Assert.Equal(NtpMode.Server, header.Mode);
                Assert.InRange(header.Version, 3, 4);
            }
        }, iter: 20_000);
    }

    [Fact]
    public void Fuzz_MutatedNtsAnswers_NeverThrow_AndOnlyTheGenuineOneIsASample()
    {
        (Harness h, NtsFixture server) = NtsPair();
        h.Poll();
        byte[] request = h.Request[..h.Length];
        byte[] answer = NtsAnswer(h, server);
        Mutated(answer).Sample(datagram =>
        {
            (Harness fresh, _) = NtsPair();
            fresh.Poll();
            Assert.Equal(request, fresh.Request[..fresh.Length]);
            ReplyReason reason = fresh.Association.Receive(datagram, fresh.Realtime, fresh.Now, out _);
            Assert.True(Enum.IsDefined(reason));
            // Every octet of an NTS answer is under its authenticator (RFC 8915 §5.6): any change is refused.
            Assert.True(reason != ReplyReason.Sample || datagram.AsSpan().SequenceEqual(answer), $"{reason} for a changed answer");
        }, iter: 5_000);
    }
}
