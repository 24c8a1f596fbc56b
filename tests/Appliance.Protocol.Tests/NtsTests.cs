using System.Buffers.Binary;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Testing;
using CsCheck;

namespace Appliance.Protocol.Tests;

/// <summary>An NTS client's view for tests: keys, a cookie, and request building.</summary>
internal sealed class NtsFixture
{
    public NtsFixture(AeadAlgorithm aead = AeadAlgorithm.AesSivCmac256, uint keyId = 100)
    {
        Aead = aead;
        int n = AeadAlgorithms.KeyLength(aead);
        C2S = Enumerable.Range(1, n).Select(i => (byte)i).ToArray();
        S2C = Enumerable.Range(101, n).Select(i => (byte)i).ToArray();
        Key = new CookieKey(keyId, Enumerable.Range(7, 32).Select(i => (byte)i).ToArray());
        Ring = new CookieKeyRing(Key, []);
        Cookie = new byte[NtsCookie.Length(aead)];
        NtsCookie.Seal(Key, new byte[16], aead, C2S, S2C, Cookie);
        Handler = new NtsPacketHandler(new CookieKeyRingCell(Ring), new CountingRandom());
    }

    public AeadAlgorithm Aead { get; }
    public byte[] C2S { get; }
    public byte[] S2C { get; }
    public CookieKey Key { get; }
    public CookieKeyRing Ring { get; }
    public byte[] Cookie { get; }
    public NtsPacketHandler Handler { get; }
    public byte[] Uid { get; } = Enumerable.Range(200, 32).Select(i => (byte)i).ToArray();

    public byte[] Request(int placeholders = 0, ulong transmit = 0x1122334455667788, byte[]? cookie = null)
    {
        var packet = new byte[2048];
        int n = NtsClientPacket.WriteRequest(packet, transmit, Uid, cookie ?? Cookie, placeholders, new byte[16], AeadAlgorithms.Create(Aead, C2S));
        return packet[..n];
    }

    /// <summary>
    /// One request through the three phases as the worker runs them (a group of one): accept, answer,
    /// and, for a time response, stamp and seal.
    /// </summary>
    public Outcome Respond(byte[] buffer, int length, out int responseLength, ServerState? state = null)
    {
        var policy = default(AllowAllPolicy);
        state ??= Packets.SyncedState();
        Outcome outcome = NtpResponder.Respond(buffer, length, Packets.Context(), state, ref policy, Handler, 0, false, out responseLength);
        if (outcome.Action != ResponseAction.Deferred)
        {
            return outcome;
        }
        var group = default(NtsGroup);
        group.Add(0, buffer);
        Handler.Answer(ref group, state);
        (outcome, responseLength) = Handler.Result(0);
        if (outcome.Action == ResponseAction.Respond)
        {
            NtpResponder.StampTransmit(buffer, NtpTimestamp.FromUnixNanoseconds(Packets.ReceiveUnixNs + 1000));
            Handler.Seal(ref group);
        }
        return outcome;
    }

    /// <summary>Answers and seals (as the worker does), then checks as a client would.</summary>
    public (Outcome Outcome, NtsResponseCheck Check, int Cookies, byte[] Response) Exchange(byte[] request)
    {
        byte[] buffer = [.. request, .. new byte[64]];
        Outcome outcome = Respond(buffer, request.Length, out int length);
        byte[] response = buffer[..length];
        NtsResponseCheck check = length == 0
            ? NtsResponseCheck.Invalid
            : NtsClientPacket.CheckResponse(response, Uid, AeadAlgorithms.Create(Aead, S2C), new byte[2048], out int cookies);
        return (outcome, check, length == 0 ? 0 : CountCookies(response), response);
    }

    private int CountCookies(byte[] response) =>
        NtsClientPacket.CheckResponse(response, Uid, AeadAlgorithms.Create(Aead, S2C), new byte[2048], out int cookies) == NtsResponseCheck.Authentic ? cookies : 0;
}

public class NtsPacketTests
{
    [Theory]
    [InlineData(AeadAlgorithm.AesSivCmac256, 0)]
    [InlineData(AeadAlgorithm.AesSivCmac256, 3)]
    [InlineData(AeadAlgorithm.AesSivCmac512, 1)]
    [InlineData(AeadAlgorithm.Aes128GcmSiv, 0)]
    [InlineData(AeadAlgorithm.Aes128GcmSiv, 3)]
    public void Request_WithCookie_GetsAuthenticResponseWithOneCookiePerCookieAndPlaceholder(AeadAlgorithm aead, int placeholders)
    {
        var nts = new NtsFixture(aead);
        byte[] request = nts.Request(placeholders);
        var (outcome, check, cookies, response) = nts.Exchange(request);

        Assert.Equal(new Outcome(ResponseAction.Respond, ResponseReason.Served, Nts: true), outcome);
        Assert.Equal(NtsResponseCheck.Authentic, check);
        Assert.Equal(1 + placeholders, cookies);
        Assert.True(response.Length <= request.Length, "a response is never larger than its request");
        var header = NtpHeader.Read(response);
        Assert.Equal(NtpMode.Server, header.Mode);
        Assert.Equal(new NtpTimestamp(0x1122334455667788), header.Origin);
    }

