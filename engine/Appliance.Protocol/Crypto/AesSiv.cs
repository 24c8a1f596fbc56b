using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;

namespace Appliance.Protocol.Crypto;

/// <summary>AEAD algorithm identifiers from the IANA AEAD registry (RFC 5116 §6, RFC 5297 §6).</summary>
public enum AeadAlgorithm : ushort
{
    /// <summary>AEAD_AES_SIV_CMAC_256: mandatory for NTS (RFC 8915 §5.1). 32-byte key.</summary>
    AesSivCmac256 = 15,

    /// <summary>AEAD_AES_SIV_CMAC_512: optional. 64-byte key.</summary>
    AesSivCmac512 = 17,
}

public static class AeadAlgorithms
{
    public static int KeyLength(AeadAlgorithm algorithm) => algorithm switch
    {
        AeadAlgorithm.AesSivCmac256 => 32,
        AeadAlgorithm.AesSivCmac512 => 64,
        _ => 0,
    };

    public static bool IsSupported(ushort id) => id is (ushort)AeadAlgorithm.AesSivCmac256 or (ushort)AeadAlgorithm.AesSivCmac512;
}

/// <summary>
/// AES-SIV (RFC 5297): S2V over CMAC with the first half of the key, CTR with the second. Used through
/// the RFC 5116 AEAD interface as NTS uses it (RFC 8915 §5.6): the associated data and then the
/// nonce are the S2V components before the plaintext. Output is SIV (16 bytes) ‖ ciphertext.
/// One instance per thread (its key schedule is re-keyed in place); nothing here allocates.
/// </summary>
public sealed class AesSiv
{
    public const int TagLength = 16;

    private readonly AesEncryptor _mac;
    private readonly AesEncryptor _ctr;
    private Vector128<byte> _k1;
    private Vector128<byte> _k2;
    private Vector128<byte> _cmacZero;

    public AesSiv(ReadOnlySpan<byte> key, bool allowHardware = true)
    {
        int half = HalfLength(key);
        _mac = new AesEncryptor(key[..half], allowHardware);
        _ctr = new AesEncryptor(key[half..], allowHardware);
        DeriveSubkeys();
    }

    public bool IsHardwareAccelerated => _mac.IsHardwareAccelerated;

    /// <summary>Re-keys in place: 32 bytes (AES-SIV-CMAC-256) or 64 (AES-SIV-CMAC-512).</summary>
    public void SetKey(ReadOnlySpan<byte> key)
    {
        int half = HalfLength(key);
        _mac.SetKey(key[..half]);
        _ctr.SetKey(key[half..]);
        DeriveSubkeys();
    }

    private static int HalfLength(ReadOnlySpan<byte> key) => key.Length switch
    {
        32 => 16,
        64 => 32,
        _ => throw new ArgumentException("AES-SIV keys are 256 or 512 bits", nameof(key)),
    };

    private void DeriveSubkeys()
    {
        // RFC 4493 §2.3: L = AES(K, 0); K1 = dbl(L); K2 = dbl(K1).
        Vector128<byte> l = _mac.Encrypt(Vector128<byte>.Zero);
        _k1 = Dbl(l);
        _k2 = Dbl(_k1);
        _cmacZero = Cmac(Zero16);
    }

