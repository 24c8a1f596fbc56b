using System.Buffers.Binary;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>
/// What the second half of an NTS response needs: where the associated data ends, where the server
/// nonce and the ciphertext go, how long the plaintext (the new cookies) is. The transmit timestamp
/// is part of the associated data, so sealing runs after it is stamped (<see cref="NtsPacketHandler.Seal"/>).
/// </summary>
public readonly record struct NtsSealJob(AeadAlgorithm Aead, int AssociatedDataLength, int NonceOffset, int CiphertextOffset, int PlaintextLength, int Cookies);

/// <summary>
/// NTS on the NTP path (RFC 8915 §5): checks the Unique Identifier, opens the cookie with the key
/// ring, verifies the authenticator with the C2S key, and writes the response with fresh cookies
/// (one per cookie and placeholder that fits: the response is never larger than the request).
/// An unusable cookie gets an NTS NAK (KoD NTSN, §5.7). One instance per worker: it owns its
/// scratch keys and cipher, and allocates nothing per request.
/// </summary>
public sealed class NtsPacketHandler
{
    private const int MaxUniqueIdentifierField = 4 + 256;

    private readonly IRandomSource _random;
    private readonly AesSiv _siv = new(new byte[32]);
    private readonly byte[] _c2s = new byte[64];
    private readonly byte[] _clientPlaintext = new byte[2048];

    public NtsPacketHandler(CookieKeyRingCell keys, IRandomSource random)
    {
        Keys = keys;
        _random = random;
    }

    public CookieKeyRingCell Keys { get; }

