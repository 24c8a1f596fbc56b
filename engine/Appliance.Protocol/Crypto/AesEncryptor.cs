using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Appliance.Protocol.Crypto;

/// <summary>
/// The AES forward cipher (FIPS 197) on AES-NI, for <see cref="AesSivLanes"/>: key schedules and
/// blocks of every lane side by side. Only encryption is needed: CMAC and CTR, the two halves of
/// AES-SIV, never run the inverse cipher. The schedules live where the caller keeps them
/// (<see cref="RoundKeys"/>, <see cref="LaneRoundKeys"/>); nothing here allocates. Nothing here runs
/// without AES-NI (<see cref="IsSupported"/>): the reference <see cref="AesSiv"/> runs on the
/// platform's AES instead.
/// </summary>
internal static class AesEncryptor
{
    /// <summary>AES-NI, and SSSE3 for the key schedule's byte shuffle (every CPU with AES-NI has it).</summary>
    public static bool IsSupported => Aes.IsSupported && Ssse3.IsSupported;

    /// <summary>One key's schedule: up to fifteen round keys (AES-256), inline, no array to bounds-check.</summary>
    [InlineArray(15)]
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
    /// AESKEYGENASSIST's is (measured here: the same speed, all lanes' schedules side by side).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Next128(Vector128<byte> key, Vector128<byte> rcon) =>
        Mix(key, Aes.EncryptLast(Ssse3.Shuffle(key, Vector128.Create(0x0C0F0E0Du).AsByte()), rcon));

    /// <summary>Rcon of AES-128's ten round keys (FIPS 197 §5.2), one per 32-bit word as <see cref="Next128"/> takes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<byte> Rcon(int round) => Vector128.Create((uint)RconBytes[round - 1]).AsByte();

    private static ReadOnlySpan<byte> RconBytes => [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36];

    /// <summary>The AES-128 schedule (FIPS 197 §5.2, Nk = 4) of one key, for a lane re-keyed alone.</summary>
    public static void Expand128(Vector128<byte> k, ref RoundKeys rk)
    {
        rk[0] = k;
        for (int round = 1; round <= 10; round++)
        {
            rk[round] = k = Next128(k, Rcon(round));
        }
    }

    /// <summary>The AES-256 schedule (FIPS 197 §5.2, Nk = 8) of the key <paramref name="a"/> ‖ <paramref name="b"/>.</summary>
    public static void Expand256(Vector128<byte> a, Vector128<byte> b, ref RoundKeys rk)
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
    /// Written out lane by lane, as <see cref="EncryptLanes"/> (<see cref="AesSivLanes.WrittenOutWidth"/>):
    /// the schedules stay in registers.
    /// </summary>
    public static void Expand128Lanes(scoped ref LaneRoundKeys lanes, scoped ref readonly LaneBlocks keys)
    {
        ref RoundKeys k0 = ref lanes[0], k1 = ref lanes[1], k2 = ref lanes[2], k3 = ref lanes[3];
        ref RoundKeys k4 = ref lanes[4], k5 = ref lanes[5], k6 = ref lanes[6], k7 = ref lanes[7];
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
    }

    /// <summary>One block under one schedule of <paramref name="rounds"/> rounds (10: AES-128, 14: AES-256).</summary>
    public static Vector128<byte> Encrypt(scoped ref readonly RoundKeys rk, int rounds, Vector128<byte> block)
    {
        block ^= rk[0];
        for (int r = 1; r < rounds; r++)
        {
            block = Aes.Encrypt(block, rk[r]);
        }
        return Aes.EncryptLast(block, rk[rounds]);
    }

    /// <summary>
    /// One block per lane, each under its lane's schedule, rounds interleaved: the lanes' CMAC chains
    /// (or CTR streams) of different requests advance together (<see cref="AesSivLanes"/>). AES-NI
    /// takes a new round every half cycle or so but each round waits out a latency of several cycles:
    /// <see cref="AesSivLanes.Width"/> independent blocks fill those slots, so they cost about what one
    /// does (measured on this machine: 11.5 ns for one chain step, 11.9 ns for eight). All lanes run
    /// <paramref name="rounds"/> rounds (10 or 14: AES-128 or AES-256); a lane whose key has another
    /// size gives garbage, which its caller drops. Written out lane by lane, one register each, no loop
    /// over lanes (<see cref="AesSivLanes.WrittenOutWidth"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void EncryptLanes(scoped ref readonly LaneRoundKeys lanes, scoped ref LaneBlocks q, int rounds)
    {
        ref readonly RoundKeys k0 = ref lanes[0], k1 = ref lanes[1], k2 = ref lanes[2], k3 = ref lanes[3];
        ref readonly RoundKeys k4 = ref lanes[4], k5 = ref lanes[5], k6 = ref lanes[6], k7 = ref lanes[7];
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
}
