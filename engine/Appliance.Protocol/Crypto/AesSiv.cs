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
    private Vector128<byte> _cmacZeroDoubled;

    public AesSiv(ReadOnlySpan<byte> key, bool allowHardware = true)
    {
        int half = HalfLength(key);
        _mac = new AesEncryptor(key[..half], allowHardware);
        _ctr = new AesEncryptor(key[half..], allowHardware);
        DeriveSubkeys();
    }

    public bool IsHardwareAccelerated => _mac.IsHardwareAccelerated;

    internal AesEncryptor MacCipher => _mac;

    internal AesEncryptor CtrCipher => _ctr;

    /// <summary>dbl(CMAC(K, 0^128)): S2V's D before the first string's CMAC goes in (RFC 5297 §2.4), the same for every message under a key.</summary>
    internal Vector128<byte> CmacZeroDoubled => _cmacZeroDoubled;

    /// <summary>Re-keys in place: 32 bytes (AES-SIV-CMAC-256) or 64 (AES-SIV-CMAC-512).</summary>
    public void SetKey(ReadOnlySpan<byte> key)
    {
        int half = HalfLength(key);
        _mac.SetKey(key[..half]);
        _ctr.SetKey(key[half..]);
        DeriveSubkeys();
    }

    /// <summary>Re-keys only the CTR half (see <see cref="SetKeysLanes"/>, which may leave it for later).</summary>
    internal void SetCtrKey(ReadOnlySpan<byte> key) => _ctr.SetKey(key[HalfLength(key)..]);

    /// <summary>
    /// Re-keys one instance per lane with 256-bit keys at once (<see cref="AesSivLanes"/>): the key
    /// schedules and the CMAC subkeys of all lanes interleaved. <paramref name="macs"/> and
    /// <paramref name="ctrs"/> are the instances' two ciphers, <paramref name="macKeys"/> and
    /// <paramref name="ctrKeys"/> each lane's two key halves. Without
    /// <paramref name="ctr"/> the CTR halves are left as they were: verifying a tag alone never runs CTR
    /// (<see cref="SetCtrKey"/> later).
    /// </summary>
    internal static void SetKeysLanes(scoped ref LaneSivs sivs, scoped ref LaneCiphers macs, scoped ref LaneCiphers ctrs, scoped ref LaneBlocks macKeys, scoped ref LaneBlocks ctrKeys, bool ctr)
    {
        if (ctr)
        {
            AesEncryptor.Expand128Lanes(ref ctrs, ref ctrKeys);
        }
        AesEncryptor.Expand128Lanes(ref macs, ref macKeys);
        // L = AES(K, 0), K1 = dbl(L), K2 = dbl(K1) (RFC 4493 §2.3); CMAC(0^128) = AES(K, K1).
        var q = default(LaneBlocks);
        AesEncryptor.EncryptLanes(ref macs, ref q, 10);
        for (int lane = 0; lane < AesSivLanes.Width; lane++)
        {
            sivs[lane].SetSubkeys(q[lane]);
            q[lane] = sivs[lane]._k1;
        }
        AesEncryptor.EncryptLanes(ref macs, ref q, 10);
        for (int lane = 0; lane < AesSivLanes.Width; lane++)
        {
            sivs[lane].SetCmacZero(q[lane]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetCmacZero(Vector128<byte> cmacZero)
    {
        _cmacZero = cmacZero;
        _cmacZeroDoubled = Dbl(cmacZero);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void SetSubkeys(Vector128<byte> l)
    {
        _k1 = Dbl(l);
        _k2 = Dbl(_k1);
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
        SetSubkeys(_mac.Encrypt(Vector128<byte>.Zero));
        SetCmacZero(Cmac(Zero16));
    }

    private static ReadOnlySpan<byte> Zero16 => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// <summary>SIV ‖ C for plaintext P under associated data A and nonce N (RFC 5116 interface).</summary>
    public void Encrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        if (output.Length < plaintext.Length + TagLength)
        {
            throw new ArgumentException("output too small", nameof(output));
        }
        Vector128<byte> v = S2V(associatedData, nonce, plaintext);
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
        Vector128<byte> expected = S2V(associatedData, nonce, p);
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

    /// <summary>
    /// S2V(K, A, N, P) (RFC 5297 §2.4) with its independent CMAC chains run side by side: CMAC(A),
    /// CMAC(N) and the blocks of P that the final "xorend" does not touch do not depend on each other,
    /// so several chains advance per AES latency instead of one. Same result as the plain definition
    /// (tested against it).
    /// </summary>
    private Vector128<byte> S2V(ReadOnlySpan<byte> a, ReadOnlySpan<byte> n, ReadOnlySpan<byte> p)
    {
        int la = Blocks(a);
        int ln = Blocks(n);
        int lp = PrefixBlocks(p);
        Vector128<byte> xa = Vector128<byte>.Zero, xn = Vector128<byte>.Zero, xp = Vector128<byte>.Zero;
        int ia = 0, ip = 0;
        while (ia < la - 1 && ip < lp)
        {
            Vector128<byte> u = xa ^ Load(a, ia * 16), v = xp ^ Load(p, ip * 16);
            _mac.Encrypt2(ref u, ref v);
            xa = u;
            xp = v;
            ia++;
            ip++;
        }
        xa = _mac.Chain(a[(ia * 16)..], la - 1 - ia, xa);
        xn = _mac.Chain(n, ln - 1, xn);
        // The last blocks of A and N (with K1, or padded with K2), together with a block of P if one is left.
        Vector128<byte> fa = xa ^ LastBlock(a, la), fn = xn ^ LastBlock(n, ln);
        if (ip < lp)
        {
            Vector128<byte> v = xp ^ Load(p, ip * 16);
            _mac.Encrypt3(ref fa, ref fn, ref v);
            xp = v;
            ip++;
        }
        else
        {
            _mac.Encrypt2(ref fa, ref fn);
        }
        xp = _mac.Chain(p[(ip * 16)..], lp - ip, xp);
        return Finish(p, Dbl(_cmacZeroDoubled ^ fa) ^ fn, xp);
    }

    /// <summary>
    /// V = CMAC(T) for S2V's last string P (RFC 5297 §2.4), given D and the chain value after P's
    /// first <see cref="PrefixBlocks"/> blocks.
    /// </summary>
    private Vector128<byte> Finish(ReadOnlySpan<byte> p, Vector128<byte> d, Vector128<byte> x)
    {
        if (FinalBlocks(p, d, out Vector128<byte> first, out Vector128<byte> last) == 2)
        {
            x = _mac.Encrypt(x ^ first);
        }
        return _mac.Encrypt(x ^ last);
    }

    /// <summary>CMAC blocks of a string: the empty string is one (padded) block (RFC 4493 §2.4).</summary>
    internal static int Blocks(ReadOnlySpan<byte> s) => s.IsEmpty ? 1 : (s.Length + 15) / 16;

    /// <summary>P's blocks that run through the CMAC chain before the last 16 bytes that "xorend" touches.</summary>
    internal static int PrefixBlocks(ReadOnlySpan<byte> p) => p.Length >= 16 ? (p.Length - 16) / 16 : 0;

    /// <summary>
    /// The last one or two CMAC input blocks of T (RFC 5297 §2.4), K1 or K2 already applied to the last
    /// (RFC 4493 §2.4): T = P xorend D when P has 16 bytes or more (after its prefix blocks), else
    /// T = dbl(D) xor pad(P), one block. Returns how many; with two, the first runs through the chain
    /// before the last. Shared by the single and the lanes' S2V (<see cref="AesSivLanes"/>).
    /// </summary>
    internal int FinalBlocks(ReadOnlySpan<byte> p, Vector128<byte> d, out Vector128<byte> first, out Vector128<byte> last)
    {
        first = default;
        if (p.Length < 16)
        {
            // T is one complete block: its CMAC uses K1.
            last = Dbl(d) ^ Pad(p) ^ _k1;
            return 1;
        }
        int offset = PrefixBlocks(p) * 16;
        int extra = p.Length - offset - 16; // 0..15 bytes past one block
        Vector128<byte> end = Load(p, p.Length - 16) ^ d; // the last 16 bytes, xorend applied
        if (extra == 0)
        {
            last = end ^ _k1;
            return 1;
        }
        // Two blocks: the first has D's leading bytes over its tail, the second is the rest, padded.
        Vector128<byte> indices = Vector128<byte>.Indices;
        first = Load(p, offset) ^ Vector128.Shuffle(d, indices - Vector128.Create((byte)extra));
        Vector128<byte> rest = Vector128.Shuffle(end, indices + Vector128.Create((byte)(16 - extra)))
            & Vector128.LessThan(indices, Vector128.Create((byte)extra));
        last = (rest | (Vector128.Equals(indices, Vector128.Create((byte)extra)) & Vector128.Create((byte)0x80))) ^ _k2;
        return 2;
    }

    /// <summary>The last CMAC block of a message of <paramref name="blocks"/> blocks: ⊕ K1 if complete, else padded (10*) ⊕ K2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector128<byte> LastBlock(ReadOnlySpan<byte> message, int blocks)
    {
        int offset = (blocks - 1) * 16;
        return message.Length - offset == 16 ? Load(message, offset) ^ _k1 : Pad(message[offset..]) ^ _k2;
    }

    /// <summary>
    /// A string of under 16 bytes padded to a block: the bytes, 0x80, zeros ("10*", RFC 4493 §2.4).
    /// Built in two registers, without a buffer on the stack.
    /// </summary>
    internal static Vector128<byte> Pad(ReadOnlySpan<byte> partial)
    {
        int n = partial.Length;
        ulong lo, hi;
        if (n >= 8)
        {
            lo = BinaryPrimitives.ReadUInt64LittleEndian(partial);
            hi = ReadUpTo7(partial[8..]) | (0x80UL << (8 * (n - 8)));
        }
        else
        {
            lo = ReadUpTo7(partial) | (0x80UL << (8 * n));
            hi = 0;
        }
        return Vector128.Create(lo, hi).AsByte();
    }

    /// <summary>Up to seven bytes as a little-endian integer (byte i at bits 8i).</summary>
    private static ulong ReadUpTo7(ReadOnlySpan<byte> bytes)
    {
        ulong value = 0;
        int at = 0;
        if ((bytes.Length & 4) != 0)
        {
            value = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
            at = 4;
        }
        if ((bytes.Length & 2) != 0)
        {
            value |= (ulong)BinaryPrimitives.ReadUInt16LittleEndian(bytes[at..]) << (8 * at);
            at += 2;
        }
        if ((bytes.Length & 1) != 0)
        {
            value |= (ulong)bytes[at] << (8 * at);
        }
        return value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<byte> Load(ReadOnlySpan<byte> data, int offset) =>
        Vector128.LoadUnsafe(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(data.Slice(offset, 16)));

    /// <summary>D = dbl(D) xor CMAC(K, S) for one component before the last (RFC 5297 §2.4).</summary>
    private Vector128<byte> S2VComponents(Vector128<byte> d, ReadOnlySpan<byte> component) => Dbl(d) ^ Cmac(component);

    /// <summary>The last component: V = CMAC(T), T = Sn xorend D, or dbl(D) xor pad(Sn) when Sn is short.</summary>
    private Vector128<byte> S2VFinal(Vector128<byte> d, ReadOnlySpan<byte> last) =>
        Finish(last, d, _mac.Chain(last, PrefixBlocks(last), Vector128<byte>.Zero));

    /// <summary>AES-CMAC (RFC 4493) of <paramref name="message"/>.</summary>
    internal Vector128<byte> Cmac(ReadOnlySpan<byte> message)
    {
        int blocks = Blocks(message);
        return _mac.Encrypt(_mac.Chain(message, blocks - 1, Vector128<byte>.Zero) ^ LastBlock(message, blocks));
    }

    /// <summary>CTR with Q = V with bits 31 and 63 cleared (RFC 5297 §2.5), 128-bit big-endian counter. In place is fine.</summary>
    internal void Ctr(Vector128<byte> v, ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (input.IsEmpty)
        {
            return; // an NTS request's authenticator: the tag alone
        }
        Vector128<uint> q = CounterBase(v);
        uint block = 0;
        int offset = 0;
        // Four independent blocks at a time keep the AES unit's pipeline full.
        for (; offset + 64 <= input.Length; offset += 64, block += 4)
        {
            Vector128<byte> k0 = CounterBlock(q, block), k1 = CounterBlock(q, block + 1), k2 = CounterBlock(q, block + 2), k3 = CounterBlock(q, block + 3);
            _ctr.Encrypt4(ref k0, ref k1, ref k2, ref k3);
            (Load(input, offset) ^ k0).CopyTo(output[offset..]);
            (Load(input, offset + 16) ^ k1).CopyTo(output[(offset + 16)..]);
            (Load(input, offset + 32) ^ k2).CopyTo(output[(offset + 32)..]);
            (Load(input, offset + 48) ^ k3).CopyTo(output[(offset + 48)..]);
        }
        for (; offset + 16 <= input.Length; offset += 16, block++)
        {
            (Load(input, offset) ^ _ctr.Encrypt(CounterBlock(q, block))).CopyTo(output[offset..]);
        }
        if (offset < input.Length)
        {
            XorPartial(input[offset..], _ctr.Encrypt(CounterBlock(q, block)), output[offset..]);
        }
    }

    /// <summary>output = input ⊕ the first input.Length (under 16) bytes of <paramref name="stream"/>.</summary>
    internal static void XorPartial(ReadOnlySpan<byte> input, Vector128<byte> stream, Span<byte> output)
    {
        for (int i = 0; i < input.Length; i++)
        {
            output[i] = (byte)(input[i] ^ stream.GetElement(i));
        }
    }

    /// <summary>
    /// Q = V with bits 63 and 31 cleared (RFC 5297 §2.5), its last 32-bit word in the CPU's order. The
    /// RFC clears those bits so that counters can be added in 32 or 64 bits: the last word starts under
    /// 2^31 and a span holds under 2^31 blocks, so Q + i never carries out of it (<see cref="CounterBlock"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<uint> CounterBase(Vector128<byte> v) =>
        Vector128.Shuffle(v & Vector128.Create(0xFFFF_FFFF_FFFF_FFFFUL, 0xFFFF_FF7F_FFFF_FF7FUL).AsByte(), LastWordSwap).AsUInt32();

    /// <summary>The counter block Q + <paramref name="i"/>, big-endian as AES takes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<byte> CounterBlock(Vector128<uint> q, uint i) =>
        Vector128.Shuffle((q + Vector128.Create(0, 0, 0, i)).AsByte(), LastWordSwap);

    /// <summary>Reverses the bytes of the last 32-bit word (big-endian ↔ the CPU's order), the rest as it is.</summary>
    private static Vector128<byte> LastWordSwap => Vector128.Create((byte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 14, 13, 12);

    /// <summary>Doubling in GF(2^128) (RFC 5297 §2.3): shift left one bit, xor 0x87 on carry. Big-endian bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<byte> Dbl(Vector128<byte> value)
    {
        Vector128<ulong> lanes = value.AsUInt64();
        ulong hi = BinaryPrimitives.ReverseEndianness(lanes.GetElement(0));
        ulong lo = BinaryPrimitives.ReverseEndianness(lanes.GetElement(1));
        ulong carry = hi >> 63;
        hi = (hi << 1) | (lo >> 63);
        lo = (lo << 1) ^ (carry * 0x87);
        return Vector128.Create(BinaryPrimitives.ReverseEndianness(hi), BinaryPrimitives.ReverseEndianness(lo)).AsByte();
    }
}
