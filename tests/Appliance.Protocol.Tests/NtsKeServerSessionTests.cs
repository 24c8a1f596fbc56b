using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Testing;
using CsCheck;
using static Appliance.Protocol.Tests.NtsKeMessages;

namespace Appliance.Protocol.Tests;

/// <summary>The NTS-KE server machine (RFC 8915 §4) over record sequences, without sockets or TLS.</summary>
public class NtsKeServerSessionTests
{
    /// <summary>AEAD 30 off: the rules of §4 are tested on AEAD 15 (chrony's request below offers "30 15"); AEAD 30's tests enable it.</summary>
    private static readonly NtsKeServerOptions s_options = new(1024, "ntp.example", 11123, [AeadAlgorithm.AesSivCmac256, AeadAlgorithm.AesSivCmac512]);

    private static readonly NtsKeServerOptions s_everyAead = new(1024, "ntp.example", 11123);

    private static KeRecord Compliant => (false, NtsKeRecordType.CompliantAes128GcmSivExport, []);

    private static readonly CookieKeyRing s_ring = new(new CookieKey(42, Enumerable.Range(7, 32).Select(i => (byte)i).ToArray()), []);

    /// <summary>What chronyd sends: NTPv4, AEAD 30 (unsupported here) then 15, End of Message.</summary>
    private static readonly byte[] s_chronyRequest = Records(
        (true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(30, 15)), End);

    /// <summary>What chrony 4.6.1 and later send: "30 15" and the compliant-context record.</summary>
    private static readonly byte[] s_chrony461Request = Records(
        (true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(30, 15)), Compliant, End);

    private static byte[] Keys(int length, int first) => Enumerable.Range(first, length).Select(i => (byte)i).ToArray();

    private static readonly byte[] s_random = Keys(NtsKeServerSession.RandomLength, 50);

    /// <summary>Runs a session over <paramref name="pieces"/>, supplying keys (1.. and 101..) when asked, then end of stream.</summary>
    private static NtsKeServerSession Run(IEnumerable<byte[]> pieces, NtsKeServerOptions? options = null, CookieKeyRing? ring = null, bool noRing = false)
    {
        var session = new NtsKeServerSession(options ?? s_options, noRing ? null : ring ?? s_ring);
        foreach (byte[] piece in pieces)
        {
            if (session.Receive(piece) != NtsKeServerStep.NeedBytes)
            {
                break;
            }
        }
        if (session.Step == NtsKeServerStep.NeedBytes)
        {
            session.Close();
        }
        if (session.Step == NtsKeServerStep.NeedKeys)
        {
            int n = AeadAlgorithms.KeyLength(session.Aead!.Value);
            Assert.Equal(NtsKeServerStep.SendThenClose, session.SupplyKeys(Keys(n, 1), Keys(n, 101), s_random));
        }
        return session;
    }

    private static NtsKeServerSession Run(byte[] request, NtsKeServerOptions? options = null) => Run([request], options);

    [Fact]
    public void GoodRequest_AsksForAead15Keys_ThenAnswersNtpV4Aead15ServerPortAndEightCookies()
    {
        var session = new NtsKeServerSession(s_options, s_ring);
        Assert.Equal(NtsKeServerStep.NeedKeys, session.Receive(s_chronyRequest));
        Assert.Equal(AeadAlgorithm.AesSivCmac256, session.Aead);
        Assert.Equal(NtsKeServerStep.SendThenClose, session.SupplyKeys(Keys(32, 1), Keys(32, 101), s_random));

        Assert.Equal(NtsKeServerReason.Ok, session.Reason);
        Assert.Equal(8, session.CookiesIssued);
        var records = Read(session.Response.Span);
        Assert.Equal<KeRecord>((true, NtsKeRecordType.NextProtocol, U16(0)), records[0]);
        Assert.Equal<KeRecord>((true, NtsKeRecordType.AeadAlgorithm, U16(15)), records[1]);
        Assert.Equal<KeRecord>((true, NtsKeRecordType.Server, "ntp.example"u8.ToArray()), records[2]);
        Assert.Equal<KeRecord>((true, NtsKeRecordType.Port, U16(11123)), records[3]);
        Assert.Equal(8, records.Count(r => r is (false, NtsKeRecordType.NewCookie, { Length: 104 })));
        Assert.Equal(End, records[^1]);
        Assert.Equal(13, records.Count);
    }

