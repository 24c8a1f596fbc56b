using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Appliance.Protocol.Crypto;

/// <summary>
/// The AES forward cipher (FIPS 197) for 128- and 256-bit keys, on AES-NI when the CPU has it and in
/// portable managed code otherwise. Only encryption is needed: CMAC and CTR, the two halves of
/// AES-SIV, never run the inverse cipher. The key schedule is expanded once into arrays owned by the
/// instance; encrypting allocates nothing and does not mutate the instance (safe to share for reading).
/// </summary>
public sealed class AesEncryptor
{
    private RoundKeys _roundKeys;
    private readonly byte[] _softwareKeys = new byte[15 * 16];
    private readonly bool _useAesNi;

    public AesEncryptor(ReadOnlySpan<byte> key, bool allowHardware = true)
    {
        _useAesNi = allowHardware && Aes.IsSupported && Ssse3.IsSupported;
        SetKey(key);
    }

    /// <summary>True when this instance runs on AES-NI.</summary>
    public bool IsHardwareAccelerated => _useAesNi;

    public int Rounds { get; private set; }

    /// <summary>Re-keys in place (16 or 32 bytes) without allocating.</summary>
    public void SetKey(ReadOnlySpan<byte> key)
    {
        if (key.Length is not (16 or 32))
        {
            throw new ArgumentException("AES keys here are 128 or 256 bits", nameof(key));
        }
        Rounds = key.Length == 16 ? 10 : 14;
        if (_useAesNi)
        {
            // On AES-NI: the same schedule as FIPS 197 §5.2, in a few dozen cycles (a fresh C2S and
            // S2C key per NTS request makes this part of the hot path).
            if (key.Length == 16)
            {
                Expand128(Vector128.Create(key), ref _roundKeys);
            }
            else
            {
                Expand256(Vector128.Create(key[..16]), Vector128.Create(key[16..]), ref _roundKeys);
            }
            return;
        }
        SoftwareExpand(key, _softwareKeys, Rounds);
    }

    /// <summary>Fifteen round keys inline in the instance: no array, no bounds checks on the hot path.</summary>
    [System.Runtime.CompilerServices.InlineArray(15)]
    internal struct RoundKeys
    {
        private Vector128<byte> _first;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Mix(Vector128<byte> key, Vector128<byte> t)
    {
        // Each word ⊕ every word before it (FIPS 197 §5.2: w[i] = w[i-Nk] ⊕ temp, word by word), in two shifts.
        key ^= Sse2.ShiftLeftLogical128BitLane(key, 4);
        key ^= Sse2.ShiftLeftLogical128BitLane(key, 8);
        return key ^ t;
    }

    /// <summary>
    /// The next AES-128 round key (FIPS 197 §5.2): w[i] = w[i-4] ⊕ SubWord(RotWord(w[i-1])) ⊕ Rcon for
    /// the first word, each later word ⊕ the one before. SubWord(RotWord) of the last word comes from
    /// AESENCLAST of that word (rotated) in every column (ShiftRows moves nothing when all columns are
    /// equal) with Rcon as the round key, so the constant need not be an instruction literal as
    /// AESKEYGENASSIST's is (measured here: the same speed, eight schedules side by side).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Next128(Vector128<byte> key, Vector128<byte> rcon) =>
        Mix(key, Aes.EncryptLast(Ssse3.Shuffle(key, Vector128.Create(0x0C0F0E0Du).AsByte()), rcon));

    /// <summary>Rcon of AES-128's ten round keys (FIPS 197 §5.2), one per 32-bit word as <see cref="Next128"/> takes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Rcon(int round) => Vector128.Create((uint)RconBytes[round - 1]).AsByte();

    private static ReadOnlySpan<byte> RconBytes => [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36];

    private static void Expand128(Vector128<byte> k, ref RoundKeys rk)
    {
        rk[0] = k;
        for (int round = 1; round <= 10; round++)
        {
            rk[round] = k = Next128(k, Rcon(round));
        }
    }