    [Fact]
    public void NewCookies_OpenWithTheRingToTheSameKeys()
    {
        var nts = new NtsFixture();
        var (_, _, _, response) = nts.Exchange(nts.Request(1));
        var found = new List<byte[]>();
        NtsClientPacket.CheckResponse(response, nts.Uid, AeadAlgorithms.Create(nts.Aead, nts.S2C), new byte[2048], out _, c => found.Add(c.ToArray()));
        Assert.Equal(2, found.Count);
        Assert.NotEqual(found[0], found[1]); // fresh nonces: unlinkable cookies (RFC 8915 §6)
        foreach (byte[] cookie in found)
        {
            var c2s = new byte[64];
            var s2c = new byte[64];
            Assert.Equal(CookieFailure.None, NtsCookie.Open(nts.Ring, cookie, c2s, s2c, out AeadAlgorithm aead));
            Assert.Equal(nts.C2S, c2s[..32]);
            Assert.Equal(nts.S2C, s2c[..32]);
            Assert.Equal(AeadAlgorithm.AesSivCmac256, aead);
        }
    }

    [Fact]
    public void CookieOfUnknownKey_GetsNtsNakEchoingTheUniqueIdentifier()
    {
        var nts = new NtsFixture();
        var stranger = new CookieKey(999, new byte[32]);
        var cookie = new byte[NtsCookie.Length(AeadAlgorithm.AesSivCmac256)];
        NtsCookie.Seal(stranger, new byte[16], AeadAlgorithm.AesSivCmac256, nts.C2S, nts.S2C, cookie);
        var (outcome, check, _, response) = nts.Exchange(nts.Request(cookie: cookie));

        Assert.Equal(new Outcome(ResponseAction.KissOfDeath, ResponseReason.NtsCookieUnknownKey, Nts: true), outcome);
        Assert.Equal(NtsResponseCheck.Nak, check);
        Assert.Equal(KissCode.NtsNak, KissOfDeath.Read(response));
    }

    [Fact]
    public void TamperedCookie_GetsNak_TamperedAuthenticator_GetsNothing()
    {
        var nts = new NtsFixture();
        byte[] request = nts.Request();
        int cookieAt = 48 + 36 + 4 + 30;
        request[cookieAt] ^= 1;
        Assert.Equal(ResponseReason.NtsCookieInvalid, nts.Exchange(request).Outcome.Reason);

        request = nts.Request();
        request[^1] ^= 1; // the authenticator's tag
        var (outcome, _, _, response) = nts.Exchange(request);
        Assert.Equal(Outcome.Drop(ResponseReason.NtsBadAuthenticator, nts: true), outcome);
        Assert.Empty(response);

        request = nts.Request();
        request[40] ^= 1; // the transmit timestamp: covered by the authenticator
        Assert.Equal(ResponseReason.NtsBadAuthenticator, nts.Exchange(request).Outcome.Reason);
    }

    [Fact]
    public void MissingOrDuplicatedFields_AreMalformed()
    {
        var nts = new NtsFixture();
        byte[] request = nts.Request();
        // Drop the Unique Identifier: move everything after it up and fix nothing else.
        byte[] noUid = [.. request[..48], .. request[(48 + 36)..]];
        Assert.Equal(ResponseReason.NtsMalformed, nts.Exchange(noUid).Outcome.Reason);
        // Two cookies.
        byte[] twoCookies = [.. request[..(48 + 36)], .. request[(48 + 36)..(48 + 36 + 108)], .. request[(48 + 36)..]];
        Assert.Equal(ResponseReason.NtsMalformed, nts.Exchange(twoCookies).Outcome.Reason);
    }

    [Fact]
    public void RequireNts_DropsPlainRequests_ButAnswersNts()
    {
        var nts = new NtsFixture();
        var policy = default(AllowAllPolicy);
        byte[] plain = Packets.Request();
        Outcome outcome = NtpResponder.Respond(plain, plain.Length, Packets.Context(), Packets.SyncedState(), ref policy, nts.Handler, 0, true, out _);
        Assert.Equal(Outcome.Drop(ResponseReason.NtsRequired), outcome);
        byte[] request = nts.Request();
        outcome = NtpResponder.Respond(request, request.Length, Packets.Context(), Packets.SyncedState(), ref policy, nts.Handler, 0, true, out _);
        Assert.Equal(new Outcome(ResponseAction.Deferred, ResponseReason.Served, Nts: true), outcome);
    }

