using System.Buffers.Binary;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>Why a cookie could not be used; a NAK reason (RFC 8915 §5.7).</summary>
public enum CookieFailure : byte
{
    None,

    /// <summary>Its key id is not in the ring: the key rotated out (or was never ours).</summary>
    UnknownKey,

    /// <summary>It does not authenticate under its key, or its contents are malformed.</summary>
    Invalid,
}

/// <summary>
/// NTS cookies (RFC 8915 §6): key id (4) ‖ nonce (16) ‖ AES-SIV(master key, AD = key id, nonce,
/// plaintext = AEAD id (2) ‖ reserved (2) ‖ C2S ‖ S2C). The reserved word keeps cookies a multiple of
/// four octets, so an extension field carries them with no padding. 104 bytes for AEAD 15, 72 for AEAD 30,
/// 168 for AEAD 17. Every cookie is sealed with AES-SIV-CMAC-256, whatever AEAD its session uses.
/// </summary>
public static class NtsCookie
{
    public const int NonceLength = 16;
    private const int HeaderLength = 4 + NonceLength;

    public static int Length(AeadAlgorithm aead) => HeaderLength + AesSiv.TagLength + 4 + (2 * AeadAlgorithms.KeyLength(aead));

    /// <summary>Shortest cookie this server makes (AEAD 30: 72 octets).</summary>
    public static int MinLength => Length(AeadAlgorithm.Aes128GcmSiv);

    /// <summary>Largest cookie this server makes (AEAD 17).</summary>
    public static int MaxLength => Length(AeadAlgorithm.AesSivCmac512);

    /// <summary>Largest cookie plaintext (AEAD 17): AEAD id, reserved, C2S, S2C.</summary>
    public const int MaxPlaintextLength = 4 + (2 * 64);

    /// <summary>Offset of the sealed part (SIV ‖ ciphertext) in a cookie.</summary>
    public const int SealedOffset = HeaderLength;

    /// <summary>Seals the keys into <paramref name="cookie"/>; returns its length. <paramref name="nonce"/> must be fresh random.</summary>
    public static int Seal(CookieKey key, ReadOnlySpan<byte> nonce, AeadAlgorithm aead, ReadOnlySpan<byte> c2s, ReadOnlySpan<byte> s2c, Span<byte> cookie)
    {
        Span<byte> plaintext = stackalloc byte[MaxPlaintextLength];
        plaintext = plaintext[..Pack(aead, c2s, s2c, plaintext)];
        WriteHeader(key, cookie);
        nonce[..NonceLength].CopyTo(cookie[4..]);
        int length = Length(aead);
        key.Cipher.Encrypt(cookie[..4], nonce[..NonceLength], plaintext, cookie[HeaderLength..length]);
        plaintext.Clear();
        return length;
    }

    /// <summary>The plaintext of a cookie: AEAD id ‖ reserved (0) ‖ C2S ‖ S2C. Returns its length.</summary>
    public static int Pack(AeadAlgorithm aead, ReadOnlySpan<byte> c2s, ReadOnlySpan<byte> s2c, Span<byte> plaintext)
    {
        int keyLength = AeadAlgorithms.KeyLength(aead);
        BinaryPrimitives.WriteUInt16BigEndian(plaintext, (ushort)aead);
        plaintext[2] = 0;
        plaintext[3] = 0;
        c2s[..keyLength].CopyTo(plaintext[4..]);
        s2c[..keyLength].CopyTo(plaintext[(4 + keyLength)..]);
        return 4 + (2 * keyLength);
    }

    /// <summary>Writes the key id, the associated data of the sealed part; the nonce (fresh random) follows it.</summary>
    public static void WriteHeader(CookieKey key, Span<byte> cookie) => BinaryPrimitives.WriteUInt32BigEndian(cookie, key.Id);

    /// <summary>The ring's key for <paramref name="cookie"/>, or why there is none.</summary>
    public static CookieFailure Find(CookieKeyRing ring, ReadOnlySpan<byte> cookie, out CookieKey? key)
    {
        key = null;
        if (cookie.Length < MinLength || cookie.Length > MaxLength)
        {
            return CookieFailure.Invalid;
        }
        key = ring.Find(BinaryPrimitives.ReadUInt32BigEndian(cookie));
        return key is null ? CookieFailure.UnknownKey : CookieFailure.None;
    }

    /// <summary>Opens a cookie with the ring; on success the keys are in <paramref name="c2s"/>/<paramref name="s2c"/> (64 bytes each, room for AEAD 17).</summary>
    public static CookieFailure Open(CookieKeyRing ring, ReadOnlySpan<byte> cookie, Span<byte> c2s, Span<byte> s2c, out AeadAlgorithm aead)
    {
        aead = default;
        CookieFailure found = Find(ring, cookie, out CookieKey? key);
        if (found != CookieFailure.None)
        {
            return found;
        }
        ReadOnlySpan<byte> sealedPart = cookie[HeaderLength..];
        Span<byte> plaintext = stackalloc byte[MaxPlaintextLength];
        plaintext = plaintext[..(sealedPart.Length - AesSiv.TagLength)];
        CookieFailure result = key!.Cipher.Decrypt(cookie[..4], cookie.Slice(4, NonceLength), sealedPart, plaintext)
            ? Unpack(plaintext, c2s, s2c, out aead)
            : CookieFailure.Invalid;
        plaintext.Clear();
        return result;
    }

    /// <summary>The keys out of an authentic cookie's plaintext (see <see cref="Pack"/>).</summary>
    public static CookieFailure Unpack(ReadOnlySpan<byte> plaintext, Span<byte> c2s, Span<byte> s2c, out AeadAlgorithm aead)
    {
        aead = default;
        ushort id = BinaryPrimitives.ReadUInt16BigEndian(plaintext);
        int keyLength = AeadAlgorithms.KeyLength((AeadAlgorithm)id);
        if (keyLength == 0 || plaintext.Length != 4 + (2 * keyLength))
        {
            return CookieFailure.Invalid;
        }
        aead = (AeadAlgorithm)id;
        plaintext.Slice(4, keyLength).CopyTo(c2s);
        plaintext.Slice(4 + keyLength, keyLength).CopyTo(s2c);
        return CookieFailure.None;
    }
}
