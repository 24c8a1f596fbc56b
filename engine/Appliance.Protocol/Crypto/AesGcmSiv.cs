using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

namespace Appliance.Protocol.Crypto;

/// <summary>
/// AEAD_AES_128_GCM_SIV (RFC 8452; NTS AEAD 30), through the RFC 5116 interface, its arguments in
/// <see cref="AesSiv"/>'s order (associated data, nonce, input, output): a 16-byte key, a
/// nonce of exactly 12 bytes, one associated-data string; the output is ciphertext ‖ tag (the tag
/// last, unlike <see cref="AesSiv"/>'s SIV first). The key is the key-generating key: every nonce
/// derives its own message-authentication key (POLYVAL's H) and message-encryption key (§4).
/// On AES-NI with PCLMULQDQ (<see cref="IsHardwareAccelerated"/>) everything runs in registers and
/// allocates nothing; elsewhere the platform's AES and a constant-time software POLYVAL do the same
/// steps (the per-nonce AES key makes a new platform context per operation there). Written step for
/// step as the RFC writes them; the two paths are held to each other and to the RFC's Appendix C
/// vectors by the tests. Operations are safe to share between threads; <see cref="SetKey"/> (the NTP
/// path re-keys one instance per request) is not, while another thread uses the instance.
/// </summary>
public sealed class AesGcmSiv : INtsAead
{
    public const int KeyLength = 16;
    public const int NonceLength = 12;
    public const int TagLength = 16;

    private const int BlockLength = 16;

    // P_MAX and A_MAX (RFC 8452 §6) are far beyond a datagram: a span's length is the bound here.
    private readonly bool _hardware;
    private readonly byte[] _key = new byte[KeyLength];
    private AesEncryptor.RoundKeys _kgk;
    private readonly PlatformBlockCipher? _platformKgk;
    private readonly PlatformBlockCipher? _platformEnc;
    private readonly Lock _gate = new();
    private bool _keyed;

    /// <summary>AES-NI and PCLMULQDQ: the allocation-free path.</summary>
    public static bool IsHardwareAccelerated => AesEncryptor.IsSupported && Pclmulqdq.IsSupported;

    /// <param name="key">The 16-byte key-generating key.</param>
    public AesGcmSiv(ReadOnlySpan<byte> key) : this(key, IsHardwareAccelerated)
    {
    }

    /// <summary>For the tests: the portable path on any CPU (<paramref name="hardware"/> false).</summary>
    internal AesGcmSiv(ReadOnlySpan<byte> key, bool hardware)
    {
        _hardware = hardware && IsHardwareAccelerated;
        if (!_hardware)
        {
            _platformKgk = new PlatformBlockCipher();
            _platformEnc = new PlatformBlockCipher();
        }
        SetKey(key);
    }

    public AeadAlgorithm Algorithm => AeadAlgorithm.Aes128GcmSiv;

    /// <summary>Whether this instance runs on AES-NI and PCLMULQDQ (else the portable path).</summary>
    internal bool IsHardware => _hardware;