    [Fact]
    public void ResponseTooSmallForACookie_StillAuthenticatesWithNone()
    {
        // A request whose placeholders are shorter than our cookies cannot carry more than it brought.
        var nts = new NtsFixture();
        byte[] shortCookie = nts.Cookie; // normal size; response room equals the request's
        var (outcome, check, cookies, response) = nts.Exchange(nts.Request(cookie: shortCookie));
        Assert.Equal(NtsResponseCheck.Authentic, check);
        Assert.Equal(1, cookies);
        Assert.Equal(ResponseAction.Respond, outcome.Action);
        Assert.True(response.Length <= nts.Request().Length);
    }

    [Theory]
    [InlineData(AeadAlgorithm.AesSivCmac256)]
    [InlineData(AeadAlgorithm.Aes128GcmSiv)]
    public void NtsRequestPath_AllocatesNothing(AeadAlgorithm aead)
    {
        var nts = new NtsFixture(aead);
        byte[] request = nts.Request(1);
        byte[] buffer = new byte[request.Length];
        ServerState state = Packets.SyncedState();
        request.CopyTo(buffer, 0);
        Assert.Equal(ResponseAction.Respond, nts.Respond(buffer, request.Length, out _, state).Action);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 200; i++)
        {
            request.CopyTo(buffer, 0);
            nts.Respond(buffer, request.Length, out _, state);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Aead30_ResponseCarriesA12OctetNonce_AndTheTagAfterTheCookies()
    {
        var nts = new NtsFixture(AeadAlgorithm.Aes128GcmSiv);
        byte[] request = nts.Request(1);
        var (outcome, check, cookies, response) = nts.Exchange(request);
        Assert.Equal(ResponseReason.Served, outcome.Reason);
        Assert.Equal(NtsResponseCheck.Authentic, check);
        Assert.Equal(2, cookies);
        // RFC 8915 §5.6 with RFC 8452 §4: Nonce Length 12, then the ciphertext: the two cookie fields
        // (4 + 72 each) encrypted, then the 16-octet tag; opened here by hand, not by the client code.
        Assert.Equal(NtsResponseCheck.Authentic, NtsClientPacket.ParseResponse(response, nts.Uid, 2048, out ResponseAuthenticator auth));
        Assert.Equal(12, auth.NonceLength);
        Assert.Equal((2 * 76) + 16, auth.CiphertextLength);
        Assert.Equal(auth.FieldOffset + 4 + 4 + 12, auth.CiphertextOffset);
        var plaintext = new byte[2 * 76];
        Assert.True(new AesGcmSiv(nts.S2C).Decrypt(auth.AssociatedData(response), auth.Nonce(response), auth.Ciphertext(response), plaintext));
        Assert.Equal(NtsExtensionField.Cookie, BinaryPrimitives.ReadUInt16BigEndian(plaintext));
        Assert.Equal(76, BinaryPrimitives.ReadUInt16BigEndian(plaintext.AsSpan(2)));
        Assert.True(response.Length <= request.Length);
    }

    [Theory]
    [InlineData(AeadAlgorithm.Aes128GcmSiv, 16, 0, false)] // GCM-SIV takes a 12-octet nonce only (RFC 8452 §4)
    [InlineData(AeadAlgorithm.Aes128GcmSiv, 8, 4, false)]
    [InlineData(AeadAlgorithm.Aes128GcmSiv, 12, 0, true)]
    [InlineData(AeadAlgorithm.AesSivCmac256, 12, 0, false)] // N_REQ is 16 for AES-SIV (RFC 8915 §5.6): "Servers MUST enforce"
    [InlineData(AeadAlgorithm.AesSivCmac256, 12, 4, true)] // ... which additional padding makes up
    [InlineData(AeadAlgorithm.AesSivCmac256, 16, 0, true)]
    [InlineData(AeadAlgorithm.AesSivCmac256, 32, 0, true)]
    public void AuthenticatorNonce_MustSuitTheAead_AndMeetNreq(AeadAlgorithm aead, int nonceLength, int additionalPadding, bool served)
    {
        var nts = new NtsFixture(aead);
        byte[] sealedRequest = nts.Request();
        // The same request with its authenticator rewritten: nonce of the length asked, padding, a fresh tag.
        int authOffset = sealedRequest.Length - (8 + AeadAlgorithms.NonceLength(aead) + 16);
        var packet = new byte[authOffset + 8 + nonceLength + 16 + additionalPadding];
        sealedRequest.AsSpan(0, authOffset).CopyTo(packet);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(authOffset), NtsExtensionField.Authenticator);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(authOffset + 2), (ushort)(packet.Length - authOffset));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(authOffset + 4), (ushort)nonceLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(authOffset + 6), 16);
        byte[] nonce = [.. Enumerable.Range(90, nonceLength).Select(i => (byte)i)];
        nonce.CopyTo(packet, authOffset + 8);
        Span<byte> tag = packet.AsSpan(authOffset + 8 + nonceLength, 16);
        if (aead == AeadAlgorithm.Aes128GcmSiv && nonceLength != 12)
        {
            tag.Fill(7); // no GCM-SIV tag exists for such a nonce: the length alone must refuse it
        }
        else
        {
            AeadAlgorithms.Create(aead, nts.C2S).Encrypt(packet.AsSpan(0, authOffset), nonce, [], tag);
        }

        var (outcome, check, _, _) = nts.Exchange(packet);

        Assert.Equal(served ? ResponseReason.Served : ResponseReason.NtsMalformed, outcome.Reason);
        Assert.Equal(served, check == NtsResponseCheck.Authentic);
    }

    [Fact]
    public void MutatedNtsRequests_NeverThrowNorAmplify()
    {
        // CsCheck samples on several threads; a handler belongs to one (as to one worker).
        using var fixtures = new ThreadLocal<NtsFixture>(() => new NtsFixture());
        byte[] seed = fixtures.Value!.Request(2);
        Mutations.Of([seed], flips: 6, shrink: 40, grow: 40, maxLength: seed.Length + 40)
            .Sample(packet =>
            {
                byte[] buffer = (byte[])packet.Clone();
                fixtures.Value!.Respond(buffer, packet.Length, out int length);
                Assert.InRange(length, 0, packet.Length);
            }, iter: 100_000);
    }
}

