using System.Buffers.Binary;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;

namespace Appliance.Protocol.Tests;

/// <summary>
/// NTS responses as a misbehaving server (one holding the S2C key) could build them: a genuine
/// response taken apart, its fields rearranged, and sealed again under S2C, so that the only thing
/// wrong with it is the layout.
/// </summary>
internal static class NtsResponseForge
{
    /// <summary>A response's parts: the header, the fields before the authenticator, the authenticator field, and what it encrypts.</summary>
    public sealed record Parts(byte[] Header, List<byte[]> Fields, byte[] Authenticator, byte[] Plaintext);

    public static Parts Open(byte[] response, ReadOnlySpan<byte> uniqueId, byte[] s2c)
    {
        Assert.Equal(NtsResponseCheck.Authentic, NtsClientPacket.ParseResponse(response, uniqueId, 2048, out ResponseAuthenticator auth));
        var plaintext = new byte[auth.PlaintextLength];
        Assert.True(new AesSiv(s2c).Decrypt(auth.AssociatedData(response), auth.Nonce(response), auth.Ciphertext(response), plaintext));
        var fields = new List<byte[]>();
        foreach (ExtensionField field in ExtensionFields.Enumerate(response.AsSpan(NtpHeader.Length, auth.FieldOffset - NtpHeader.Length)))
        {
            fields.Add(response.AsSpan(NtpHeader.Length + field.Offset, field.Length).ToArray());
        }
        return new Parts(response[..NtpHeader.Length], fields, response[auth.FieldOffset..], plaintext);
    }

    public static byte[] Field(ushort type, ReadOnlySpan<byte> value)
    {
        var bytes = new byte[ExtensionFields.HeaderLength + value.Length + ExtensionFields.MinFieldLength];
        return bytes[..ExtensionFields.Write(bytes, type, value)];
    }

    /// <summary>
    /// <paramref name="header"/> ‖ <paramref name="fields"/> ‖ an authenticator (RFC 8915 §5.6) over
    /// all of that, encrypting <paramref name="plaintext"/> under <paramref name="s2c"/> ‖ <paramref name="after"/>.
    /// </summary>
    public static byte[] Seal(byte[] header, IEnumerable<byte[]> fields, byte[] plaintext, byte[] s2c, params byte[][] after)
    {
        byte[] associatedData = [.. header, .. fields.SelectMany(f => f)];
        byte[] nonce = Enumerable.Repeat((byte)0x5A, 16).ToArray();
        var ciphertext = new byte[AesSiv.TagLength + plaintext.Length];
        new AesSiv(s2c).Encrypt(associatedData, nonce, plaintext, ciphertext);
        var authenticator = new byte[ExtensionFields.HeaderLength + 4 + nonce.Length + ((ciphertext.Length + 3) & ~3)];
        BinaryPrimitives.WriteUInt16BigEndian(authenticator, NtsExtensionField.Authenticator);
        BinaryPrimitives.WriteUInt16BigEndian(authenticator.AsSpan(2), (ushort)authenticator.Length);
        BinaryPrimitives.WriteUInt16BigEndian(authenticator.AsSpan(4), (ushort)nonce.Length);
        BinaryPrimitives.WriteUInt16BigEndian(authenticator.AsSpan(6), (ushort)ciphertext.Length);
        nonce.CopyTo(authenticator, 8);
        ciphertext.CopyTo(authenticator, 8 + nonce.Length);
        return [.. associatedData, .. authenticator, .. after.SelectMany(a => a)];
    }
}

/// <summary>
/// The client's check of an NTS response's layout (RFC 8915 §5.6–5.7): exactly one Unique Identifier,
/// ours, in the associated data; exactly one authenticator, at the end (issue #14).
/// </summary>
public class NtsClientResponseTests
{
    private static readonly byte[] s_otherUid = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    private static (NtsFixture Nts, NtsResponseForge.Parts Parts) Genuine()
    {
        var nts = new NtsFixture();
        byte[] response = nts.Exchange(nts.Request(placeholders: 1)).Response;
        return (nts, NtsResponseForge.Open(response, nts.Uid, nts.S2C));
    }

    private static NtsResponseCheck Check(NtsFixture nts, byte[] response, out int cookies, out int handed)
    {
        int seen = 0;
        NtsResponseCheck check = NtsClientPacket.CheckResponse(response, nts.Uid, AeadAlgorithms.Create(nts.Aead, nts.S2C), new byte[2048], out cookies, _ => seen++);
        handed = seen;
        return check;
    }

    private static byte[] Uid(byte[] value) => NtsResponseForge.Field(NtsExtensionField.UniqueIdentifier, value);