    private static void Expand256(Vector128<byte> a, Vector128<byte> b, ref RoundKeys rk)
    {
        rk[0] = a;
        rk[1] = b;
        // Even round keys take RotWord+SubWord+Rcon of the previous key's last word (0xFF),
        // odd ones SubWord alone of the even key's last word (0xAA, rcon 0) — FIPS 197 §5.2, Nk = 8.
        rk[2] = a = Mix(a, Sse2.Shuffle(Aes.KeygenAssist(b, 0x01).AsInt32(), 0xFF).AsByte());
        rk[3] = b = Mix(b, Sse2.Shuffle(Aes.KeygenAssist(a, 0x00).AsInt32(), 0xAA).AsByte());
        rk[4] = a = Mix(a, Sse2.Shuffle(Aes.KeygenAssist(b, 0x02).AsInt32(), 0xFF).AsByte());
        rk[5] = b = Mix(b, Sse2.Shuffle(Aes.KeygenAssist(a, 0x00).AsInt32(), 0xAA).AsByte());
        rk[6] = a = Mix(a, Sse2.Shuffle(Aes.KeygenAssist(b, 0x04).AsInt32(), 0xFF).AsByte());
        rk[7] = b = Mix(b, Sse2.Shuffle(Aes.KeygenAssist(a, 0x00).AsInt32(), 0xAA).AsByte());
        rk[8] = a = Mix(a, Sse2.Shuffle(Aes.KeygenAssist(b, 0x08).AsInt32(), 0xFF).AsByte());
        rk[9] = b = Mix(b, Sse2.Shuffle(Aes.KeygenAssist(a, 0x00).AsInt32(), 0xAA).AsByte());
        rk[10] = a = Mix(a, Sse2.Shuffle(Aes.KeygenAssist(b, 0x10).AsInt32(), 0xFF).AsByte());
        rk[11] = b = Mix(b, Sse2.Shuffle(Aes.KeygenAssist(a, 0x00).AsInt32(), 0xAA).AsByte());
        rk[12] = a = Mix(a, Sse2.Shuffle(Aes.KeygenAssist(b, 0x20).AsInt32(), 0xFF).AsByte());
        rk[13] = b = Mix(b, Sse2.Shuffle(Aes.KeygenAssist(a, 0x00).AsInt32(), 0xAA).AsByte());
        rk[14] = Mix(a, Sse2.Shuffle(Aes.KeygenAssist(b, 0x40).AsInt32(), 0xFF).AsByte());
    }

    /// <summary>
    /// The AES-128 key schedules of all lanes at once (<see cref="AesSivLanes"/>: a fresh C2S and S2C
    /// key per request): each step waits on the step before, so the lanes' independent schedules
    /// interleaved cost about what one does. <paramref name="keys"/> holds each lane's 16-byte key.
    /// </summary>
    internal static void Expand128Lanes(scoped ref LaneCiphers lanes, scoped ref LaneBlocks keys)
    {
        if (!lanes[0]._useAesNi)
        {
            SoftwareExpandLanes(ref lanes, ref keys);
            return;
        }
        // Written out for eight lanes, as EncryptLanes: the schedules stay in registers.
        ref RoundKeys k0 = ref lanes[0]._roundKeys, k1 = ref lanes[1]._roundKeys, k2 = ref lanes[2]._roundKeys, k3 = ref lanes[3]._roundKeys;
        ref RoundKeys k4 = ref lanes[4]._roundKeys, k5 = ref lanes[5]._roundKeys, k6 = ref lanes[6]._roundKeys, k7 = ref lanes[7]._roundKeys;
        Vector128<byte> a = keys[0], b = keys[1], c = keys[2], d = keys[3], e = keys[4], f = keys[5], g = keys[6], h = keys[7];
        k0[0] = a; k1[0] = b; k2[0] = c; k3[0] = d; k4[0] = e; k5[0] = f; k6[0] = g; k7[0] = h;
        for (int round = 1; round <= 10; round++)
        {
            Vector128<byte> rcon = Rcon(round);
            k0[round] = a = Next128(a, rcon);
            k1[round] = b = Next128(b, rcon);
            k2[round] = c = Next128(c, rcon);
            k3[round] = d = Next128(d, rcon);
            k4[round] = e = Next128(e, rcon);
            k5[round] = f = Next128(f, rcon);
            k6[round] = g = Next128(g, rcon);
            k7[round] = h = Next128(h, rcon);
        }
        for (int lane = 0; lane < AesSivLanes.Width; lane++)
        {
            lanes[lane].Rounds = 10;
        }
    }