    [Theory]
    [InlineData(AeadAlgorithm.AesSivCmac256)]
    [InlineData(AeadAlgorithm.AesSivCmac512)]
    [InlineData(AeadAlgorithm.Aes128GcmSiv)]
    public void EightCookies_OpenWithTheRing_ToTheKeysSupplied_UnderTheCurrentKey_WithTheNoncesPassedIn(AeadAlgorithm aead)
    {
        var ring = new CookieKeyRing(new CookieKey(43, new byte[32]), [new CookieKey(42, Enumerable.Range(7, 32).Select(i => (byte)i).ToArray())]);
        var session = Run([Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16((ushort)aead)), End)], s_everyAead, ring);

        Assert.Equal(NtsKeServerReason.Ok, session.Reason);
        int keyLength = AeadAlgorithms.KeyLength(aead);
        byte[][] cookies = Read(session.Response.Span).Where(r => r.Type == NtsKeRecordType.NewCookie).Select(r => r.Body).ToArray();
        Assert.Equal(8, cookies.Length);
        for (int i = 0; i < cookies.Length; i++)
        {
            byte[] c2s = new byte[64], s2c = new byte[64];
            Assert.Equal(CookieFailure.None, NtsCookie.Open(ring, cookies[i], c2s, s2c, out AeadAlgorithm opened));
            Assert.Equal(aead, opened);
            Assert.Equal(Keys(keyLength, 1), c2s[..keyLength]);
            Assert.Equal(Keys(keyLength, 101), s2c[..keyLength]);
            Assert.Equal([0, 0, 0, 43], cookies[i][..4]); // sealed under the ring's current key
            Assert.Equal(s_random.AsSpan(i * NtsCookie.NonceLength, NtsCookie.NonceLength), cookies[i].AsSpan(4, NtsCookie.NonceLength));
        }
    }

    [Fact]
    public void ClientPreference_TheFirstEnabledAeadIsChosen()
    {
        Assert.Equal(AeadAlgorithm.AesSivCmac512,
            Run(Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(31, 17, 15)), End)).Aead);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, Run(s_chronyRequest).Aead); // 30 not enabled in s_options
        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, Run(s_chronyRequest, s_everyAead).Aead);
    }

    [Fact]
    public void Chrony44To460_GetAead30_WithKeysFromTheContextOfAead15_AndNoEcho()
    {
        // chrony 4.4 to 4.6.0 offer "30 15" and put 15 in the exporter context of AEAD 30's keys; they
        // cannot fall back, and this server drops what does not authenticate: the context must match.
        NtsKeServerSession session = Run(s_chronyRequest, s_everyAead);

        Assert.Equal(NtsKeServerReason.Ok, session.Reason);
        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, session.Aead);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, session.ExporterAead);
        List<KeRecord> records = Read(session.Response.Span);
        Assert.Equal<KeRecord>((true, NtsKeRecordType.AeadAlgorithm, U16(30)), records[1]);
        Assert.DoesNotContain(records, r => r.Type == NtsKeRecordType.CompliantAes128GcmSivExport);
        Assert.Equal(8, records.Count(r => r is (false, NtsKeRecordType.NewCookie, { Length: 72 })));
    }

    [Fact]
    public void CompliantContextRecord_IsEchoedAfterTheAead_AndTheContextCarries30()
    {
        NtsKeServerSession session = Run(s_chrony461Request, s_everyAead);

        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, session.Aead);
        Assert.Equal(AeadAlgorithm.Aes128GcmSiv, session.ExporterAead);
        List<KeRecord> records = Read(session.Response.Span);
        Assert.Equal<KeRecord>((true, NtsKeRecordType.AeadAlgorithm, U16(30)), records[1]);
        Assert.Equal(Compliant, records[2]); // non-critical and empty, as chrony sends it
    }

    [Fact]
    public void CompliantContextRecord_WhenAnotherAeadIsChosen_IsNotEchoed_AndChangesNothing()
    {
        NtsKeServerSession session = Run(s_chrony461Request); // 30 not enabled: 15

        Assert.Equal(AeadAlgorithm.AesSivCmac256, session.ExporterAead);
        Assert.DoesNotContain(Read(session.Response.Span), r => r.Type == NtsKeRecordType.CompliantAes128GcmSivExport);
        Assert.Equal(Run(s_chronyRequest).Response.ToArray(), session.Response.ToArray());
    }

    [Fact]
    public void CompliantContextRecord_WithABody_IsABadRequest()
    {
        NtsKeServerSession session = Run(Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(30, 15)),
            (false, NtsKeRecordType.CompliantAes128GcmSivExport, [0]), End), s_everyAead);

        Assert.Equal(NtsKeServerReason.BadRequest, session.Reason);
    }

    [Fact]
    public void Options_RefuseAnEmptyOrUnknownAeadList()
    {
        Assert.Throws<ArgumentException>(() => new NtsKeServerOptions(1024, aeads: []));
        Assert.Throws<ArgumentException>(() => new NtsKeServerOptions(1024, aeads: [(AeadAlgorithm)31]));
    }

    [Fact]
    public void EverySplitOfAGoodRequest_GivesTheSameAnswer_OneOctetAtATimeIncluded()
    {
        byte[] expected = Run(s_chronyRequest).Response.ToArray();
        Assert.Equal(NtsKeServerReason.Ok, Run(s_chronyRequest).Reason);
        Assert.Equal(expected, Run(s_chronyRequest.Select(b => new[] { b })).Response.ToArray());
        for (int a = 0; a <= s_chronyRequest.Length; a++)
        {
            for (int b = a; b <= s_chronyRequest.Length; b++)
            {
                NtsKeServerSession session = Run([s_chronyRequest[..a], s_chronyRequest[a..b], [], s_chronyRequest[b..]]);
                Assert.Equal(NtsKeServerReason.Ok, session.Reason);
                Assert.Equal(expected, session.Response.ToArray());
            }
        }
    }

    [Fact]
    public void PartialRequest_NeedsMoreBytes_AndAnswersNothingYet()
    {
        for (int n = 0; n < s_chronyRequest.Length; n++)
        {
            var session = new NtsKeServerSession(s_options, s_ring);
            Assert.Equal(NtsKeServerStep.NeedBytes, session.Receive(s_chronyRequest.AsSpan(0, n)));
            Assert.True(session.Response.IsEmpty);
            Assert.Throws<InvalidOperationException>(() => session.Reason);
        }
    }

    public static TheoryData<string, byte[][], NtsKeServerReason, NtsKeErrorCode> Refused => new()
    {
        { "missing Next Protocol", [Records((true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "NTPv4 without AEAD", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "duplicate Next Protocol", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "duplicate AEAD", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "odd-length Next Protocol", [Records((true, NtsKeRecordType.NextProtocol, [0, 0, 1]), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "odd-length AEAD", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, [0, 15, 0]), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "empty Next Protocol", [Records((true, NtsKeRecordType.NextProtocol, []), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "empty AEAD", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, []), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "Next Protocol without the critical bit", [Records((false, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "Error record from a client", [Records((true, NtsKeRecordType.Error, U16(1)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "Warning record from a client", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.Warning, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "End of Message with a body", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), (true, NtsKeRecordType.EndOfMessage, [0]))], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "data after End of Message", [[.. s_chronyRequest, 0x80, 0]], NtsKeServerReason.BadRequest, NtsKeErrorCode.BadRequest },
        { "unknown critical record", [Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, (NtsKeRecordType)0x4000, [1]), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End)], NtsKeServerReason.UnrecognizedCritical, NtsKeErrorCode.UnrecognizedCriticalRecord },
        { "unknown critical record before the rest", [Records((true, (NtsKeRecordType)8, []), (true, NtsKeRecordType.NextProtocol, U16(0)), End)], NtsKeServerReason.UnrecognizedCritical, NtsKeErrorCode.UnrecognizedCriticalRecord },
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public void MalformedRequest_IsAnsweredWithAnErrorRecordAndEndOfMessage(string what, byte[][] pieces, NtsKeServerReason reason, NtsKeErrorCode code)
    {
        NtsKeServerSession session = Run(pieces);
        Assert.True(session.Step == NtsKeServerStep.SendThenClose, what);
        Assert.Equal(reason, session.Reason);
        Assert.Equal<KeRecord>([(true, NtsKeRecordType.Error, U16((ushort)code)), End], Read(session.Response.Span));
        Assert.Equal(0, session.CookiesIssued);
    }

    [Fact]
    public void ErrorIsFoundWhereTheRecordEnds_HoweverTheRequestIsSplit()
    {
        byte[] request = Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.NextProtocol, U16(0)));
        for (int n = 1; n <= request.Length; n++)
        {
            var session = new NtsKeServerSession(s_options, s_ring);
            NtsKeServerStep step = session.Receive(request.AsSpan(0, n));
            // The second Next Protocol is whole only with its last octet: only then is the request refused.
            Assert.Equal(n == request.Length ? NtsKeServerStep.SendThenClose : NtsKeServerStep.NeedBytes, step);
        }
    }

    public static TheoryData<string, byte[]> Unfinished => new()
    {
        { "nothing", [] },
        { "truncated record", s_chronyRequest[..9] },
        { "truncated header", s_chronyRequest[..2] },
        { "no End of Message", s_chronyRequest[..^4] },
    };

    [Theory]
    [MemberData(nameof(Unfinished))]
    public void ClientClosingBeforeEndOfMessage_EndsWithNothingSent(string what, byte[] request)
    {
        NtsKeServerSession session = Run([request]);
        Assert.True(session.Step == NtsKeServerStep.Closed, what);
        Assert.Equal(NtsKeServerReason.ClientClosed, session.Reason);
        Assert.True(session.Response.IsEmpty);
    }

    [Fact]
    public void UnknownNonCriticalRecords_AndClientServerPortCookie_AreIgnored()
    {
        byte[] request = Records((true, NtsKeRecordType.NextProtocol, U16(0)), (false, (NtsKeRecordType)0x1234, [1, 2, 3]),
            (true, NtsKeRecordType.Server, "other.example"u8.ToArray()), (true, NtsKeRecordType.Port, U16(9)),
            (false, NtsKeRecordType.NewCookie, [1, 2, 3, 4]), (true, NtsKeRecordType.AeadAlgorithm, U16(15)), End);
        NtsKeServerSession session = Run(request);
        Assert.Equal(NtsKeServerReason.Ok, session.Reason);
        Assert.Equal(Run(s_chronyRequest).Response.ToArray(), session.Response.ToArray());
    }

    [Fact]
    public void NoNtpV4Offered_GetsAnEmptyNextProtocolRecord_NoKeysAndNoCookies()
    {
        NtsKeServerSession session = Run(Records((true, NtsKeRecordType.NextProtocol, U16(1, 0x8000)), End));
        Assert.Equal(NtsKeServerReason.NoProtocol, session.Reason);
        Assert.Null(session.Aead);
        Assert.Equal<KeRecord>([(true, NtsKeRecordType.NextProtocol, []), End], Read(session.Response.Span));
    }

    [Fact]
    public void NoSupportedAeadOffered_GetsNtpV4AndAnEmptyAeadRecord_NoKeysAndNoCookies()
    {
        var session = new NtsKeServerSession(s_options, s_ring);
        Assert.Equal(NtsKeServerStep.SendThenClose, session.Receive(Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(31, 1)), End)));
        Assert.Equal(NtsKeServerReason.NoAead, session.Reason);
        Assert.Equal<KeRecord>([(true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, []), End], Read(session.Response.Span));
    }

    [Fact]
    public void NoKeyRing_GetsInternalServerError()
    {
        NtsKeServerSession session = Run([s_chronyRequest], noRing: true);
        Assert.Equal(NtsKeServerReason.NoKeys, session.Reason);
        Assert.Equal<KeRecord>([(true, NtsKeRecordType.Error, U16((ushort)NtsKeErrorCode.InternalServerError)), End], Read(session.Response.Span));
    }

    [Fact]
    public void NoServerOrPortConfigured_SendsNeitherRecord()
    {
        NtsKeServerSession session = Run(s_chronyRequest, new NtsKeServerOptions(1024));
        var records = Read(session.Response.Span);
        Assert.DoesNotContain(records, r => r.Type is NtsKeRecordType.Server or NtsKeRecordType.Port);
        Assert.Equal(11, records.Count);
    }

    /// <summary>
    /// Security review (issue #14): the response was once written into 256 octets plus the cookies,
    /// so a Server name longer than about 198 characters made every exchange throw. The machine sizes
    /// its answer from the records it writes: 253 characters is the longest DNS name (RFC 1035
    /// §2.3.4, the longest <c>validate</c> takes), 65535 the longest a record body can carry (RFC 8915 §4).
    /// </summary>
    [Theory]
    [InlineData(253)]
    [InlineData(ushort.MaxValue)]
    public void LongServerName_IsSentWhole_BeforeEightCookies(int length)
    {
        string name = string.Join('.', Enumerable.Range(0, (length / 64) + 1).Select(_ => new string('a', 63)))[..length];
        NtsKeServerSession session = Run(s_chronyRequest, new NtsKeServerOptions(1024, name, 11123));

        Assert.Equal(NtsKeServerReason.Ok, session.Reason);
        var records = Read(session.Response.Span);
        Assert.Equal<KeRecord>((true, NtsKeRecordType.Server, System.Text.Encoding.ASCII.GetBytes(name)), records[2]);
        Assert.Equal(8, records.Count(r => r.Type == NtsKeRecordType.NewCookie));
        Assert.Equal(End, records[^1]);
        Assert.Throws<ArgumentException>(() => new NtsKeServerOptions(1024, new string('a', ushort.MaxValue + 1)));
    }

    [Fact]
    public void RequestWithoutEndOfMessageWithinTheLimit_IsRefusedAsTooLarge_ARequestOfExactlyTheLimitIsNot()
    {
        byte[] padding = new byte[64 - s_chronyRequest.Length - NtsKeRecords.HeaderLength];
        byte[] exact = Records((true, NtsKeRecordType.NextProtocol, U16(0)), (false, (NtsKeRecordType)0x1234, padding),
            (true, NtsKeRecordType.AeadAlgorithm, U16(30, 15)), End);
        Assert.Equal(64, exact.Length);
        var limit = new NtsKeServerOptions(64);
        Assert.Equal(NtsKeServerReason.Ok, Run(exact, limit).Reason);
        Assert.Equal(NtsKeServerReason.Ok, Run(exact.Select(b => new[] { b }), limit).Reason);

        byte[] over = Records((true, NtsKeRecordType.NextProtocol, U16(0)), (false, (NtsKeRecordType)0x1234, [.. padding, 0]),
            (true, NtsKeRecordType.AeadAlgorithm, U16(30, 15)), End);
        IEnumerable<byte[]>[] splits = [[over], over.Select(b => new[] { b })];
        foreach (IEnumerable<byte[]> pieces in splits)
        {
            NtsKeServerSession session = Run(pieces, limit);
            Assert.Equal(NtsKeServerReason.RequestTooLarge, session.Reason);
            Assert.Equal<KeRecord>([(true, NtsKeRecordType.Error, U16((ushort)NtsKeErrorCode.BadRequest)), End], Read(session.Response.Span));
        }
        // A record that claims more than the limit is refused as soon as the limit is reached, not when it ends.
        var big = new NtsKeServerSession(limit, s_ring);
        Assert.Equal(NtsKeServerStep.NeedBytes, big.Receive(Records((false, (NtsKeRecordType)0x1234, new byte[150])).AsSpan(0, 63)));
        Assert.Equal(NtsKeServerStep.SendThenClose, big.Receive([0]));
        Assert.Equal(NtsKeServerReason.RequestTooLarge, big.Reason);
    }

    [Fact]
    public void OctetsAfterTheAnswer_AreNotRead_AndChangeNothing()
    {
        var session = new NtsKeServerSession(s_options, s_ring);
        session.Receive(Records((true, NtsKeRecordType.Error, U16(1))));
        byte[] response = session.Response.ToArray();
        Assert.Equal(NtsKeServerStep.SendThenClose, session.Receive(s_chronyRequest));
        Assert.Equal(NtsKeServerStep.SendThenClose, session.Close());
        Assert.Equal(NtsKeServerReason.BadRequest, session.Reason);
        Assert.Equal(response, session.Response.ToArray());
    }

    [Fact]
    public void SupplyKeys_OutOfTurnOrWithWrongLengths_IsRefusedAsMisuse()
    {
        var session = new NtsKeServerSession(s_options, s_ring);
        Assert.Throws<InvalidOperationException>(() => session.SupplyKeys(new byte[32], new byte[32], s_random));
        session.Receive(s_chronyRequest);
        Assert.Throws<ArgumentException>(() => session.SupplyKeys(new byte[64], new byte[64], s_random));
        Assert.Throws<ArgumentException>(() => session.SupplyKeys(new byte[32], new byte[32], new byte[16]));
        Assert.Equal(NtsKeServerStep.NeedKeys, session.Step);
    }

    /// <summary>The label pairs today's dashboards and tests read: they must not drift.</summary>
    private static readonly (NtsKeServerReason, string, string)[] s_labels =
    [
        (NtsKeServerReason.Ok, "ok", "ok"),
        (NtsKeServerReason.NoProtocol, "error", "no_protocol"),
        (NtsKeServerReason.NoAead, "error", "no_aead"),
        (NtsKeServerReason.BadRequest, "error", "bad_request"),
        (NtsKeServerReason.UnrecognizedCritical, "error", "unrecognized_critical"),
        (NtsKeServerReason.RequestTooLarge, "error", "request_too_large"),
        (NtsKeServerReason.NoKeys, "error", "no_keys"),
        (NtsKeServerReason.ClientClosed, "error", "client_closed"),
        (NtsKeServerReason.MaxConnections, "closed", "max_connections"),
        (NtsKeServerReason.ClientRate, "closed", "client_rate"),
        (NtsKeServerReason.HandshakeTimeout, "closed", "handshake_timeout"),
        (NtsKeServerReason.Tls, "closed", "tls"),
        (NtsKeServerReason.Alpn, "closed", "alpn"),
        (NtsKeServerReason.IdleTimeout, "closed", "idle_timeout"),
        (NtsKeServerReason.Shutdown, "closed", "shutdown"),
        (NtsKeServerReason.Internal, "error", "internal"),
        (NtsKeServerReason.Denied, "closed", "denied"),
        (NtsKeServerReason.ClientConcurrency, "closed", "client_concurrency"),
        (NtsKeServerReason.Deadline, "closed", "deadline"),
    ];

    private static readonly string[] s_results = ["ok", "error", "closed"];

    [Fact]
    public void OutcomeNames_CoverEveryReason_WithUniqueReasonLabels_AndKeepTodaysLabelPairs()
    {
        NtsKeServerReason[] all = Enum.GetValues<NtsKeServerReason>();
        Assert.Equal(all.Length, NtsKeOutcomeNames.Count);
        Assert.Equal(Enumerable.Range(0, all.Length), all.Select(r => (int)r)); // dense: the table is indexed by value
        Assert.Equal(all.Length, all.Select(NtsKeOutcomeNames.Reason).Distinct().Count());
        Assert.All(all, r => Assert.Contains(NtsKeOutcomeNames.Result(r), s_results));
        Assert.Equal(s_labels, all.Select(r => (r, NtsKeOutcomeNames.Result(r), NtsKeOutcomeNames.Reason(r))));
    }

    [Fact]
    public void Fuzz_RandomAndMutatedRecordSequences_NeverThrow_BoundTheirAnswer_AndReachEveryOutcomeOfTheMachine()
    {
        byte[] eightCookies = Run(s_chronyRequest).Response.ToArray();
        int maxResponse = eightCookies.Length + (8 * (NtsCookie.MaxLength - NtsCookie.Length(AeadAlgorithm.AesSivCmac256)));
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<NtsKeServerReason, bool>();
        Gen.Select(Inputs(s_chronyRequest, Records((true, NtsKeRecordType.NextProtocol, U16(0)), (true, NtsKeRecordType.AeadAlgorithm, U16(17)), End)), Splits)
            .Sample((input, splits) =>
            {
                NtsKeServerReason reason = NtsKeServerSession.Fuzz(input, splits, out int sent);
                Assert.True(Enum.IsDefined(reason), $"{reason}");
                Assert.InRange(sent, 0, maxResponse);
                seen[reason] = true;
            }, iter: 100_000);
        // Every ending a request can cause (the fuzz entry always has a key ring, so never NoKeys), and no other.
        NtsKeServerReason[] machine =
        [
            NtsKeServerReason.Ok, NtsKeServerReason.NoProtocol, NtsKeServerReason.NoAead, NtsKeServerReason.BadRequest,
            NtsKeServerReason.UnrecognizedCritical, NtsKeServerReason.RequestTooLarge, NtsKeServerReason.ClientClosed,
        ];
        Assert.Equal(machine, seen.Keys.Order());
    }

    [Fact]
    public void Fuzz_TheOutcomeOfARequest_DoesNotDependOnHowItIsSplit()
    {
        // Up to the first End of Message: what follows it depends on when it arrives (the answer goes at once).
        Gen.Select(Inputs(s_chronyRequest), Splits).Sample((input, splits) =>
        {
            byte[] request = input[..ProtocolFixtures.EndOfFirstMessage(input)];
            NtsKeServerReason whole = NtsKeServerSession.Fuzz(request, [], out int wholeSent);
            NtsKeServerReason split = NtsKeServerSession.Fuzz(request, splits, out int splitSent);
            Assert.Equal(whole, split);
            Assert.Equal(wholeSent, splitSent);
        }, iter: 50_000);
    }
}
