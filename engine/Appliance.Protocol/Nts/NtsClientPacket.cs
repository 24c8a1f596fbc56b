using System.Buffers.Binary;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>What checking an NTS response found (RFC 8915 §5.7, client side).</summary>
public enum NtsResponseCheck : byte
{
    Authentic,

    /// <summary>A KoD NTSN with our Unique Identifier: the cookie was refused.</summary>
    Nak,

    /// <summary>Fields missing, duplicated or misplaced, wrong Unique Identifier, or the authenticator does not verify.</summary>
    Invalid,
}

/// <summary>
/// The client side of NTS on the NTP path: building authenticated requests and checking responses.
/// Used by the load generator, the tests, the warm-up, and the upstream NTS client.
/// </summary>
public static class NtsClientPacket
{
    public const int UniqueIdentifierLength = 32;

    /// <summary>
    /// Writes a mode-3 NTPv4 request: header (transmit = <paramref name="transmit"/>), Unique
    /// Identifier, the cookie, <paramref name="placeholders"/> Cookie Placeholders of the same size,
    /// and the Authenticator (the session's AEAD with the C2S key over everything before it, empty
    /// plaintext, the first <see cref="AeadAlgorithms.NonceLength"/> octets of <paramref name="nonce"/>).
    /// Returns the length.
    /// </summary>
    public static int WriteRequest(Span<byte> packet, ulong transmit, ReadOnlySpan<byte> uniqueId, ReadOnlySpan<byte> cookie,
        int placeholders, ReadOnlySpan<byte> nonce, INtsAead c2s)
    {
        int length = WriteUnsealedRequest(packet, transmit, uniqueId, cookie, placeholders, c2s.Algorithm, nonce, out RequestAuthenticator auth);
        c2s.Encrypt(auth.AssociatedData(packet), auth.Nonce(packet), [], auth.Tag(packet));
        return length;
    }