    /// <summary>The portable path of <see cref="Expand128Lanes"/>: one lane after another.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SoftwareExpandLanes(scoped ref LaneCiphers lanes, scoped ref LaneBlocks keys)
    {
        Span<byte> key = stackalloc byte[16];
        for (int lane = 0; lane < AesSivLanes.Width; lane++)
        {
            keys[lane].CopyTo(key);
            lanes[lane].SetKey(key);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<byte> Encrypt(Vector128<byte> block)
    {
        if (_useAesNi)
        {
            ref readonly RoundKeys rk = ref _roundKeys;
            block ^= rk[0];
            block = Aes.Encrypt(block, rk[1]);
            block = Aes.Encrypt(block, rk[2]);
            block = Aes.Encrypt(block, rk[3]);
            block = Aes.Encrypt(block, rk[4]);
            block = Aes.Encrypt(block, rk[5]);
            block = Aes.Encrypt(block, rk[6]);
            block = Aes.Encrypt(block, rk[7]);
            block = Aes.Encrypt(block, rk[8]);
            block = Aes.Encrypt(block, rk[9]);
            if (Rounds == 10)
            {
                return Aes.EncryptLast(block, rk[10]);
            }
            block = Aes.Encrypt(block, rk[10]);
            block = Aes.Encrypt(block, rk[11]);
            block = Aes.Encrypt(block, rk[12]);
            block = Aes.Encrypt(block, rk[13]);
            return Aes.EncryptLast(block, rk[14]);
        }
        Span<byte> state = stackalloc byte[16];
        block.CopyTo(state);
        SoftwareEncrypt(state, _softwareKeys, Rounds);
        return Vector128.Create((ReadOnlySpan<byte>)state);
    }

    /// <summary>
    /// Two independent blocks, rounds interleaved: AES-NI has a latency of several cycles per round but
    /// takes a new round every cycle, so a second chain costs almost nothing (CMAC chains are serial).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Encrypt2(ref Vector128<byte> a, ref Vector128<byte> b)
    {
        if (!_useAesNi)
        {
            a = Encrypt(a);
            b = Encrypt(b);
            return;
        }
        ref readonly RoundKeys rk = ref _roundKeys;
        Vector128<byte> k = rk[0];
        Vector128<byte> x = a ^ k, y = b ^ k;
        int last = Rounds;
        for (int r = 1; r < last; r++)
        {
            k = rk[r];
            x = Aes.Encrypt(x, k);
            y = Aes.Encrypt(y, k);
        }
        k = rk[last];
        a = Aes.EncryptLast(x, k);
        b = Aes.EncryptLast(y, k);
    }

    /// <summary>
    /// The CBC-MAC chain of CMAC over <paramref name="blocks"/> full blocks of <paramref name="data"/>:
    /// x = E(x ⊕ block) for each, with the round keys held in registers for the whole run.
    /// </summary>
    public Vector128<byte> Chain(ReadOnlySpan<byte> data, int blocks, Vector128<byte> x)
    {
        if (blocks <= 0)
        {
            return x;
        }
        ref byte start = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(data[..(blocks * 16)]);
        if (!_useAesNi)
        {
            for (int i = 0; i < blocks; i++)
            {
                x = Encrypt(x ^ Vector128.LoadUnsafe(ref start, (nuint)(i * 16)));
            }
            return x;
        }
        ref readonly RoundKeys rk = ref _roundKeys;
        Vector128<byte> k0 = rk[0], k1 = rk[1], k2 = rk[2], k3 = rk[3], k4 = rk[4], k5 = rk[5], k6 = rk[6], k7 = rk[7], k8 = rk[8], k9 = rk[9], k10 = rk[10];
        if (Rounds == 10)
        {
            for (int i = 0; i < blocks; i++)
            {
                Vector128<byte> b = x ^ Vector128.LoadUnsafe(ref start, (nuint)(i * 16)) ^ k0;
                b = Aes.Encrypt(b, k1);
                b = Aes.Encrypt(b, k2);
                b = Aes.Encrypt(b, k3);
                b = Aes.Encrypt(b, k4);
                b = Aes.Encrypt(b, k5);
                b = Aes.Encrypt(b, k6);
                b = Aes.Encrypt(b, k7);
                b = Aes.Encrypt(b, k8);
                b = Aes.Encrypt(b, k9);
                x = Aes.EncryptLast(b, k10);
            }
            return x;
        }
        for (int i = 0; i < blocks; i++)
        {
            x = Encrypt(x ^ Vector128.LoadUnsafe(ref start, (nuint)(i * 16)));
        }
        return x;
    }

    /// <summary>Three independent blocks, rounds interleaved.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Encrypt3(ref Vector128<byte> a, ref Vector128<byte> b, ref Vector128<byte> c)
    {
        if (!_useAesNi)
        {
            a = Encrypt(a);
            b = Encrypt(b);
            c = Encrypt(c);
            return;
        }
        ref readonly RoundKeys rk = ref _roundKeys;
        Vector128<byte> k = rk[0];
        Vector128<byte> x = a ^ k, y = b ^ k, z = c ^ k;
        int last = Rounds;
        for (int r = 1; r < last; r++)
        {
            k = rk[r];
            x = Aes.Encrypt(x, k);
            y = Aes.Encrypt(y, k);
            z = Aes.Encrypt(z, k);
        }
        k = rk[last];
        a = Aes.EncryptLast(x, k);
        b = Aes.EncryptLast(y, k);
        c = Aes.EncryptLast(z, k);
    }

    /// <summary>
    /// Four independent blocks (CTR keystream): two interleaved pairs; the pairs do not depend on each
    /// other, so the CPU runs them overlapped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Encrypt4(ref Vector128<byte> a, ref Vector128<byte> b, ref Vector128<byte> c, ref Vector128<byte> d)
    {
        Encrypt2(ref a, ref b);
        Encrypt2(ref c, ref d);
    }

    /// <summary>
    /// One block per lane, each under its lane's key, rounds interleaved: the lanes' CMAC chains (or
    /// CTR streams) of different requests advance together (<see cref="AesSivLanes"/>). AES-NI takes
    /// a new round every half cycle or so but each round waits out a latency of several cycles: eight
    /// independent blocks fill those slots, so eight cost about what one does (measured on this
    /// machine: 11.5 ns for one chain step, 11.9 ns for eight). All lanes run <paramref name="rounds"/>
    /// rounds (10 or 14: AES-128 or AES-256); a lane whose key has another size gives garbage, which
    /// its caller drops. Written out for <see cref="AesSivLanes.Width"/> = 8: eight registers, no loop over lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void EncryptLanes(scoped ref readonly LaneCiphers lanes, scoped ref LaneBlocks q, int rounds)
    {
        if (!lanes[0]._useAesNi)
        {
            for (int lane = 0; lane < AesSivLanes.Width; lane++)
            {
                q[lane] = lanes[lane].Encrypt(q[lane]);
            }
            return;
        }
        ref readonly RoundKeys k0 = ref lanes[0]._roundKeys, k1 = ref lanes[1]._roundKeys, k2 = ref lanes[2]._roundKeys, k3 = ref lanes[3]._roundKeys;
        ref readonly RoundKeys k4 = ref lanes[4]._roundKeys, k5 = ref lanes[5]._roundKeys, k6 = ref lanes[6]._roundKeys, k7 = ref lanes[7]._roundKeys;
        Vector128<byte> a = q[0] ^ k0[0], b = q[1] ^ k1[0], c = q[2] ^ k2[0], d = q[3] ^ k3[0];
        Vector128<byte> e = q[4] ^ k4[0], f = q[5] ^ k5[0], g = q[6] ^ k6[0], h = q[7] ^ k7[0];
        for (int r = 1; r < rounds; r++)
        {
            a = Aes.Encrypt(a, k0[r]);
            b = Aes.Encrypt(b, k1[r]);
            c = Aes.Encrypt(c, k2[r]);
            d = Aes.Encrypt(d, k3[r]);
            e = Aes.Encrypt(e, k4[r]);
            f = Aes.Encrypt(f, k5[r]);
            g = Aes.Encrypt(g, k6[r]);
            h = Aes.Encrypt(h, k7[r]);
        }
        q[0] = Aes.EncryptLast(a, k0[rounds]);
        q[1] = Aes.EncryptLast(b, k1[rounds]);
        q[2] = Aes.EncryptLast(c, k2[rounds]);
        q[3] = Aes.EncryptLast(d, k3[rounds]);
        q[4] = Aes.EncryptLast(e, k4[rounds]);
        q[5] = Aes.EncryptLast(f, k5[rounds]);
        q[6] = Aes.EncryptLast(g, k6[rounds]);
        q[7] = Aes.EncryptLast(h, k7[rounds]);
    }

    public void EncryptBlock(ReadOnlySpan<byte> input, Span<byte> output) =>
        Encrypt(Vector128.Create(input[..16])).CopyTo(output);

    // ---- portable implementation (FIPS 197 §5.1, §5.2) ----

    private static ReadOnlySpan<byte> SBox =>
    [
        0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
        0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
        0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
        0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
        0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
        0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
        0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
        0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
        0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
        0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
        0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
        0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
        0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
        0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
        0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
        0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
    ];

    private static void SoftwareExpand(ReadOnlySpan<byte> key, Span<byte> w, int rounds)
    {
        int nk = key.Length / 4;
        key.CopyTo(w);
        byte rcon = 1;
        Span<byte> t = stackalloc byte[4];
        for (int i = nk; i < 4 * (rounds + 1); i++)
        {
            w.Slice((i - 1) * 4, 4).CopyTo(t);
            if (i % nk == 0)
            {
                byte first = t[0];
                t[0] = (byte)(SBox[t[1]] ^ rcon);
                t[1] = SBox[t[2]];
                t[2] = SBox[t[3]];
                t[3] = SBox[first];
                rcon = XTime(rcon);
            }
            else if (nk > 6 && i % nk == 4)
            {
                for (int j = 0; j < 4; j++)
                {
                    t[j] = SBox[t[j]];
                }
            }
            for (int j = 0; j < 4; j++)
            {
                w[(i * 4) + j] = (byte)(w[((i - nk) * 4) + j] ^ t[j]);
            }
        }
    }

    private static byte XTime(byte b) => (byte)((b << 1) ^ ((b & 0x80) != 0 ? 0x1b : 0));

    private static void SoftwareEncrypt(Span<byte> s, ReadOnlySpan<byte> w, int rounds)
    {
        AddRoundKey(s, w[..16]);
        Span<byte> tmp = stackalloc byte[16];
        for (int round = 1; round <= rounds; round++)
        {
            // SubBytes and ShiftRows together: the state is column-major, row r shifts left by r.
            for (int c = 0; c < 4; c++)
            {
                for (int r = 0; r < 4; r++)
                {
                    tmp[(c * 4) + r] = SBox[s[(((c + r) & 3) * 4) + r]];
                }
            }
            if (round != rounds)
            {
                for (int c = 0; c < 4; c++)
                {
                    int o = c * 4;
                    byte a0 = tmp[o], a1 = tmp[o + 1], a2 = tmp[o + 2], a3 = tmp[o + 3];
                    byte all = (byte)(a0 ^ a1 ^ a2 ^ a3);
                    s[o] = (byte)(a0 ^ all ^ XTime((byte)(a0 ^ a1)));
                    s[o + 1] = (byte)(a1 ^ all ^ XTime((byte)(a1 ^ a2)));
                    s[o + 2] = (byte)(a2 ^ all ^ XTime((byte)(a2 ^ a3)));
                    s[o + 3] = (byte)(a3 ^ all ^ XTime((byte)(a3 ^ a0)));
                }
            }
            else
            {
                tmp.CopyTo(s);
            }
            AddRoundKey(s, w.Slice(round * 16, 16));
        }
    }

    private static void AddRoundKey(Span<byte> s, ReadOnlySpan<byte> k)
    {
        for (int i = 0; i < 16; i++)
        {
            s[i] ^= k[i];
        }
    }
}