    /// <summary>
    /// Re-keys with a 16-byte key-generating key; the same key again costs a comparison. On the
    /// hardware path it expands the key schedule in place and allocates nothing.
    /// </summary>
    public void SetKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException("AES-128-GCM-SIV keys are 128 bits", nameof(key));
        }
        if (key.SequenceEqual(_key) && _keyed)
        {
            return;
        }
        key.CopyTo(_key);
        _keyed = true;
        if (_hardware)
        {
            AesEncryptor.Expand128(Vector128.Create(key), ref _kgk);
        }
        else
        {
            lock (_gate)
            {
                _platformKgk!.SetKey(key);
            }
        }
    }

    /// <summary>Ciphertext ‖ tag of <paramref name="plaintext"/> into <paramref name="output"/> (RFC 8452 §4); the two may be the same span.</summary>
    public void Encrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        CheckNonce(nonce);
        if (output.Length < plaintext.Length + TagLength)
        {
            throw new ArgumentException("output too small", nameof(output));
        }
        Span<byte> tag = stackalloc byte[BlockLength];
        if (_hardware)
        {
            DeriveKeys(nonce, out Vector128<ulong> h, out AesEncryptor.RoundKeys enc);
            Vector128<byte> t = Tag(h, in enc, nonce, associatedData, plaintext);
            t.CopyTo(tag);
            Ctr(in enc, t, plaintext, output);
        }
        else
        {
            lock (_gate)
            {
                Span<byte> h = stackalloc byte[BlockLength];
                DerivePortable(nonce, h);
                TagPortable(h, nonce, associatedData, plaintext, tag);
                CtrPortable(tag, plaintext, output);
            }
        }
        tag.CopyTo(output[plaintext.Length..]);
    }

    /// <summary>
    /// Opens ciphertext ‖ tag (RFC 8452 §5) into <paramref name="plaintext"/> (it may be the input's
    /// span); false, and the plaintext cleared, when it is not authentic or the nonce is not 12 bytes.
    /// </summary>
    public bool Decrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        if (nonce.Length != NonceLength || ciphertext.Length < TagLength || plaintext.Length < ciphertext.Length - TagLength)
        {
            return false;
        }
        int length = ciphertext.Length - TagLength;
        Span<byte> received = stackalloc byte[BlockLength];
        Span<byte> expected = stackalloc byte[BlockLength];
        ciphertext[length..].CopyTo(received);
        Span<byte> p = plaintext[..length];
        if (_hardware)
        {
            DeriveKeys(nonce, out Vector128<ulong> h, out AesEncryptor.RoundKeys enc);
            Ctr(in enc, Vector128.Create((ReadOnlySpan<byte>)received), ciphertext[..length], p);
            Tag(h, in enc, nonce, associatedData, p).CopyTo(expected);
        }
        else
        {
            lock (_gate)
            {
                Span<byte> h = stackalloc byte[BlockLength];
                DerivePortable(nonce, h);
                CtrPortable(received, ciphertext[..length], p);
                TagPortable(h, nonce, associatedData, p, expected);
            }
        }
        if (!CryptographicOperations.FixedTimeEquals(expected, received))
        {
            p.Clear();
            return false;
        }
        return true;
    }

    private static void CheckNonce(ReadOnlySpan<byte> nonce)
    {
        if (nonce.Length != NonceLength)
        {
            throw new ArgumentException("AES-GCM-SIV nonces are 96 bits (RFC 8452 §4)", nameof(nonce));
        }
    }

    // ---- AES-NI and PCLMULQDQ ----

    /// <summary>
    /// RFC 8452 §4: AES(K, LE32(i) ‖ N) for i = 0..3, the first 8 bytes of each kept; the first two
    /// make the message-authentication key, the last two the message-encryption key (AES-128).
    /// </summary>
    private void DeriveKeys(ReadOnlySpan<byte> nonce, out Vector128<ulong> h, out AesEncryptor.RoundKeys enc)
    {
        Span<byte> block = stackalloc byte[BlockLength];
        nonce.CopyTo(block[4..]);
        Vector128<uint> n = Vector128.Create((ReadOnlySpan<byte>)block).AsUInt32();
        Vector128<ulong> b0 = AesEncryptor.Encrypt(in _kgk, 10, n.WithElement(0, 0u).AsByte()).AsUInt64();
        Vector128<ulong> b1 = AesEncryptor.Encrypt(in _kgk, 10, n.WithElement(0, 1u).AsByte()).AsUInt64();
        Vector128<ulong> b2 = AesEncryptor.Encrypt(in _kgk, 10, n.WithElement(0, 2u).AsByte()).AsUInt64();
        Vector128<ulong> b3 = AesEncryptor.Encrypt(in _kgk, 10, n.WithElement(0, 3u).AsByte()).AsUInt64();
        h = Vector128.Create(b0.GetElement(0), b1.GetElement(0));
        enc = default;
        AesEncryptor.Expand128(Vector128.Create(b2.GetElement(0), b3.GetElement(0)).AsByte(), ref enc);
    }

    /// <summary>
    /// The tag (§4): S = POLYVAL(H, A padded ‖ P padded ‖ LE64(bits of A) ‖ LE64(bits of P)); its
    /// first 12 bytes ⊕ the nonce, the top bit of its last byte cleared; AES under the encryption key.
    /// </summary>
    private static Vector128<byte> Tag(Vector128<ulong> h, scoped ref readonly AesEncryptor.RoundKeys enc, ReadOnlySpan<byte> nonce,
        ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext)
    {
        Vector128<ulong> s = Vector128<ulong>.Zero;
        s = Absorb(s, h, associatedData);
        s = Absorb(s, h, plaintext);
        s = Dot(s ^ Vector128.Create((ulong)associatedData.Length * 8, (ulong)plaintext.Length * 8), h);
        Span<byte> n = stackalloc byte[BlockLength];
        nonce.CopyTo(n);
        Vector128<byte> masked = (s.AsByte() ^ Vector128.Create((ReadOnlySpan<byte>)n)) & Vector128.Create(0xFFFFFFFF_FFFFFFFFUL, 0x7FFFFFFF_FFFFFFFFUL).AsByte();
        return AesEncryptor.Encrypt(in enc, 10, masked);
    }

    /// <summary>POLYVAL's Horner steps over <paramref name="data"/>, its last block padded with zeros (§3).</summary>
    private static Vector128<ulong> Absorb(Vector128<ulong> s, Vector128<ulong> h, ReadOnlySpan<byte> data)
    {
        int whole = data.Length & ~(BlockLength - 1);
        for (int i = 0; i < whole; i += BlockLength)
        {
            s = Dot(s ^ Vector128.Create(data.Slice(i, BlockLength)).AsUInt64(), h);
        }
        if (whole < data.Length)
        {
            Span<byte> last = stackalloc byte[BlockLength];
            last.Clear();
            data[whole..].CopyTo(last);
            s = Dot(s ^ Vector128.Create((ReadOnlySpan<byte>)last).AsUInt64(), h);
        }
        return s;
    }

    /// <summary>
    /// dot(a, b) = a · b · x⁻¹²⁸ in GF(2¹²⁸) mod x¹²⁸ + x¹²⁷ + x¹²⁶ + x¹²¹ + 1 (RFC 8452 §3), in POLYVAL's
    /// own little-endian order: four carry-less products make the 256-bit a · b, and two folds by the
    /// constant 0xC2000000_00000000 (x⁶⁴ times the polynomial's low terms, reflected) divide by x¹²⁸,
    /// 64 bits at a time (Gueron and Lindell's Montgomery reduction, as their reference code does it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Dot(Vector128<ulong> a, Vector128<ulong> b)
    {
        Vector128<ulong> lo = Pclmulqdq.CarrylessMultiply(a, b, 0x00);
        Vector128<ulong> hi = Pclmulqdq.CarrylessMultiply(a, b, 0x11);
        Vector128<ulong> mid = Pclmulqdq.CarrylessMultiply(a, b, 0x10) ^ Pclmulqdq.CarrylessMultiply(a, b, 0x01);
        lo ^= Sse2.ShiftLeftLogical128BitLane(mid, 8);
        hi ^= Sse2.ShiftRightLogical128BitLane(mid, 8);
        Vector128<ulong> poly = Vector128.Create(1UL, 0xC2000000_00000000UL);
        lo = Sse2.Shuffle(lo.AsUInt32(), 0x4E).AsUInt64() ^ Pclmulqdq.CarrylessMultiply(lo, poly, 0x10);
        lo = Sse2.Shuffle(lo.AsUInt32(), 0x4E).AsUInt64() ^ Pclmulqdq.CarrylessMultiply(lo, poly, 0x10);
        return hi ^ lo;
    }

    /// <summary>
    /// AES-CTR (§4): the counter block is the tag with the top bit of its last byte set; its first 32
    /// bits are a little-endian counter, incremented mod 2³² per block.
    /// </summary>
    private static void Ctr(scoped ref readonly AesEncryptor.RoundKeys enc, Vector128<byte> tag, ReadOnlySpan<byte> input, Span<byte> output)
    {
        Vector128<uint> counter = (tag | Vector128.Create(0UL, 0x80000000_00000000UL).AsByte()).AsUInt32();
        Vector128<uint> one = Vector128.Create(1u, 0, 0, 0);
        int whole = input.Length & ~(BlockLength - 1);
        for (int i = 0; i < whole; i += BlockLength)
        {
            Vector128<byte> keystream = AesEncryptor.Encrypt(in enc, 10, counter.AsByte());
            (Vector128.Create(input.Slice(i, BlockLength)) ^ keystream).CopyTo(output.Slice(i, BlockLength));
            counter += one;
        }
        if (whole < input.Length)
        {
            Span<byte> keystream = stackalloc byte[BlockLength];
            AesEncryptor.Encrypt(in enc, 10, counter.AsByte()).CopyTo(keystream);
            for (int i = whole; i < input.Length; i++)
            {
                output[i] = (byte)(input[i] ^ keystream[i - whole]);
            }
        }
    }

    // ---- portable: the platform's AES, POLYVAL in software ----

    /// <summary>§4 as <see cref="DeriveKeys"/>, over the platform's AES: H into <paramref name="h"/>, the encryption key into its context.</summary>
    private void DerivePortable(ReadOnlySpan<byte> nonce, Span<byte> h)
    {
        Span<byte> block = stackalloc byte[BlockLength];
        Span<byte> derived = stackalloc byte[4 * BlockLength];
        nonce.CopyTo(block[4..]);
        for (int i = 0; i < 4; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(block, (uint)i);
            _platformKgk!.Encrypt(block, derived.Slice(i * BlockLength, BlockLength));
        }
        Span<byte> encKey = stackalloc byte[KeyLength];
        derived[..8].CopyTo(h);
        derived.Slice(16, 8).CopyTo(h[8..]);
        derived.Slice(32, 8).CopyTo(encKey);
        derived.Slice(48, 8).CopyTo(encKey[8..]);
        _platformEnc!.SetKey(encKey);
        CryptographicOperations.ZeroMemory(derived);
        CryptographicOperations.ZeroMemory(encKey);
    }

    private void TagPortable(ReadOnlySpan<byte> h, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> tag)
    {
        var hv = new UInt128(BinaryPrimitives.ReadUInt64LittleEndian(h[8..]), BinaryPrimitives.ReadUInt64LittleEndian(h));
        UInt128 s = 0;
        s = AbsorbPortable(s, hv, associatedData);
        s = AbsorbPortable(s, hv, plaintext);
        s = DotPortable(s ^ new UInt128((ulong)plaintext.Length * 8, (ulong)associatedData.Length * 8), hv);
        BinaryPrimitives.WriteUInt128LittleEndian(tag, s);
        for (int i = 0; i < NonceLength; i++)
        {
            tag[i] ^= nonce[i];
        }
        tag[15] &= 0x7F;
        _platformEnc!.Encrypt(tag, tag);
    }

    private static UInt128 AbsorbPortable(UInt128 s, UInt128 h, ReadOnlySpan<byte> data)
    {
        Span<byte> block = stackalloc byte[BlockLength];
        for (int i = 0; i < data.Length; i += BlockLength)
        {
            block.Clear();
            data.Slice(i, Math.Min(BlockLength, data.Length - i)).CopyTo(block);
            s = DotPortable(s ^ BinaryPrimitives.ReadUInt128LittleEndian(block), h);
        }
        return s;
    }

    /// <summary><see cref="Dot"/> in software: the same four products and two folds, each product a constant-time shift-and-mask loop.</summary>
    internal static UInt128 DotPortable(UInt128 a, UInt128 b)
    {
        ulong a0 = (ulong)a, a1 = (ulong)(a >> 64), b0 = (ulong)b, b1 = (ulong)(b >> 64);
        (ulong l0, ulong h0) = Clmul(a0, b0);
        (ulong l1, ulong h1) = Clmul(a1, b1);
        (ulong m0, ulong m1) = Clmul(a0, b1);
        (ulong n0, ulong n1) = Clmul(a1, b0);
        ulong w0 = l0, w1 = h0 ^ m0 ^ n0, w2 = l1 ^ m1 ^ n1, w3 = h1;
        const ulong Fold = 0xC2000000_00000000UL;
        (ulong r0, ulong r1) = Clmul(w0, Fold);
        (w0, w1) = (w1 ^ r0, w0 ^ r1);
        (r0, r1) = Clmul(w0, Fold);
        (w0, w1) = (w1 ^ r0, w0 ^ r1);
        return new UInt128(w3 ^ w1, w2 ^ w0);
    }

    /// <summary>The 128-bit carry-less product of two 64-bit values, without a branch or a table on the data.</summary>
    private static (ulong Lo, ulong Hi) Clmul(ulong a, ulong b)
    {
        ulong lo = 0, hi = 0;
        for (int i = 0; i < 64; i++)
        {
            ulong mask = 0UL - ((b >> i) & 1);
            lo ^= (a << i) & mask;
            hi ^= i == 0 ? 0 : (a >> (64 - i)) & mask; // a shift by 64 is a shift by 0 in C#
        }
        return (lo, hi);
    }

    private void CtrPortable(ReadOnlySpan<byte> tag, ReadOnlySpan<byte> input, Span<byte> output)
    {
        Span<byte> counter = stackalloc byte[BlockLength];
        Span<byte> keystream = stackalloc byte[BlockLength];
        tag.CopyTo(counter);
        counter[15] |= 0x80;
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(counter);
        for (int i = 0; i < input.Length; i += BlockLength)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(counter, count++);
            _platformEnc!.Encrypt(counter, keystream);
            int n = Math.Min(BlockLength, input.Length - i);
            for (int j = 0; j < n; j++)
            {
                output[i + j] = (byte)(input[i + j] ^ keystream[j]);
            }
        }
    }
}