    /// <summary>
    /// <see cref="WriteRequest"/> without the AEAD: the authenticator's tag is left for the caller
    /// (several requests' tags side by side, <see cref="AesSivLanes"/>), at the places <paramref name="auth"/> names.
    /// Both nonce lengths (16 for AES-SIV, 12 for GCM-SIV) are whole words and at least N_REQ (RFC 8915
    /// §5.6), so the field has no padding.
    /// </summary>
    public static int WriteUnsealedRequest(Span<byte> packet, ulong transmit, ReadOnlySpan<byte> uniqueId, ReadOnlySpan<byte> cookie,
        int placeholders, AeadAlgorithm aead, ReadOnlySpan<byte> nonce, out RequestAuthenticator auth)
    {
        int nonceLength = AeadAlgorithms.NonceLength(aead);
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
        int authLength = ExtensionFields.HeaderLength + 4 + nonceLength + AeadAlgorithms.TagLength;
        BinaryPrimitives.WriteUInt16BigEndian(packet[offset..], NtsExtensionField.Authenticator);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(offset + 2)..], (ushort)authLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(offset + 4)..], (ushort)nonceLength);
        BinaryPrimitives.WriteUInt16BigEndian(packet[(offset + 6)..], AeadAlgorithms.TagLength);
        nonce[..nonceLength].CopyTo(packet[(offset + 8)..]);
        auth = new RequestAuthenticator(offset, nonceLength);
        return offset + authLength;
    }

    /// <summary>
    /// Checks a response to a request with <paramref name="uniqueId"/>: the Unique Identifier must
    /// match and the authenticator verify under the S2C key; the new cookies (in the decrypted
    /// plaintext) are handed to <paramref name="onCookie"/>. A KoD NTSN echoing the UID is a NAK.
    /// </summary>
    public static NtsResponseCheck CheckResponse(ReadOnlySpan<byte> response, ReadOnlySpan<byte> uniqueId, INtsAead s2c,
        Span<byte> plaintextScratch, out int cookies, CookieSink? onCookie = null)
    {
        cookies = 0;
        NtsResponseCheck check = ParseResponse(response, uniqueId, plaintextScratch.Length, out ResponseAuthenticator auth);
        if (check != NtsResponseCheck.Authentic)
        {
            return check;
        }
        if (!AeadAlgorithms.AcceptsNonce(s2c.Algorithm, auth.NonceLength, auth.NonceRoom))
        {
            return NtsResponseCheck.Invalid;
        }
        Span<byte> plaintext = plaintextScratch[..auth.PlaintextLength];
        if (!s2c.Decrypt(auth.AssociatedData(response), auth.Nonce(response), auth.Ciphertext(response), plaintext))
        {
            return NtsResponseCheck.Invalid;
        }
        cookies = ReadCookies(plaintext, onCookie);
        return cookies < 0 ? NtsResponseCheck.Invalid : NtsResponseCheck.Authentic;
    }

    /// <summary>
    /// The checks of <see cref="CheckResponse"/> up to the AES-SIV: Unique Identifier, NAK, and where the
    /// authenticator's parts are. <see cref="NtsResponseCheck.Authentic"/> here means "decrypt next".
    /// </summary>
    /// <remarks>
    /// The layout RFC 8915 §5.6–5.7 gives a response: exactly one Unique Identifier, ours, in the
    /// associated data (authenticated, not encrypted), and exactly one authenticator, which ends the
    /// packet. Anything else is refused rather than read generously: with "the last UID wins", a
    /// response could carry another request's UID beside ours, and whatever follows the
    /// authenticator is not covered by it.
    /// </remarks>
    public static NtsResponseCheck ParseResponse(ReadOnlySpan<byte> response, ReadOnlySpan<byte> uniqueId, int plaintextRoom, out ResponseAuthenticator auth)
    {
        auth = default;
        if (response.Length < NtpHeader.Length || !ExtensionFields.TryGetLayout(response[NtpHeader.Length..], 4, out ExtensionLayout layout))
        {
            return NtsResponseCheck.Invalid;
        }
        ReadOnlySpan<byte> fields = response.Slice(NtpHeader.Length, layout.FieldsLength);
        int uids = 0;
        bool uidMatches = false;
        int authOffset = -1, authLength = 0;
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (authOffset >= 0)
            {
                // A field after the authenticator (a second one among them) is outside what it covers (§5.6).
                return NtsResponseCheck.Invalid;
            }
            if (field.Type == NtsExtensionField.UniqueIdentifier)
            {
                uids++;
                // The server echoes the field as sent (RFC 8915 §5.7); ours is a multiple of four octets, so
                // it carries no padding: equal, not merely starting with ours.
                uidMatches = field.Value.SequenceEqual(uniqueId);
            }
            else if (field.Type == NtsExtensionField.Authenticator)
            {
                authOffset = NtpHeader.Length + field.Offset;
                authLength = field.Length;
            }
        }
        // Exactly one UID, and ours: a second one, ours or not, is refused, never "the last one wins".
        // No field follows the authenticator, so the UID is in its associated data.
        if (uids != 1 || !uidMatches)
        {
            return NtsResponseCheck.Invalid;
        }
        if (KissOfDeath.Read(response) == KissCode.NtsNak && authOffset < 0)
        {
            return NtsResponseCheck.Nak;
        }
        // The authenticator must be the last thing in the packet: whatever followed it that is not a
        // field (a legacy MAC, padding) would be unauthenticated too (RFC 8915 §5.6; chrony refuses it).
        if (authOffset < 0 || authOffset + authLength != response.Length)
        {
            return NtsResponseCheck.Invalid;
        }
        int body = authOffset + ExtensionFields.HeaderLength;
        ReadOnlySpan<byte> value = response.Slice(body, authLength - ExtensionFields.HeaderLength);
        int nonceLength = BinaryPrimitives.ReadUInt16BigEndian(value);
        int ciphertextLength = BinaryPrimitives.ReadUInt16BigEndian(value[2..]);
        int noncePadded = (nonceLength + 3) & ~3;
        int ciphertextPadded = (ciphertextLength + 3) & ~3;
        if (ciphertextLength < AeadAlgorithms.TagLength || 4 + noncePadded + ciphertextPadded > value.Length
            || ciphertextLength - AeadAlgorithms.TagLength > plaintextRoom)
        {
            return NtsResponseCheck.Invalid;
        }
        auth = new ResponseAuthenticator(authOffset, body + 4, nonceLength, body + 4 + noncePadded, ciphertextLength)
        {
            NonceRoom = value.Length - 4 - ciphertextPadded,
        };
        return NtsResponseCheck.Authentic;
    }

    /// <summary>
    /// The cookies in an authenticated response's decrypted plaintext, each handed to
    /// <paramref name="onCookie"/>; their count, or -1 when the plaintext is not extension fields or
    /// holds a Unique Identifier (RFC 8915 §5.7: it is authenticated, never encrypted).
    /// </summary>
    public static int ReadCookies(ReadOnlySpan<byte> plaintext, CookieSink? onCookie)
    {
        if (!ExtensionFields.TryGetLayout(plaintext, 4, out ExtensionLayout inner) || inner.HasMac)
        {
            return -1;
        }
        ReadOnlySpan<byte> fields = plaintext[..inner.FieldsLength];
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (field.Type == NtsExtensionField.UniqueIdentifier)
            {
                return -1;
            }
        }
        // Handed on only once the whole plaintext is known good: a refused response gives no cookie.
        int cookies = 0;
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (field.Type == NtsExtensionField.Cookie)
            {
                cookies++;
                onCookie?.Invoke(field.Value);
            }
        }
        return cookies;
    }
}