    /// <summary>True when the extension fields carry an NTS request (a Unique Identifier, a cookie or an authenticator).</summary>
    public static bool LooksLikeNts(ReadOnlySpan<byte> fields)
    {
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (field.Type is NtsExtensionField.UniqueIdentifier or NtsExtensionField.Cookie or NtsExtensionField.Authenticator)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Phase one: validates the request in <paramref name="buffer"/> and writes the response over it,
    /// all but the transmit timestamp and the ciphertext. On a time response, <paramref name="s2c"/>
    /// receives the S2C key for <see cref="Seal"/>.
    /// </summary>
    internal Outcome Respond(Span<byte> buffer, int requestLength, ExtensionLayout layout, byte version, sbyte poll,
        NtpTimestamp clientTransmit, in RequestContext context, ServerState state, ResponseReason answered,
        Span<byte> s2c, out NtsSealJob job, out int responseLength)
    {
        job = default;
        responseLength = 0;
        CookieKeyRing? ring = Keys.Current;
        if (ring is null || layout.HasMac)
        {
            return Outcome.Drop(ResponseReason.NtsMalformed, nts: true);
        }

        // RFC 8915 §5.7: exactly one Unique Identifier and one cookie, the authenticator last.
        ReadOnlySpan<byte> fields = buffer.Slice(NtpHeader.Length, layout.FieldsLength);
        int uidOffset = -1, uidLength = 0, uids = 0, cookies = 0, placeholders = 0, placeholderBytes = 0, authenticators = 0;
        int cookieOffset = 0, cookieLength = 0, authOffset = -1, authLength = 0, lastFieldEnd = 0;
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (authenticators > 0)
            {
                return Outcome.Drop(ResponseReason.NtsMalformed, nts: true); // something after the authenticator
            }
            switch (field.Type)
            {
                case NtsExtensionField.UniqueIdentifier:
                    uids++;
                    uidOffset = NtpHeader.Length + field.Offset;
                    uidLength = field.Length;
                    break;
                case NtsExtensionField.Cookie:
                    cookies++;
                    cookieOffset = NtpHeader.Length + field.Offset + ExtensionFields.HeaderLength;
                    cookieLength = field.Length - ExtensionFields.HeaderLength;
                    break;
                case NtsExtensionField.CookiePlaceholder:
                    placeholders++;
                    placeholderBytes += field.Length;
                    break;
                case NtsExtensionField.Authenticator:
                    authenticators++;
                    authOffset = NtpHeader.Length + field.Offset;
                    authLength = field.Length;
                    break;
            }
            lastFieldEnd = field.Offset + field.Length;
        }
        if (uids != 1 || cookies != 1 || authenticators != 1 || lastFieldEnd != layout.FieldsLength
            || uidLength - ExtensionFields.HeaderLength < NtsExtensionField.MinUniqueIdentifierLength || uidLength > MaxUniqueIdentifierField)
        {
            return Outcome.Drop(ResponseReason.NtsMalformed, nts: true);
        }

        // The UID must survive the response being written over the request.
        Span<byte> uid = stackalloc byte[MaxUniqueIdentifierField];
        buffer.Slice(uidOffset, uidLength).CopyTo(uid);
        uid = uid[..uidLength];

        CookieFailure failure = NtsCookie.Open(ring, buffer.Slice(cookieOffset, cookieLength), _c2s, s2c, out AeadAlgorithm aead);
        if (failure != CookieFailure.None)
        {
            // NTS NAK (RFC 8915 §5.7): a KoD NTSN that echoes the Unique Identifier, unauthenticated.
            KissOfDeath.Write(buffer, version, poll, clientTransmit, KissCode.NtsNak);
            uid.CopyTo(buffer[NtpHeader.Length..]);
            responseLength = NtpHeader.Length + uidLength;
            return new Outcome(ResponseAction.KissOfDeath,
                failure == CookieFailure.UnknownKey ? ResponseReason.NtsCookieUnknownKey : ResponseReason.NtsCookieInvalid, Nts: true);
        }
        int keyLength = AeadAlgorithms.KeyLength(aead);

        // Authenticator body: nonce length, ciphertext length, nonce, ciphertext (each padded to 4).
        ReadOnlySpan<byte> auth = buffer.Slice(authOffset + ExtensionFields.HeaderLength, authLength - ExtensionFields.HeaderLength);
        int nonceLength = BinaryPrimitives.ReadUInt16BigEndian(auth);
        int ciphertextLength = BinaryPrimitives.ReadUInt16BigEndian(auth[2..]);
        int noncePadded = (nonceLength + 3) & ~3;
        if (nonceLength == 0 || ciphertextLength < AesSiv.TagLength || 4 + noncePadded + ciphertextLength > auth.Length
            || ciphertextLength - AesSiv.TagLength > _clientPlaintext.Length)
        {
            return Outcome.Drop(ResponseReason.NtsMalformed, nts: true);
        }
        _siv.SetKey(_c2s.AsSpan(0, keyLength));
        if (!_siv.Decrypt(buffer[..authOffset], auth.Slice(4, nonceLength), auth.Slice(4 + noncePadded, ciphertextLength), _clientPlaintext))
        {
            return Outcome.Drop(ResponseReason.NtsBadAuthenticator, nts: true);
        }

        // How many fresh cookies fit without making the response longer than the request.
        int newCookieLength = NtsCookie.Length(aead);
        int cookieField = ExtensionFields.HeaderLength + newCookieLength;
        int authFixed = ExtensionFields.HeaderLength + 4 + NtsExtensionField.ServerNonceLength + AesSiv.TagLength;
        int room = requestLength - NtpHeader.Length - uidLength - authFixed;
        int wanted = 1 + placeholders;
        int count = Math.Max(0, Math.Min(wanted, room / cookieField));

        WriteHeader(buffer, version, poll, clientTransmit, context, state);
        int offset = NtpHeader.Length;
        uid.CopyTo(buffer[offset..]);
        offset += uidLength;
        int adLength = offset;
        int plaintextLength = count * cookieField;
        int authFieldLength = authFixed + plaintextLength;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[offset..], NtsExtensionField.Authenticator);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(offset + 2)..], (ushort)authFieldLength);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(offset + 4)..], NtsExtensionField.ServerNonceLength);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(offset + 6)..], (ushort)(AesSiv.TagLength + plaintextLength));
        int nonceOffset = offset + 8;
        _random.Fill(buffer.Slice(nonceOffset, NtsExtensionField.ServerNonceLength));
        int ciphertextOffset = nonceOffset + NtsExtensionField.ServerNonceLength;
        int plaintextOffset = ciphertextOffset + AesSiv.TagLength;
        Span<byte> cookieNonce = stackalloc byte[NtsCookie.NonceLength];
        for (int i = 0; i < count; i++)
        {
            Span<byte> field = buffer.Slice(plaintextOffset + (i * cookieField), cookieField);
            BinaryPrimitives.WriteUInt16BigEndian(field, NtsExtensionField.Cookie);
            BinaryPrimitives.WriteUInt16BigEndian(field[2..], (ushort)cookieField);
            _random.Fill(cookieNonce);
            NtsCookie.Seal(ring.Current, cookieNonce, aead, _c2s, s2c, field[ExtensionFields.HeaderLength..]);
        }
        _c2s.AsSpan().Clear();
        responseLength = offset + authFieldLength;
        job = new NtsSealJob(aead, adLength, nonceOffset, ciphertextOffset, plaintextLength, count);
        return new Outcome(ResponseAction.Respond, state.IsSynchronised ? answered : ResponseReason.Unsynchronised, Nts: true);
    }

    /// <summary>
    /// Phase two, after the transmit timestamp is in: encrypts the new cookies in place and writes the
    /// SIV, with the S2C key, the response up to the authenticator as associated data (RFC 8915 §5.6).
    /// </summary>
    public void Seal(Span<byte> response, in NtsSealJob job, ReadOnlySpan<byte> s2c)
    {
        _siv.SetKey(s2c[..AeadAlgorithms.KeyLength(job.Aead)]);
        Span<byte> sealedPart = response.Slice(job.CiphertextOffset, AesSiv.TagLength + job.PlaintextLength);
        _siv.Encrypt(response[..job.AssociatedDataLength], response.Slice(job.NonceOffset, NtsExtensionField.ServerNonceLength),
            sealedPart[AesSiv.TagLength..], sealedPart);
    }

    private static void WriteHeader(Span<byte> buffer, byte version, sbyte poll, NtpTimestamp clientTransmit, in RequestContext context, ServerState state) =>
        NtpResponder.WriteTimeHeader(buffer, version, poll, clientTransmit, context, state);
}
