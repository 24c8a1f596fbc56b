using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using CsCheck;
using static Appliance.Protocol.Tests.NtsKeMessages;

namespace Appliance.Protocol.Tests;

/// <summary>The NTS-KE client machine (RFC 8915 §4) over record sequences, without sockets or TLS.</summary>
public class NtsKeClientSessionTests
{
    private static readonly byte[] s_cookie = Enumerable.Range(0, 104).Select(i => (byte)i).ToArray();

    private static KeRecord NextProtocol => (true, NtsKeRecordType.NextProtocol, U16(0));

    private static KeRecord Aead15 => (true, NtsKeRecordType.AeadAlgorithm, U16(15));

    private static KeRecord Cookie => (false, NtsKeRecordType.NewCookie, s_cookie);

    /// <summary>A server's answer: NTPv4, AEAD 15, Server, Port, two cookies, End of Message.</summary>
    private static readonly byte[] s_response = Records(NextProtocol, Aead15,
        (true, NtsKeRecordType.Server, "ntp.example"u8.ToArray()), (true, NtsKeRecordType.Port, U16(4123)), Cookie, Cookie, End);

    private static NtsKeClientSession Run(IEnumerable<byte[]> pieces, AeadAlgorithm[]? offer = null, int maxResponse = NtsKeClientSession.DefaultMaxResponse)
    {
        var session = new NtsKeClientSession(offer ?? [AeadAlgorithm.AesSivCmac256], maxResponse);
        foreach (byte[] piece in pieces)
        {
            if (session.Receive(piece) != NtsKeClientStep.NeedBytes)
            {
                return session;
            }
        }
        session.Close();
        return session;
    }

    private static NtsKeClientSession Run(byte[] response, AeadAlgorithm[]? offer = null) => Run([response], offer);

    [Fact]
    public void Request_IsNtpV4AndTheAeadsOffered_InOrder_AllCritical()
    {
        var session = new NtsKeClientSession([AeadAlgorithm.AesSivCmac512, AeadAlgorithm.AesSivCmac256]);
        var request = new byte[session.RequestLength];
        Assert.Equal(request.Length, session.WriteRequest(request));
        Assert.Equal<KeRecord>([NextProtocol, (true, NtsKeRecordType.AeadAlgorithm, U16(17, 15)), End], Read(request));
    }