/// <summary>Where a request's Authenticator (RFC 8915 §5.6) takes its AEAD inputs and puts the tag.</summary>
public readonly record struct RequestAuthenticator(int FieldOffset, int NonceLength)
{
    /// <summary>Everything before the field.</summary>
    public ReadOnlySpan<byte> AssociatedData(ReadOnlySpan<byte> packet) => packet[..FieldOffset];

    public ReadOnlySpan<byte> Nonce(ReadOnlySpan<byte> packet) => packet.Slice(FieldOffset + 8, NonceLength);

    /// <summary>The tag: with an empty plaintext, the whole ciphertext (SIV or GCM-SIV alike).</summary>
    public Span<byte> Tag(Span<byte> packet) => packet.Slice(FieldOffset + 8 + NonceLength, AeadAlgorithms.TagLength);
}

/// <summary>Where a response's Authenticator (RFC 8915 §5.6) has its AEAD inputs.</summary>
public readonly record struct ResponseAuthenticator(int FieldOffset, int NonceOffset, int NonceLength, int CiphertextOffset, int CiphertextLength)
{
    public int PlaintextLength => CiphertextLength - AeadAlgorithms.TagLength;

    /// <summary>The padded nonce and the additional padding after the ciphertext, in octets (N_REQ, §5.6).</summary>
    public int NonceRoom { get; init; }

    /// <summary>Everything before the field.</summary>
    public ReadOnlySpan<byte> AssociatedData(ReadOnlySpan<byte> response) => response[..FieldOffset];

    public ReadOnlySpan<byte> Nonce(ReadOnlySpan<byte> response) => response.Slice(NonceOffset, NonceLength);

    /// <summary>The AEAD's whole output: SIV ‖ ciphertext (AES-SIV) or ciphertext ‖ tag (GCM-SIV).</summary>
    public ReadOnlySpan<byte> Ciphertext(ReadOnlySpan<byte> response) => response.Slice(CiphertextOffset, CiphertextLength);
}

/// <summary>Receives a cookie found in a response (a span: valid only during the call).</summary>
public delegate void CookieSink(ReadOnlySpan<byte> cookie);
