using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Appliance.Protocol.Crypto;

/// <summary>Four 128-bit values, one per lane of <see cref="AesSivLanes"/>.</summary>
[InlineArray(4)]
internal struct Quad
{
    private Vector128<byte> _first;
}

/// <summary>One AES-SIV operation for <see cref="AesSivLanes"/>, through the RFC 5116 interface as <see cref="AesSiv"/> takes it.</summary>
public ref struct SivOperation
{
    /// <summary>32 bytes (AEAD_AES_SIV_CMAC_256) or 64 (AEAD_AES_SIV_CMAC_512).</summary>
    public ReadOnlySpan<byte> Key;

    public ReadOnlySpan<byte> AssociatedData;

    public ReadOnlySpan<byte> Nonce;

    /// <summary>Seal: the plaintext. Open: SIV ‖ ciphertext.</summary>
    public ReadOnlySpan<byte> Input;

    /// <summary>Seal: SIV ‖ ciphertext (it may start 16 bytes before Input: sealing in place). Open: the plaintext.</summary>
    public Span<byte> Output;

    /// <summary>Open: whether it authenticated (on false the output is cleared).</summary>
    public bool Authentic;
}

/// <summary>Up to four <see cref="SivOperation"/>s for one call of <see cref="AesSivLanes"/>.</summary>
public ref struct SivBatch
{
    private SivOperation _0, _1, _2, _3;

    public int Count { get; private set; }

    public readonly bool IsFull => Count == AesSivLanes.Width;

    [UnscopedRef]
    public ref SivOperation this[int lane]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get
        {
            if ((uint)lane >= (uint)Count)
            {
                throw new ArgumentOutOfRangeException(nameof(lane));
            }
            if (lane == 0)
            {
                return ref _0;
            }
            if (lane == 1)
            {
                return ref _1;
            }
            return ref lane == 2 ? ref _2 : ref _3;
        }
    }

    /// <summary>Adds an operation; returns its lane.</summary>
    public int Add(ReadOnlySpan<byte> key, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (IsFull)
        {
            throw new InvalidOperationException("a batch holds four operations");
        }
        var op = new SivOperation { Key = key, AssociatedData = associatedData, Nonce = nonce, Input = input, Output = output };
        int lane = Count++;
        this[lane] = op;
        return lane;
    }

    public void Clear() => Count = 0;
}

/// <summary>
/// Four AES-SIV operations (RFC 5297) of four different requests side by side. Every CMAC chain is
/// serial: one request's S2V waits out the AES latency at each block, using a fraction of what the
/// AES unit can start per cycle. Running four requests' chains in lock step (one round of each in
/// turn, <see cref="AesEncryptor.Encrypt4"/>) fills those slots, so four cost little more than one.
/// Results are bit-for-bit those of <see cref="AesSiv"/> (tested against it). Each lane keeps its
/// key schedule and expands a key again only when it changes (the server's cookie key stays).
/// One instance per thread; nothing here allocates.
/// </summary>
public sealed class AesSivLanes
{
    public const int Width = 4;

    private readonly AesSiv[] _lanes = new AesSiv[Width];
    private readonly byte[] _keys = new byte[Width * 64];
    private readonly int[] _keyLengths = new int[Width];
    private readonly bool[] _ctrReady = new bool[Width];
    private readonly AesSiv _spare;

    public AesSivLanes(bool allowHardware = true)
    {
        for (int lane = 0; lane < Width; lane++)
        {
            _lanes[lane] = new AesSiv(new byte[32], allowHardware);
        }
        _spare = new AesSiv(new byte[32], allowHardware);
    }

    /// <summary>Seals every operation: Output = SIV ‖ ciphertext of Input.</summary>
    public void Seal(scoped ref SivBatch batch) => Run(ref batch, open: false);

    /// <summary>Opens every operation: sets <see cref="SivOperation.Authentic"/> and, when true, the plaintext in Output.</summary>
    public void Open(scoped ref SivBatch batch) => Run(ref batch, open: true);