    [Fact]
    public void GoodResponse_IsDone_OnlyWhenTheServerCloses_WithAeadCookiesServerAndPort()
    {
        var session = new NtsKeClientSession([AeadAlgorithm.AesSivCmac256]);
        Assert.Equal(NtsKeClientStep.NeedBytes, session.Receive(s_response));
        Assert.Equal(NtsKeClientStep.Done, session.Close());
        Assert.Equal(NtsKeClientReason.Ok, session.Reason);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, session.Aead);
        Assert.Equal([s_cookie, s_cookie], session.Cookies);
        Assert.Equal("ntp.example", session.Server);
        Assert.Equal((ushort)4123, session.Port);
        Assert.Null(session.ServerError);
    }

    [Fact]
    public void AgainstTheServerMachine_TheExchangeGivesEightCookiesThatOpenToTheKeysBothEndsExport()
    {
        var ring = new CookieKeyRing(new CookieKey(9, new byte[32]), []);
        var client = new NtsKeClientSession([AeadAlgorithm.AesSivCmac512, AeadAlgorithm.AesSivCmac256]);
        var server = new NtsKeServerSession(new NtsKeServerOptions(1024, "192.0.2.1", 11123), ring);
        var request = new byte[client.RequestLength];
        client.WriteRequest(request);
        Assert.Equal(NtsKeServerStep.NeedKeys, server.Receive(request));
        byte[] c2s = Enumerable.Range(1, 64).Select(i => (byte)i).ToArray(), s2c = Enumerable.Range(101, 64).Select(i => (byte)i).ToArray();
        Assert.Equal(NtsKeServerStep.SendThenClose, server.SupplyKeys(c2s, s2c, new byte[NtsKeServerSession.RandomLength]));

        Assert.Equal(NtsKeClientStep.NeedBytes, client.Receive(server.Response.Span));
        Assert.Equal(NtsKeClientStep.Done, client.Close());
        Assert.Equal(AeadAlgorithm.AesSivCmac512, client.Aead);
        Assert.Equal("192.0.2.1", client.Server);
        Assert.Equal((ushort)11123, client.Port);
        Assert.Equal(8, client.Cookies.Count);
        Assert.All(client.Cookies, cookie =>
        {
            byte[] openedC2S = new byte[64], openedS2C = new byte[64];
            Assert.Equal(CookieFailure.None, NtsCookie.Open(ring, cookie, openedC2S, openedS2C, out AeadAlgorithm aead));
            Assert.Equal(AeadAlgorithm.AesSivCmac512, aead);
            Assert.Equal(c2s, openedC2S);
            Assert.Equal(s2c, openedS2C);
        });
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OfferingAead30_SendsTheCompliantContextRecord_AndBothEndsAgreeOnTheContext(bool serverEnables30)
    {
        var client = new NtsKeClientSession([AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac256]);
        var request = new byte[client.RequestLength];
        Assert.Equal(request.Length, client.WriteRequest(request));
        Assert.Contains(new KeRecord(false, NtsKeRecordType.CompliantAes128GcmSivExport, []), Read(request));
        var server = new NtsKeServerSession(new NtsKeServerOptions(1024, aeads: serverEnables30 ? null : [AeadAlgorithm.AesSivCmac256]),
            new CookieKeyRing(new CookieKey(9, new byte[32]), []));
        Assert.Equal(NtsKeServerStep.NeedKeys, server.Receive(request));
        int n = AeadAlgorithms.KeyLength(server.Aead!.Value);
        server.SupplyKeys(new byte[n], new byte[n], new byte[NtsKeServerSession.RandomLength]);

        client.Receive(server.Response.Span);
        Assert.Equal(NtsKeClientStep.Done, client.Close());
        Assert.Equal(server.Aead, client.Aead);
        Assert.Equal(serverEnables30 ? AeadAlgorithm.Aes128GcmSiv : AeadAlgorithm.AesSivCmac256, client.ExporterAead);
        Assert.Equal(server.ExporterAead, client.ExporterAead);
    }

    [Fact]
    public void Aead30WithoutTheEcho_UsesTheContextOf15_AsChronyDoes_AndAnEchoWithABodyIsMalformed()
    {
        AeadAlgorithm[] offer = [AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac256];
        KeRecord aead30 = (true, NtsKeRecordType.AeadAlgorithm, U16(30));
        KeRecord cookie72 = (false, NtsKeRecordType.NewCookie, new byte[72]);

        NtsKeClientSession noEcho = Run(Records(NextProtocol, aead30, cookie72, End), offer);
        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, noEcho.Aead);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, noEcho.ExporterAead);

        NtsKeClientSession echo = Run(Records(NextProtocol, aead30, (false, NtsKeRecordType.CompliantAes128GcmSivExport, []), cookie72, End), offer);
        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, echo.ExporterAead);

        Assert.Equal(NtsKeClientReason.Malformed,
            Run(Records(NextProtocol, aead30, (false, NtsKeRecordType.CompliantAes128GcmSivExport, [1]), cookie72, End), offer).Reason);
        // Not offering 30, the client sends no such record and an echo of it means nothing.
        var plain = new NtsKeClientSession([AeadAlgorithm.AesSivCmac256]);
        var request = new byte[plain.RequestLength];
        plain.WriteRequest(request);
        Assert.DoesNotContain(Read(request), r => r.Type == NtsKeRecordType.CompliantAes128GcmSivExport);
    }

    [Fact]
    public void EverySplitOfAGoodResponse_GivesTheSameResult_OneOctetAtATimeIncluded()
    {
        static void AssertGood(NtsKeClientSession session)
        {
            Assert.Equal(NtsKeClientReason.Ok, session.Reason);
            Assert.Equal(2, session.Cookies.Count);
            Assert.Equal("ntp.example", session.Server);
            Assert.Equal((ushort)4123, session.Port);
        }
        AssertGood(Run(s_response.Select(b => new[] { b })));
        for (int a = 0; a <= s_response.Length; a++)
        {
            for (int b = a; b <= s_response.Length; b += 7)
            {
                AssertGood(Run([s_response[..a], [], s_response[a..b], s_response[b..]]));
            }
        }
    }

    public static TheoryData<string, byte[], NtsKeClientReason> Failures => new()
    {
        { "server Error record", Records((true, NtsKeRecordType.Error, U16(1)), End), NtsKeClientReason.ServerError },
        { "server Warning record", Records(NextProtocol, (true, NtsKeRecordType.Warning, U16(7)), Aead15, Cookie, End), NtsKeClientReason.ServerWarning },
        { "empty Next Protocol", Records((true, NtsKeRecordType.NextProtocol, []), End), NtsKeClientReason.NoNtpV4 },
        { "another protocol", Records((true, NtsKeRecordType.NextProtocol, U16(0x8001)), End), NtsKeClientReason.NoNtpV4 },
        { "empty AEAD", Records(NextProtocol, (true, NtsKeRecordType.AeadAlgorithm, []), End), NtsKeClientReason.NoCommonAead },
        { "an AEAD not offered", Records(NextProtocol, (true, NtsKeRecordType.AeadAlgorithm, U16(17)), Cookie, End), NtsKeClientReason.UnsupportedAead },
        { "an unknown AEAD", Records(NextProtocol, (true, NtsKeRecordType.AeadAlgorithm, U16(30)), Cookie, End), NtsKeClientReason.UnsupportedAead },
        { "no cookies", Records(NextProtocol, Aead15, End), NtsKeClientReason.NoCookies },
        { "unknown critical record", Records(NextProtocol, Aead15, (true, (NtsKeRecordType)0x4001, [1]), Cookie, End), NtsKeClientReason.UnrecognizedCriticalRecord },
        { "Next Protocol without the critical bit", Records((false, NtsKeRecordType.NextProtocol, U16(0)), Aead15, Cookie, End), NtsKeClientReason.Malformed },
        { "odd-length Next Protocol", Records((true, NtsKeRecordType.NextProtocol, [0, 0, 0]), Aead15, Cookie, End), NtsKeClientReason.Malformed },
        { "duplicate Next Protocol", Records(NextProtocol, NextProtocol, Aead15, Cookie, End), NtsKeClientReason.Malformed },
        { "two AEADs chosen", Records(NextProtocol, (true, NtsKeRecordType.AeadAlgorithm, U16(15, 15)), Cookie, End), NtsKeClientReason.Malformed },
        { "odd-length AEAD", Records(NextProtocol, (true, NtsKeRecordType.AeadAlgorithm, [15]), Cookie, End), NtsKeClientReason.Malformed },
        { "duplicate AEAD", Records(NextProtocol, Aead15, Aead15, Cookie, End), NtsKeClientReason.Malformed },
        { "no Next Protocol", Records(Aead15, Cookie, End), NtsKeClientReason.Malformed },
        { "no AEAD", Records(NextProtocol, Cookie, End), NtsKeClientReason.Malformed },
        { "empty cookie", Records(NextProtocol, Aead15, (false, NtsKeRecordType.NewCookie, []), End), NtsKeClientReason.Malformed },
        { "odd-length Error", Records((true, NtsKeRecordType.Error, [1]), End), NtsKeClientReason.Malformed },
        { "Server with a space", Records(NextProtocol, Aead15, (true, NtsKeRecordType.Server, "ntp example"u8.ToArray()), Cookie, End), NtsKeClientReason.Malformed },
        { "Server not ASCII", Records(NextProtocol, Aead15, (true, NtsKeRecordType.Server, [0xC3, 0xA9]), Cookie, End), NtsKeClientReason.Malformed },
        { "empty Server", Records(NextProtocol, Aead15, (true, NtsKeRecordType.Server, []), Cookie, End), NtsKeClientReason.Malformed },
        { "duplicate Server", Records(NextProtocol, Aead15, (true, NtsKeRecordType.Server, "a"u8.ToArray()), (true, NtsKeRecordType.Server, "b"u8.ToArray()), Cookie, End), NtsKeClientReason.Malformed },
        { "three-octet Port", Records(NextProtocol, Aead15, (true, NtsKeRecordType.Port, [0, 0, 123]), Cookie, End), NtsKeClientReason.Malformed },
        { "duplicate Port", Records(NextProtocol, Aead15, (true, NtsKeRecordType.Port, U16(1)), (true, NtsKeRecordType.Port, U16(1)), Cookie, End), NtsKeClientReason.Malformed },
        { "End of Message with a body", Records(NextProtocol, Aead15, Cookie, (true, NtsKeRecordType.EndOfMessage, [0, 0])), NtsKeClientReason.Malformed },
        { "data after End of Message", [.. s_response, 0], NtsKeClientReason.DataAfterEndOfMessage },
        { "a second message", [.. s_response, .. s_response], NtsKeClientReason.DataAfterEndOfMessage },
        { "nothing", [], NtsKeClientReason.ClosedBeforeEndOfMessage },
        { "truncated record", s_response[..30], NtsKeClientReason.ClosedBeforeEndOfMessage },
        { "no End of Message", s_response[..^4], NtsKeClientReason.ClosedBeforeEndOfMessage },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void BrokenOrRefusingResponse_FailsWithItsReason_HoweverItIsSplit(string what, byte[] response, NtsKeClientReason reason)
    {
        NtsKeClientSession whole = Run(response);
        Assert.True(whole.Step == NtsKeClientStep.Failed, what);
        Assert.Equal(reason, whole.Reason);
        Assert.Equal(reason, Run(response.Select(b => new[] { b })).Reason);
        Assert.Equal(reason, Run(response.Chunk(5)).Reason);
    }

    [Fact]
    public void ServerErrorRecord_GivesItsCode_AndNoAead()
    {
        NtsKeClientSession session = Run(Records((true, NtsKeRecordType.Error, U16(2)), End));
        Assert.Equal(NtsKeErrorCode.InternalServerError, session.ServerError);
        Assert.Null(session.Aead);
    }

    [Fact]
    public void ServerWarningRecord_GivesItsCode()
    {
        Assert.Equal((ushort)7, Run(Records(NextProtocol, (true, NtsKeRecordType.Warning, U16(7)), End)).ServerWarning);
    }

    [Fact]
    public void DataAfterEndOfMessage_InALaterPiece_StillFails()
    {
        var session = new NtsKeClientSession([AeadAlgorithm.AesSivCmac256]);
        Assert.Equal(NtsKeClientStep.NeedBytes, session.Receive(s_response));
        Assert.Equal(NtsKeClientStep.NeedBytes, session.Receive([]));
        Assert.Equal(NtsKeClientStep.Failed, session.Receive([0x80]));
        Assert.Equal(NtsKeClientReason.DataAfterEndOfMessage, session.Reason);
        Assert.Equal(NtsKeClientStep.Failed, session.Close());
    }

    [Fact]
    public void UnknownNonCriticalRecords_AreIgnored()
    {
        NtsKeClientSession session = Run(Records((false, (NtsKeRecordType)0x1234, [1, 2, 3]), NextProtocol, Aead15,
            (false, (NtsKeRecordType)9, []), Cookie, End));
        Assert.Equal(NtsKeClientReason.Ok, session.Reason);
        Assert.Single(session.Cookies);
        Assert.Null(session.Server);
        Assert.Null(session.Port);
    }

    [Theory]
    [InlineData("192.0.2.1")]
    [InlineData("2001:db8::1")]
    [InlineData("xn--bcher-kva.example")]
    public void ServerRecord_IsParsed_AsTheHostItNames(string host)
    {
        NtsKeClientSession session = Run(Records(NextProtocol, Aead15, (true, NtsKeRecordType.Server, System.Text.Encoding.ASCII.GetBytes(host)),
            (false, NtsKeRecordType.Port, U16(123)), Cookie, End));
        Assert.Equal(NtsKeClientReason.Ok, session.Reason);
        Assert.Equal(host, session.Server);
        Assert.Equal((ushort)123, session.Port);
    }

    [Fact]
    public void ResponseWithoutEndOfMessageWithinTheLimit_IsOversized_AResponseOfExactlyTheLimitIsNot()
    {
        byte[] response = Records(NextProtocol, Aead15, Cookie, Cookie, Cookie, End);
        Assert.Equal(NtsKeClientReason.Ok, Run([response], maxResponse: response.Length).Reason);
        Assert.Equal(NtsKeClientReason.Ok, Run(response.Select(b => new[] { b }), maxResponse: response.Length).Reason);
        Assert.Equal(NtsKeClientReason.Oversized, Run([response], maxResponse: response.Length - 1).Reason);
        Assert.Equal(NtsKeClientReason.Oversized, Run(response.Select(b => new[] { b }), maxResponse: response.Length - 1).Reason);
        // Past the limit with End of Message inside it, what follows is data after the message, not size.
        Assert.Equal(NtsKeClientReason.DataAfterEndOfMessage, Run([[.. response, 1]], maxResponse: response.Length).Reason);
    }

    [Fact]
    public void DefaultLimit_TakesA64KiBResponse_AndNotAnOctetMore()
    {
        byte[] head = Records(NextProtocol, Aead15, Cookie);
        int filler = NtsKeClientSession.DefaultMaxResponse - head.Length - (2 * NtsKeRecords.HeaderLength);
        byte[] fits = [.. head, .. Records((false, (NtsKeRecordType)0x1234, new byte[filler])), .. Records(End)];
        byte[] over = [.. head, .. Records((false, (NtsKeRecordType)0x1234, new byte[filler + 1])), .. Records(End)];
        Assert.Equal(NtsKeClientSession.DefaultMaxResponse, fits.Length);
        Assert.Equal(NtsKeClientReason.Ok, Run(fits).Reason);
        Assert.Equal(NtsKeClientReason.Oversized, Run(over).Reason);
        Assert.Equal(NtsKeClientReason.Oversized, Run(over.Chunk(1000)).Reason);
    }

    [Fact]
    public void Offer_MustBeOneOrMoreSupportedAeads()
    {
        Assert.Throws<ArgumentException>(() => new NtsKeClientSession([]));
        Assert.Throws<ArgumentException>(() => new NtsKeClientSession([(AeadAlgorithm)31]));
        Assert.Throws<InvalidOperationException>(() => new NtsKeClientSession([AeadAlgorithm.AesSivCmac256]).Reason);
    }

    [Fact]
    public void Fuzz_RandomAndMutatedRecordSequences_NeverThrow_KeepNoMoreThanTheyGot_AndReachEveryOutcome()
    {
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<NtsKeClientReason, bool>();
        Gen.Select(Inputs(s_response, Records(NextProtocol, (true, NtsKeRecordType.AeadAlgorithm, U16(17)), Cookie, End)), Splits)
            .Sample((response, splits) =>
            {
                NtsKeClientReason reason = NtsKeClientSession.Fuzz(response, splits, out int cookieOctets);
                Assert.True(Enum.IsDefined(reason), $"{reason}");
                Assert.InRange(cookieOctets, 0, response.Length);
                seen[reason] = true;
            }, iter: 100_000);
        Assert.Equal(Enum.GetValues<NtsKeClientReason>(), seen.Keys.Order());
    }

    [Fact]
    public void Fuzz_TheOutcomeOfAResponse_DoesNotDependOnHowItIsSplit() =>
        Gen.Select(Inputs(s_response), Splits).Sample((response, splits) =>
        {
            NtsKeClientReason whole = NtsKeClientSession.Fuzz(response, [], out int wholeCookies);
            NtsKeClientReason split = NtsKeClientSession.Fuzz(response, splits, out int splitCookies);
            Assert.Equal(whole, split);
            Assert.Equal(wholeCookies, splitCookies);
        }, iter: 50_000);
}