    private static ReadOnlySpan<byte> Zero16 => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// <summary>SIV ‖ C for plaintext P under associated data A and nonce N (RFC 5116 interface).</summary>
    public void Encrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        if (output.Length < plaintext.Length + TagLength)
        {
            throw new ArgumentException("output too small", nameof(output));
        }
        Vector128<byte> d = S2VComponents(_cmacZero, associatedData);
        d = S2VComponents(d, nonce);
        Vector128<byte> v = S2VFinal(d, plaintext);
        v.CopyTo(output);
        Ctr(v, plaintext, output.Slice(TagLength, plaintext.Length));
    }

    /// <summary>Verifies and decrypts SIV ‖ C; false (and a cleared output) when it is not authentic.</summary>
    public bool Decrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> sivAndCiphertext, Span<byte> plaintext)
    {
        if (sivAndCiphertext.Length < TagLength || plaintext.Length < sivAndCiphertext.Length - TagLength)
        {
            return false;
        }
        int length = sivAndCiphertext.Length - TagLength;
        Vector128<byte> v = Vector128.Create(sivAndCiphertext[..TagLength]);
        Span<byte> p = plaintext[..length];
        Ctr(v, sivAndCiphertext[TagLength..], p);
        Vector128<byte> d = S2VComponents(_cmacZero, associatedData);
        d = S2VComponents(d, nonce);
        Vector128<byte> expected = S2VFinal(d, p);
        Span<byte> a = stackalloc byte[TagLength];
        Span<byte> b = stackalloc byte[TagLength];
        v.CopyTo(a);
        expected.CopyTo(b);
        if (!CryptographicOperations.FixedTimeEquals(a, b))
        {
            p.Clear();
            return false;
        }
        return true;
    }

    /// <summary>
    /// General S2V/SIV with any number of associated-data components (RFC 5297 §2.6), for the RFC's
    /// test vectors and deterministic use. Allocation-free for the caller's arrays.
    /// </summary>
    public void EncryptComponents(ReadOnlySpan<byte[]> components, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        // The plaintext is always the last S2V string, so S2V never runs with zero strings here.
        Vector128<byte> d = _cmacZero;
        foreach (byte[] component in components)
        {
            d = S2VComponents(d, component);
        }
        Vector128<byte> v = S2VFinal(d, plaintext);
        v.CopyTo(output);
        Ctr(v, plaintext, output.Slice(TagLength, plaintext.Length));
    }

    /// <summary>D = dbl(D) xor CMAC(K, S) for one component before the last (RFC 5297 §2.4).</summary>
    private Vector128<byte> S2VComponents(Vector128<byte> d, ReadOnlySpan<byte> component) => Dbl(d) ^ Cmac(component);

    /// <summary>The last component: T = Sn xorend D, or dbl(D) xor pad(Sn) when Sn is short; V = CMAC(K, T).</summary>
    private Vector128<byte> S2VFinal(Vector128<byte> d, ReadOnlySpan<byte> last)
    {
        if (last.Length >= 16)
        {
            return CmacXorEnd(last, d);
        }
        Span<byte> padded = stackalloc byte[16];
        padded.Clear();
        last.CopyTo(padded);
        padded[last.Length] = 0x80;
        // T is one complete block: its CMAC uses K1 (RFC 4493 §2.4).
        return _mac.Encrypt(Dbl(d) ^ Vector128.Create((ReadOnlySpan<byte>)padded) ^ _k1);
    }

    /// <summary>AES-CMAC (RFC 4493) of <paramref name="message"/>.</summary>
    internal Vector128<byte> Cmac(ReadOnlySpan<byte> message) => CmacXorEnd(message, Vector128<byte>.Zero);

    /// <summary>
    /// CMAC of the message with <paramref name="xorEnd"/> xored into its last 16 bytes ("xorend",
    /// RFC 5297 §2.1; the caller guarantees ≥ 16 bytes when xorEnd is not zero).
    /// </summary>
    private Vector128<byte> CmacXorEnd(ReadOnlySpan<byte> message, Vector128<byte> xorEnd)
    {
        int n = message.Length;
        int blocks = n == 0 ? 1 : (n + 15) / 16;
        int xorFrom = xorEnd == Vector128<byte>.Zero ? int.MaxValue : n - 16;
        Span<byte> tail = stackalloc byte[16];
        xorEnd.CopyTo(tail);
        Span<byte> scratch = stackalloc byte[16];
        Vector128<byte> x = Vector128<byte>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            int offset = b * 16;
            int length = Math.Min(16, n - offset);
            Vector128<byte> m;
            if (length == 16 && offset + 16 <= xorFrom)
            {
                m = Vector128.Create(message.Slice(offset, 16));
            }
            else
            {
                scratch.Clear();
                message.Slice(offset, length).CopyTo(scratch);
                for (int i = Math.Max(0, xorFrom - offset); i < length; i++)
                {
                    scratch[i] ^= tail[offset + i - xorFrom];
                }
                if (length < 16)
                {
                    scratch[length] = 0x80;
                }
                m = Vector128.Create((ReadOnlySpan<byte>)scratch);
            }
            if (b < blocks - 1)
            {
                x = _mac.Encrypt(x ^ m);
            }
            else
            {
                x = _mac.Encrypt(x ^ m ^ (length == 16 ? _k1 : _k2));
            }
        }
        return x;
    }

    /// <summary>CTR with Q = V with bits 31 and 63 cleared (RFC 5297 §2.5), 128-bit big-endian counter.</summary>
    private void Ctr(Vector128<byte> v, ReadOnlySpan<byte> input, Span<byte> output)
    {
        Span<byte> q = stackalloc byte[16];
        v.CopyTo(q);
        q[8] &= 0x7F;
        q[12] &= 0x7F;
        ulong hi = BinaryPrimitives.ReadUInt64BigEndian(q);
        ulong lo = BinaryPrimitives.ReadUInt64BigEndian(q[8..]);
        Span<byte> counter = stackalloc byte[16];
        Span<byte> stream = stackalloc byte[16];
        for (int offset = 0; offset < input.Length; offset += 16)
        {
            BinaryPrimitives.WriteUInt64BigEndian(counter, hi);
            BinaryPrimitives.WriteUInt64BigEndian(counter[8..], lo);
            _ctr.Encrypt(Vector128.Create((ReadOnlySpan<byte>)counter)).CopyTo(stream);
            int n = Math.Min(16, input.Length - offset);
            for (int i = 0; i < n; i++)
            {
                output[offset + i] = (byte)(input[offset + i] ^ stream[i]);
            }
            if (++lo == 0)
            {
                hi++;
            }
        }
    }

    /// <summary>Doubling in GF(2^128) (RFC 5297 §2.3): shift left one bit, xor 0x87 on carry.</summary>
    private static Vector128<byte> Dbl(Vector128<byte> value)
    {
        Span<byte> b = stackalloc byte[16];
        value.CopyTo(b);
        ulong hi = BinaryPrimitives.ReadUInt64BigEndian(b);
        ulong lo = BinaryPrimitives.ReadUInt64BigEndian(b[8..]);
        ulong carry = hi >> 63;
        hi = (hi << 1) | (lo >> 63);
        lo = (lo << 1) ^ (carry * 0x87);
        BinaryPrimitives.WriteUInt64BigEndian(b, hi);
        BinaryPrimitives.WriteUInt64BigEndian(b[8..], lo);
        return Vector128.Create((ReadOnlySpan<byte>)b);
    }
}
