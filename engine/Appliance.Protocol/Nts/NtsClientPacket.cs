using System.Buffers.Binary;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>What checking an NTS response found (RFC 8915 §5.7, client side).</summary>
public enum NtsResponseCheck : byte
{
    Authentic,

    /// <summary>A KoD NTSN with our Unique Identifier: the cookie was refused.</summary>
    Nak,

    /// <summary>Fields missing, wrong Unique Identifier, or the authenticator does not verify.</summary>
    Invalid,
}

/// <summary>
/// The client side of NTS on the NTP path: building authenticated requests and checking responses.
/// Used by the load generator, the tests, the warm-up, and the upstream NTS client.
/// </summary>
public static class NtsClientPacket
{
    public const int UniqueIdentifierLength = 32;
    public const int ClientNonceLength = 16;

    /// <summary>
    /// Writes a mode-3 NTPv4 request: header (transmit = <paramref name="transmit"/>), Unique
    /// Identifier, the cookie, <paramref name="placeholders"/> Cookie Placeholders of the same size,
    /// and the Authenticator (AES-SIV with the C2S key over everything before it, empty plaintext).
    /// Returns the length.
    /// </summary>
    public static int WriteRequest(Span<byte> packet, ulong transmit, ReadOnlySpan<byte> uniqueId, ReadOnlySpan<byte> cookie,
        int placeholders, ReadOnlySpan<byte> nonce, AesSiv c2s)
    {
        packet[..NtpHeader.Length].Clear();
        packet[0] = NtpHeader.FirstOctet(LeapIndicator.NoWarning, 4, NtpMode.Client);
        packet[2] = 6;
        BinaryPrimitives.WriteUInt64BigEndian(packet[NtpHeader.TransmitOffset..], transmit);
        int offset = NtpHeader.Length;
        offset += ExtensionFields.Write(packet[offset..], NtsExtensionField.UniqueIdentifier, uniqueId);
        offset += ExtensionFields.Write(packet[offset..], NtsExtensionField.Cookie, cookie);
        for (int i = 0; i < placeholders; i++)
        {
            int start = offset;
            offset += ExtensionFields.Write(packet[offset..], NtsExtensionField.CookiePlaceholder, cookie);
            packet.Slice(start + ExtensionFields.HeaderLength, cookie.Length).Clear();
        }
        int authLength = ExtensionFields.HeaderLength + 4 + ClientNonceLength + AesSiv.TagLength;
        BinaryPrimitives.WriteUInt16BigEndian(packet[offset..], NtsExtensionField.Authenticator);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(offset + 2)..], (ushort)authLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(offset + 4)..], ClientNonceLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(offset + 6)..], AesSiv.TagLength);
        nonce[..ClientNonceLength].CopyTo(packet[(offset + 8)..]);
        c2s.Encrypt(packet[..offset], nonce[..ClientNonceLength], [], packet.Slice(offset + 8 + ClientNonceLength, AesSiv.TagLength));
        return offset + authLength;
    }

    /// <summary>
    /// Checks a response to a request with <paramref name="uniqueId"/>: the Unique Identifier must
    /// match and the authenticator verify under the S2C key; the new cookies (in the decrypted
    /// plaintext) are handed to <paramref name="onCookie"/>. A KoD NTSN echoing the UID is a NAK.
    /// </summary>
    public static NtsResponseCheck CheckResponse(ReadOnlySpan<byte> response, ReadOnlySpan<byte> uniqueId, AesSiv s2c,
        Span<byte> plaintextScratch, out int cookies, CookieSink? onCookie = null)
    {
        cookies = 0;
        if (response.Length < NtpHeader.Length || !ExtensionFields.TryGetLayout(response[NtpHeader.Length..], 4, out ExtensionLayout layout))
        {
            return NtsResponseCheck.Invalid;
        }
        ReadOnlySpan<byte> fields = response.Slice(NtpHeader.Length, layout.FieldsLength);
        bool uidMatches = false;
        int authOffset = -1, authLength = 0;
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (field.Type == NtsExtensionField.UniqueIdentifier)
            {
                uidMatches = field.Value.Length >= uniqueId.Length && field.Value[..uniqueId.Length].SequenceEqual(uniqueId);
            }
            else if (field.Type == NtsExtensionField.Authenticator)
            {
                authOffset = NtpHeader.Length + field.Offset;
                authLength = field.Length;
            }
        }
        if (!uidMatches)
        {
            return NtsResponseCheck.Invalid;
        }
        if (KissOfDeath.Read(response) == KissCode.NtsNak && authOffset < 0)
        {
            return NtsResponseCheck.Nak;
        }
        if (authOffset < 0)
        {
            return NtsResponseCheck.Invalid;
        }
        ReadOnlySpan<byte> auth = response.Slice(authOffset + ExtensionFields.HeaderLength, authLength - ExtensionFields.HeaderLength);
        int nonceLength = BinaryPrimitives.ReadUInt16BigEndian(auth);
        int ciphertextLength = BinaryPrimitives.ReadUInt16BigEndian(auth[2..]);
        int noncePadded = (nonceLength + 3) & ~3;
        if (ciphertextLength < AesSiv.TagLength || 4 + noncePadded + ciphertextLength > auth.Length
            || ciphertextLength - AesSiv.TagLength > plaintextScratch.Length)
        {
            return NtsResponseCheck.Invalid;
        }
        Span<byte> plaintext = plaintextScratch[..(ciphertextLength - AesSiv.TagLength)];
        if (!s2c.Decrypt(response[..authOffset], auth.Slice(4, nonceLength), auth.Slice(4 + noncePadded, ciphertextLength), plaintext))
        {
            return NtsResponseCheck.Invalid;
        }
        if (!ExtensionFields.TryGetLayout(plaintext, 4, out ExtensionLayout inner) || inner.HasMac)
        {
            return NtsResponseCheck.Invalid;
        }
        foreach (ExtensionField field in ExtensionFields.Enumerate(plaintext[..inner.FieldsLength]))
        {
            if (field.Type == NtsExtensionField.Cookie)
            {
                cookies++;
                onCookie?.Invoke(field.Value);
            }
        }
        return NtsResponseCheck.Authentic;
    }
}

/// <summary>Receives a cookie found in a response (a span: valid only during the call).</summary>
public delegate void CookieSink(ReadOnlySpan<byte> cookie);