    private void Run(scoped ref SivBatch batch, bool open)
    {
        int short256 = 0, long512 = 0, rekey = 0;
        bool rekeyCtr = false;
        for (int lane = 0; lane < batch.Count; lane++)
        {
            ref SivOperation op = ref batch[lane];
            op.Authentic = false;
            if (open ? op.Input.Length < AesSiv.TagLength || op.Output.Length < op.Input.Length - AesSiv.TagLength
                     : op.Output.Length < op.Input.Length + AesSiv.TagLength)
            {
                if (open)
                {
                    continue; // not authentic
                }
                throw new ArgumentException("output too small", nameof(batch));
            }
            // CTR runs unless there is no text: a request's authenticator is the tag alone.
            bool ctr = op.Input.Length > (open ? AesSiv.TagLength : 0);
            Span<byte> held = _keys.AsSpan(lane * 64, 64);
            if (_keyLengths[lane] == op.Key.Length && op.Key.SequenceEqual(held[..op.Key.Length]))
            {
                if (ctr && !_ctrReady[lane])
                {
                    _lanes[lane].SetCtrKey(op.Key);
                    _ctrReady[lane] = true;
                }
            }
            else if (op.Key.Length == 32)
            {
                // New 256-bit keys are expanded below, four at once.
                op.Key.CopyTo(held);
                _keyLengths[lane] = 32;
                rekey |= 1 << lane;
                rekeyCtr |= ctr;
            }
            else
            {
                _lanes[lane].SetKey(op.Key); // throws on a wrong length
                op.Key.CopyTo(held);
                _keyLengths[lane] = op.Key.Length;
                _ctrReady[lane] = true;
            }
            if (op.Key.Length == 32)
            {
                short256 |= 1 << lane;
            }
            else
            {
                long512 |= 1 << lane;
            }
        }
        if (rekey != 0)
        {
            Rekey(rekey, rekeyCtr);
        }
        // Lanes in lock step share a round count: one group per key size.
        if (short256 != 0)
        {
            RunGroup(ref batch, short256, open);
        }
        if (long512 != 0)
        {
            RunGroup(ref batch, long512, open);
        }
    }

    /// <summary>The lanes in <paramref name="mask"/> take their held 256-bit keys, schedules expanded side by side.</summary>
    private void Rekey(int mask, bool ctr)
    {
        // A lane not in the mask keeps its key: the spare takes its place in the lock step.
        int first = BitOperations.TrailingZeroCount(mask);
        AesSiv Target(int lane) => (mask & (1 << lane)) != 0 ? _lanes[lane] : _spare;
        ReadOnlySpan<byte> Key(int lane) => _keys.AsSpan(((mask & (1 << lane)) != 0 ? lane : first) * 64, 32);
        AesSiv.SetKeys4(Target(0), Target(1), Target(2), Target(3), Key(0), Key(1), Key(2), Key(3), ctr);
        for (int lane = 0; lane < Width; lane++)
        {
            if ((mask & (1 << lane)) != 0)
            {
                _ctrReady[lane] = ctr;
            }
        }
    }

    /// <summary>
    /// The lanes in <paramref name="mask"/> in lock step. A lane outside the mask repeats the first
    /// lane in it (same key, same data): the lock step needs four, the repeat's results are dropped.
    /// </summary>
    private void RunGroup(scoped ref SivBatch batch, int mask, bool open)
    {
        int first = BitOperations.TrailingZeroCount(mask);
        int m0 = Pick(mask, 0, first), m1 = Pick(mask, 1, first), m2 = Pick(mask, 2, first), m3 = Pick(mask, 3, first);
        var s = new Sivs(_lanes[m0], _lanes[m1], _lanes[m2], _lanes[m3]);
        ref SivOperation o0 = ref batch[m0], o1 = ref batch[m1], o2 = ref batch[m2], o3 = ref batch[m3];
        var a = new Four(o0.AssociatedData, o1.AssociatedData, o2.AssociatedData, o3.AssociatedData);
        var n = new Four(o0.Nonce, o1.Nonce, o2.Nonce, o3.Nonce);
        if (!open)
        {
            var p = new Four(o0.Input, o1.Input, o2.Input, o3.Input);
            Quad v = S2V(s, a, n, p);
            // V goes out first: sealing in place puts it just before the plaintext, not over it.
            for (int lane = 0; lane < Width; lane++)
            {
                if ((mask & (1 << lane)) != 0)
                {
                    v[lane].CopyTo(batch[lane].Output);
                }
            }
            // CTR needs no lock step: a lane's keystream blocks are independent already.
            for (int lane = 0; lane < Width; lane++)
            {
                if ((mask & (1 << lane)) != 0)
                {
                    ref SivOperation op = ref batch[lane];
                    _lanes[lane].Ctr(v[lane], op.Input, op.Output[AesSiv.TagLength..]);
                }
            }
            return;
        }
        Quad tags = default;
        tags[0] = Vector128.Create(o0.Input[..AesSiv.TagLength]);
        tags[1] = Vector128.Create(o1.Input[..AesSiv.TagLength]);
        tags[2] = Vector128.Create(o2.Input[..AesSiv.TagLength]);
        tags[3] = Vector128.Create(o3.Input[..AesSiv.TagLength]);
        for (int lane = 0; lane < Width; lane++)
        {
            if ((mask & (1 << lane)) != 0)
            {
                ref SivOperation op = ref batch[lane];
                _lanes[lane].Ctr(tags[lane], op.Input[AesSiv.TagLength..], op.Output);
            }
        }
        var plain = new Four(o0.Output[..(o0.Input.Length - AesSiv.TagLength)], o1.Output[..(o1.Input.Length - AesSiv.TagLength)],
            o2.Output[..(o2.Input.Length - AesSiv.TagLength)], o3.Output[..(o3.Input.Length - AesSiv.TagLength)]);
        Quad expected = S2V(s, a, n, plain);
        for (int lane = 0; lane < Width; lane++)
        {
            if ((mask & (1 << lane)) == 0)
            {
                continue;
            }
            ref SivOperation op = ref batch[lane];
            // One vector compare: as constant-time as CryptographicOperations.FixedTimeEquals.
            op.Authentic = (tags[lane] ^ expected[lane]) == Vector128<byte>.Zero;
            if (!op.Authentic)
            {
                op.Output[..(op.Input.Length - AesSiv.TagLength)].Clear();
            }
        }
    }