public class NtsKeCodecTests
{
    [Fact]
    public void Record_RoundTrips_CriticalBitTypeAndBody()
    {
        var buffer = new byte[16];
        int n = NtsKeRecords.Write(buffer, true, (NtsKeRecordType)0x1234, [1, 2, 3]);
        Assert.Equal([0x92, 0x34, 0, 3, 1, 2, 3], buffer[..n]);
        Assert.True(NtsKeRecords.TryRead(buffer.AsSpan(0, n), out NtsKeRecord record, out int consumed));
        Assert.True(record.Critical);
        Assert.Equal(0x1234, record.Type);
        Assert.Equal([1, 2, 3], record.Body.ToArray());
        Assert.Equal(n, consumed);
    }

    [Fact]
    public void PartialRecord_IsNotRead()
    {
        byte[] record = NtsKeMessages.Records((true, NtsKeRecordType.AeadAlgorithm, NtsKeMessages.U16(15, 17)));
        for (int n = 0; n < record.Length; n++)
        {
            Assert.False(NtsKeRecords.TryRead(record.AsSpan(0, n), out _, out int consumed));
            Assert.Equal(0, consumed);
        }
    }

    [Fact]
    public void ErrorAnswer_IsACriticalErrorRecordThenEndOfMessage()
    {
        var reply = new byte[16];
        Assert.Equal(NtsKeRecords.ErrorResponseLength, NtsKeRecords.WriteError(reply, NtsKeErrorCode.BadRequest));
        Assert.Equal([0x80, 2, 0, 2, 0, 1, 0x80, 0, 0, 0], reply[..NtsKeRecords.ErrorResponseLength]);
    }

    [Fact]
    public void ExporterContext_IsNtpV4ThenAeadThenDirection_Rfc8915Section5_1()
    {
        Span<byte> context = stackalloc byte[NtsKeRecords.ExporterContextLength];
        NtsKeRecords.WriteExporterContext(context, AeadAlgorithm.AesSivCmac512, serverToClient: false);
        Assert.Equal([0, 0, 0, 17, 0], context.ToArray());
        NtsKeRecords.WriteExporterContext(context, AeadAlgorithm.AesSivCmac256, serverToClient: true);
        Assert.Equal([0, 0, 0, 15, 1], context.ToArray());
        Assert.Equal("EXPORTER-network-time-security"u8.ToArray(), NtsKeRecords.ExporterLabel.ToArray());
    }

    [Fact]
    public void RandomBytes_AreReadAsWholeRecordsOrNotAtAll_NeverPastTheEnd() =>
        Gen.Byte.Array[0, 300].Sample(bytes =>
        {
            int offset = 0;
            while (NtsKeRecords.TryRead(bytes.AsSpan(offset), out NtsKeRecord record, out int consumed))
            {
                Assert.Equal(NtsKeRecords.HeaderLength + record.Body.Length, consumed);
                offset += consumed;
            }
            Assert.InRange(offset, 0, bytes.Length);
            Assert.True(bytes.Length - offset < NtsKeRecords.HeaderLength
                || offset + NtsKeRecords.HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(bytes.AsSpan(offset + 2)) > bytes.Length);
        }, iter: 100_000);
}