    [Fact]
    public void Resealed_GenuineParts_AreAuthentic_TheForgeChangesNothingElse()
    {
        (NtsFixture nts, NtsResponseForge.Parts parts) = Genuine();
        Assert.Equal([NtsExtensionField.UniqueIdentifier], parts.Fields.Select(f => BinaryPrimitives.ReadUInt16BigEndian(f)));
        byte[] resealed = NtsResponseForge.Seal(parts.Header, parts.Fields, parts.Plaintext, nts.S2C);
        Assert.Equal(NtsResponseCheck.Authentic, Check(nts, resealed, out int cookies, out int handed));
        Assert.Equal(2, cookies);
        Assert.Equal(2, handed);
    }

    [Theory]
    [InlineData("ours, another")]
    [InlineData("another, ours")]
    [InlineData("ours, ours")]
    public void TwoUniqueIdentifiers_AreRefused_WhicheverComesLast(string order)
    {
        (NtsFixture nts, NtsResponseForge.Parts parts) = Genuine();
        byte[][] uids = order.Split(", ").Select(which => Uid(which == "ours" ? nts.Uid : s_otherUid)).ToArray();
        byte[] response = NtsResponseForge.Seal(parts.Header, uids, parts.Plaintext, nts.S2C);
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, response, out _, out int handed));
        Assert.Equal(0, handed);
    }

    [Fact]
    public void UniqueIdentifierAfterTheAuthenticator_IsRefused_EvenWithAnotherBeforeIt()
    {
        (NtsFixture nts, NtsResponseForge.Parts parts) = Genuine();
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, NtsResponseForge.Seal(parts.Header, [], parts.Plaintext, nts.S2C, Uid(nts.Uid)), out _, out _));
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, NtsResponseForge.Seal(parts.Header, [Uid(s_otherUid)], parts.Plaintext, nts.S2C, Uid(nts.Uid)), out _, out _));
    }

    [Fact]
    public void UniqueIdentifierInTheEncryptedPart_IsRefused_WithOrWithoutOneInTheClear()
    {
        // RFC 8915 §5.7: the UID is authenticated but not encrypted.
        (NtsFixture nts, NtsResponseForge.Parts parts) = Genuine();
        byte[] plaintext = [.. Uid(nts.Uid), .. parts.Plaintext];
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, NtsResponseForge.Seal(parts.Header, [], plaintext, nts.S2C), out _, out _));
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, NtsResponseForge.Seal(parts.Header, parts.Fields, plaintext, nts.S2C), out _, out int handed));
        Assert.Equal(0, handed); // no cookie from a refused response
    }

    [Fact]
    public void ASecondAuthenticator_IsRefused()
    {
        // The genuine authenticator kept inside the associated data of a new one that ends the packet.
        (NtsFixture nts, NtsResponseForge.Parts parts) = Genuine();
        byte[] response = NtsResponseForge.Seal(parts.Header, [.. parts.Fields, parts.Authenticator], parts.Plaintext, nts.S2C);
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, response, out _, out _));
    }

    [Fact]
    public void Nak_NeedsExactlyOurUniqueIdentifier()
    {
        var nts = new NtsFixture();
        var kod = new byte[NtpHeader.Length];
        KissOfDeath.Write(kod, 4, 6, new NtpTimestamp(0x1122334455667788), KissCode.NtsNak);
        Assert.Equal(NtsResponseCheck.Nak, Check(nts, [.. kod, .. Uid(nts.Uid)], out _, out _));
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, [.. kod, .. Uid(s_otherUid), .. Uid(nts.Uid)], out _, out _));
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, [.. kod, .. Uid(nts.Uid), .. Uid(nts.Uid)], out _, out _));
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, [.. kod, .. Uid(s_otherUid)], out _, out _));
    }

    [Fact]
    public void AUniqueIdentifierThatOnlyStartsWithOurs_IsRefused()
    {
        // Ours and four octets more: equal is required, not a prefix, sealed or in a NAK.
        (NtsFixture nts, NtsResponseForge.Parts parts) = Genuine();
        byte[] longer = Uid([.. nts.Uid, 1, 2, 3, 4]);
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, NtsResponseForge.Seal(parts.Header, [longer], parts.Plaintext, nts.S2C), out _, out _));
        var kod = new byte[NtpHeader.Length];
        KissOfDeath.Write(kod, 4, 6, new NtpTimestamp(0x1122334455667788), KissCode.NtsNak);
        Assert.Equal(NtsResponseCheck.Invalid, Check(nts, [.. kod, .. longer], out _, out _));
    }
}