    private static int Pick(int mask, int lane, int first) => (mask & (1 << lane)) != 0 ? lane : first;

    /// <summary>S2V(K, A, N, P) (RFC 5297 §2.4) for four lanes: the same steps as <see cref="AesSiv"/>'s, each one four wide.</summary>
    private static Quad S2V(Sivs s, Four a, Four n, Four p)
    {
        Span<int> countA = stackalloc int[Width];
        Span<int> countN = stackalloc int[Width];
        Span<int> countP = stackalloc int[Width];
        for (int lane = 0; lane < Width; lane++)
        {
            countA[lane] = AesSiv.Blocks(a[lane]) - 1;
            countN[lane] = AesSiv.Blocks(n[lane]) - 1;
            countP[lane] = AesSiv.PrefixBlocks(p[lane]);
        }
        // A's and P's chains are independent too: as far as all eight go, they advance together.
        Quad xa = default, xn = default, xp = default;
        int both = Math.Min(Min(countA), Min(countP));
        ChainPair(s, a, p, both, ref xa, ref xp);
        Chain(s, a, countA, both, ref xa);
        Chain(s, n, countN, 0, ref xn);
        Chain(s, p, countP, both, ref xp);
        for (int lane = 0; lane < Width; lane++)
        {
            xa[lane] ^= s[lane].LastBlock(a[lane], AesSiv.Blocks(a[lane]));
            xn[lane] ^= s[lane].LastBlock(n[lane], AesSiv.Blocks(n[lane]));
        }
        s.Mac4(ref xa);
        s.Mac4(ref xn);
        Quad first = default, last = default;
        int two = 0;
        for (int lane = 0; lane < Width; lane++)
        {
            Vector128<byte> d = AesSiv.Dbl(AesSiv.Dbl(s[lane].CmacZero) ^ xa[lane]) ^ xn[lane];
            if (s[lane].FinalBlocks(p[lane], d, out first[lane], out last[lane]) == 2)
            {
                two |= 1 << lane;
            }
        }
        if (two != 0)
        {
            Quad x = default;
            for (int lane = 0; lane < Width; lane++)
            {
                x[lane] = xp[lane] ^ first[lane];
            }
            s.Mac4(ref x);
            for (int lane = 0; lane < Width; lane++)
            {
                if ((two & (1 << lane)) != 0)
                {
                    xp[lane] = x[lane];
                }
            }
        }
        for (int lane = 0; lane < Width; lane++)
        {
            xp[lane] ^= last[lane];
        }
        s.Mac4(ref xp);
        return xp;
    }

    private static int Min(ReadOnlySpan<int> counts) => Math.Min(Math.Min(counts[0], counts[1]), Math.Min(counts[2], counts[3]));

    /// <summary>
    /// The CBC-MAC chains of four strings from block <paramref name="from"/> up to their
    /// <paramref name="counts"/>: in lock step as far as all four go, then each alone.
    /// </summary>
    private static void Chain(Sivs s, Four data, ReadOnlySpan<int> counts, int from, ref Quad x)
    {
        int common = Min(counts);
        if (common > from)
        {
            // The four chain values stay in registers for the whole run.
            int length = common * 16;
            ReadOnlySpan<byte> d0 = data[0][..length], d1 = data[1][..length], d2 = data[2][..length], d3 = data[3][..length];
            AesEncryptor e0 = s[0].MacCipher, e1 = s[1].MacCipher, e2 = s[2].MacCipher, e3 = s[3].MacCipher;
            Vector128<byte> a = x[0], b = x[1], c = x[2], d = x[3];
            for (int offset = from * 16; offset < length; offset += 16)
            {
                a ^= AesSiv.Load(d0, offset);
                b ^= AesSiv.Load(d1, offset);
                c ^= AesSiv.Load(d2, offset);
                d ^= AesSiv.Load(d3, offset);
                AesEncryptor.Encrypt4(e0, e1, e2, e3, ref a, ref b, ref c, ref d);
            }
            x[0] = a;
            x[1] = b;
            x[2] = c;
            x[3] = d;
            from = common;
        }
        for (int lane = 0; lane < Width; lane++)
        {
            if (counts[lane] > from)
            {
                x[lane] = s[lane].MacCipher.Chain(data[lane][(from * 16)..], counts[lane] - from, x[lane]);
            }
        }
    }

    /// <summary>Two sets of four chains over their first <paramref name="blocks"/> blocks, eight independent blocks per step.</summary>
    private static void ChainPair(Sivs s, Four first, Four second, int blocks, ref Quad x, ref Quad y)
    {
        if (blocks <= 0)
        {
            return;
        }
        int length = blocks * 16;
        ReadOnlySpan<byte> f0 = first[0][..length], f1 = first[1][..length], f2 = first[2][..length], f3 = first[3][..length];
        ReadOnlySpan<byte> g0 = second[0][..length], g1 = second[1][..length], g2 = second[2][..length], g3 = second[3][..length];
        AesEncryptor e0 = s[0].MacCipher, e1 = s[1].MacCipher, e2 = s[2].MacCipher, e3 = s[3].MacCipher;
        Vector128<byte> a = x[0], b = x[1], c = x[2], d = x[3], p = y[0], q = y[1], r = y[2], t = y[3];
        for (int offset = 0; offset < length; offset += 16)
        {
            a ^= AesSiv.Load(f0, offset);
            b ^= AesSiv.Load(f1, offset);
            c ^= AesSiv.Load(f2, offset);
            d ^= AesSiv.Load(f3, offset);
            p ^= AesSiv.Load(g0, offset);
            q ^= AesSiv.Load(g1, offset);
            r ^= AesSiv.Load(g2, offset);
            t ^= AesSiv.Load(g3, offset);
            AesEncryptor.Encrypt4(e0, e1, e2, e3, ref a, ref b, ref c, ref d);
            AesEncryptor.Encrypt4(e0, e1, e2, e3, ref p, ref q, ref r, ref t);
        }
        x[0] = a;
        x[1] = b;
        x[2] = c;
        x[3] = d;
        y[0] = p;
        y[1] = q;
        y[2] = r;
        y[3] = t;
    }

    /// <summary>The four lanes' ciphers in lock step.</summary>
    private readonly struct Sivs(AesSiv s0, AesSiv s1, AesSiv s2, AesSiv s3)
    {
        public AesSiv this[int lane]
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => lane switch
            {
                0 => s0,
                1 => s1,
                2 => s2,
                _ => s3,
            };
        }

        /// <summary>One block per lane under its S2V (CMAC) key.</summary>
        public void Mac4(ref Quad q) => AesEncryptor.Encrypt4(s0.MacCipher, s1.MacCipher, s2.MacCipher, s3.MacCipher, ref q);

    }

    /// <summary>Four read-only strings, one per lane.</summary>
    private readonly ref struct Four(ReadOnlySpan<byte> s0, ReadOnlySpan<byte> s1, ReadOnlySpan<byte> s2, ReadOnlySpan<byte> s3)
    {
        private readonly ReadOnlySpan<byte> _0 = s0, _1 = s1, _2 = s2, _3 = s3;

        public ReadOnlySpan<byte> this[int lane]
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => lane switch
            {
                0 => _0,
                1 => _1,
                2 => _2,
                _ => _3,
            };
        }
    }
}
