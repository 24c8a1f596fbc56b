using System.Diagnostics.CodeAnalysis;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Appliance.Protocol.Crypto;

/// <summary>One 128-bit value per lane of <see cref="AesSivLanes"/>.</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneBlocks
{
    private Vector128<byte> _first;
}

/// <summary>One AES cipher per lane of <see cref="AesSivLanes"/>.</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneCiphers
{
    private AesEncryptor _first;
}

/// <summary>One AES-SIV instance per lane of <see cref="AesSivLanes"/>.</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneSivs
{
    private AesSiv _first;
}

/// <summary>One count per lane of <see cref="AesSivLanes"/>.</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneCounts
{
    private int _first;
}

/// <summary>
/// One value per lane of <see cref="AesSivLanes"/> for values an inline array cannot hold (spans):
/// one field per lane.
/// </summary>
public ref struct Lanes<T>
    where T : allows ref struct
{
    private T _0, _1, _2, _3, _4, _5, _6, _7;

    public T this[int lane]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        readonly get => lane switch
        {
            0 => _0,
            1 => _1,
            2 => _2,
            3 => _3,
            4 => _4,
            5 => _5,
            6 => _6,
            7 => _7,
            _ => throw new ArgumentOutOfRangeException(nameof(lane)),
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set
        {
            switch (lane)
            {
                case 0: _0 = value; break;
                case 1: _1 = value; break;
                case 2: _2 = value; break;
                case 3: _3 = value; break;
                case 4: _4 = value; break;
                case 5: _5 = value; break;
                case 6: _6 = value; break;
                case 7: _7 = value; break;
                default: throw new ArgumentOutOfRangeException(nameof(lane));
            }
        }
    }
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

/// <summary>Up to <see cref="AesSivLanes.Width"/> <see cref="SivOperation"/>s for one call of <see cref="AesSivLanes"/>.</summary>
public ref struct SivBatch
{
    private SivOperation _0, _1, _2, _3, _4, _5, _6, _7;

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
            switch (lane)
            {
                case 0: return ref _0;
                case 1: return ref _1;
                case 2: return ref _2;
                case 3: return ref _3;
                case 4: return ref _4;
                case 5: return ref _5;
                case 6: return ref _6;
                default: return ref _7;
            }
        }
    }

    /// <summary>Adds an operation; returns its lane.</summary>
    public int Add(ReadOnlySpan<byte> key, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (IsFull)
        {
            throw new InvalidOperationException($"a batch holds {AesSivLanes.Width} operations");
        }
        var op = new SivOperation { Key = key, AssociatedData = associatedData, Nonce = nonce, Input = input, Output = output };
        int lane = Count++;
        this[lane] = op;
        return lane;
    }

    public void Clear() => Count = 0;
}

/// <summary>
/// Eight AES-SIV operations (RFC 5297) of eight different requests side by side. Every CMAC chain is
/// serial: one request's S2V waits out the AES latency at each block, using a fraction of what the
/// AES unit can start per cycle. Running eight requests' chains in lock step (one round of each in
/// turn, <see cref="AesEncryptor.EncryptLanes"/>) fills those slots, so eight cost little more than
/// one; CTR runs in lock step too (one keystream block of every lane per step) and so do the key
/// schedules. Results are bit-for-bit those of <see cref="AesSiv"/> (tested against it). Each lane
/// keeps its key schedule and expands a key again only when it changes (the server's cookie key
/// stays). One instance per thread; nothing here allocates.
/// </summary>
public sealed class AesSivLanes
{
    /// <summary>Lanes in lock step: AES-NI's latency over its issue rate (measured, see <see cref="AesEncryptor.EncryptLanes"/>).</summary>
    public const int Width = 8;

    /// <summary>Keystream blocks per lane generated before they are applied (CTR in lock step).</summary>
    private const int StreamBlocks = 32;

    private readonly byte[] _keys = new byte[Width * 64];
    private readonly int[] _keyLengths = new int[Width];
    private readonly bool[] _ctrReady = new bool[Width];
    private readonly LaneBlocks[] _stream = new LaneBlocks[StreamBlocks];

    // Each lane's instance and its two ciphers, set once: the lock step always runs every lane on its
    // own instance, so no call stores a reference (each such store into an inline array is a call
    // to the GC's write barrier).
    private LaneSivs _sivs;
    private LaneCiphers _macs;
    private LaneCiphers _ctrs;

    public AesSivLanes(bool allowHardware = true)
    {
        for (int lane = 0; lane < Width; lane++)
        {
            _sivs[lane] = new AesSiv(new byte[32], allowHardware);
            _macs[lane] = _sivs[lane].MacCipher;
            _ctrs[lane] = _sivs[lane].CtrCipher;
        }
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
            if (op.Key.Length != 32)
            {
                long512 |= 1 << lane; // keyed below, after the lock step's re-keying
                continue;
            }
            short256 |= 1 << lane;
            // CTR runs unless there is no text: a request's authenticator is the tag alone.
            bool ctr = op.Input.Length > (open ? AesSiv.TagLength : 0);
            Span<byte> held = _keys.AsSpan(lane * 64, 32);
            if (_keyLengths[lane] == 32 && op.Key.SequenceEqual(held))
            {
                if (ctr && !_ctrReady[lane])
                {
                    _sivs[lane].SetCtrKey(op.Key);
                    _ctrReady[lane] = true;
                }
            }
            else
            {
                // New 256-bit keys are expanded below, all lanes at once.
                op.Key.CopyTo(held);
                _keyLengths[lane] = 32;
                rekey |= 1 << lane;
                rekeyCtr |= ctr;
            }
        }
        if (rekey != 0)
        {
            Rekey(rekey, rekeyCtr);
        }
        // Other key sizes one lane at a time, after Rekey: it may have written over their schedules.
        for (int lanes = long512; lanes != 0; lanes &= lanes - 1)
        {
            int lane = BitOperations.TrailingZeroCount(lanes);
            ReadOnlySpan<byte> key = batch[lane].Key;
            Span<byte> held = _keys.AsSpan(lane * 64, 64);
            if (_keyLengths[lane] != key.Length || !key.SequenceEqual(held[..key.Length]))
            {
                _sivs[lane].SetKey(key); // throws on a wrong length
                key.CopyTo(held);
                _keyLengths[lane] = key.Length;
                _ctrReady[lane] = true;
            }
        }
        // Lanes in lock step share a round count: one group per key size.
        if (short256 != 0)
        {
            RunGroup(ref batch, short256, open, rounds: 10);
        }
        if (long512 != 0)
        {
            RunGroup(ref batch, long512, open, rounds: 14);
        }
    }

    /// <summary>The lanes in <paramref name="mask"/> take their held 256-bit keys, schedules expanded side by side.</summary>
    private void Rekey(int mask, bool ctr)
    {
        // The lock step expands all eight. A lane outside the mask holding a 256-bit key gets its own
        // again (the same schedule); one holding another size gets the first lane's and is forgotten,
        // to be keyed afresh when next used.
        int first = BitOperations.TrailingZeroCount(mask);
        var macKeys = default(LaneBlocks);
        var ctrKeys = default(LaneBlocks);
        for (int lane = 0; lane < Width; lane++)
        {
            bool own = (mask & (1 << lane)) != 0 || _keyLengths[lane] == 32;
            ReadOnlySpan<byte> key = _keys.AsSpan((own ? lane : first) * 64, 32);
            macKeys[lane] = Vector128.Create(key[..16]);
            ctrKeys[lane] = Vector128.Create(key[16..]);
            if (!own)
            {
                _keyLengths[lane] = 0;
            }
            else if ((mask & (1 << lane)) != 0)
            {
                _ctrReady[lane] = ctr;
            }
            else
            {
                _ctrReady[lane] |= ctr;
            }
        }
        AesSiv.SetKeysLanes(ref _sivs, ref _macs, ref _ctrs, ref macKeys, ref ctrKeys, ctr);
    }

    /// <summary>
    /// The lanes in <paramref name="mask"/> in lock step, <paramref name="rounds"/> AES rounds (their key
    /// size). A lane outside the mask runs the first lane's data under whatever key it holds: the lock
    /// step needs all lanes, its results are dropped.
    /// </summary>
    private void RunGroup(scoped ref SivBatch batch, int mask, bool open, int rounds)
    {
        int first = BitOperations.TrailingZeroCount(mask);
        var a = default(Lanes<ReadOnlySpan<byte>>);
        var n = default(Lanes<ReadOnlySpan<byte>>);
        var text = default(Lanes<ReadOnlySpan<byte>>);
        for (int lane = 0; lane < Width; lane++)
        {
            ref SivOperation op = ref batch[(mask & (1 << lane)) != 0 ? lane : first];
            a[lane] = op.AssociatedData;
            n[lane] = op.Nonce;
            // Seal: the plaintext. Open: the ciphertext after the SIV.
            text[lane] = open ? op.Input[AesSiv.TagLength..] : op.Input;
        }
        if (!open)
        {
            LaneBlocks v = S2V(ref _sivs, ref _macs, rounds, a, n, text);
            // V goes out first: sealing in place puts it just before the plaintext, not over it.
            for (int lane = 0; lane < Width; lane++)
            {
                if ((mask & (1 << lane)) != 0)
                {
                    v[lane].CopyTo(batch[lane].Output);
                }
            }
            Ctr(ref batch, mask, rounds, ref v, text, outputOffset: AesSiv.TagLength);
            return;
        }
        var tags = default(LaneBlocks);
        for (int lane = 0; lane < Width; lane++)
        {
            tags[lane] = Vector128.Create(batch[(mask & (1 << lane)) != 0 ? lane : first].Input[..AesSiv.TagLength]);
        }
        Ctr(ref batch, mask, rounds, ref tags, text, outputOffset: 0);
        var plain = default(Lanes<ReadOnlySpan<byte>>);
        for (int lane = 0; lane < Width; lane++)
        {
            ref SivOperation op = ref batch[(mask & (1 << lane)) != 0 ? lane : first];
            // A repeated lane reads the first lane's plaintext, written by CTR above.
            plain[lane] = op.Output[..(op.Input.Length - AesSiv.TagLength)];
        }
        LaneBlocks expected = S2V(ref _sivs, ref _macs, rounds, a, n, plain);
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

    /// <summary>
    /// AES-CTR of every lane in lock step (RFC 5297 §2.5): one keystream block of each lane per step,
    /// encrypted where it stays (<see cref="StreamBlocks"/> steps ahead), then each lane in
    /// <paramref name="mask"/> applies its own. The output of a lane starts
    /// <paramref name="outputOffset"/> bytes into its operation's Output.
    /// </summary>
    private void Ctr(scoped ref SivBatch batch, int mask, int rounds, scoped ref LaneBlocks ivs, scoped in Lanes<ReadOnlySpan<byte>> input, int outputOffset)
    {
        var q = default(LaneCounters);
        int blocks = 0;
        for (int lane = 0; lane < Width; lane++)
        {
            q[lane] = AesSiv.CounterBase(ivs[lane]);
            blocks = Math.Max(blocks, (input[lane].Length + 15) / 16);
        }
        for (int done = 0; done < blocks; done += StreamBlocks)
        {
            int steps = Math.Min(StreamBlocks, blocks - done);
            for (int step = 0; step < steps; step++)
            {
                ref LaneBlocks k = ref _stream[step];
                uint block = (uint)(done + step);
                for (int lane = 0; lane < Width; lane++)
                {
                    k[lane] = AesSiv.CounterBlock(q[lane], block);
                }
                AesEncryptor.EncryptLanes(ref _ctrs, ref k, rounds);
            }
            for (int lane = 0; lane < Width; lane++)
            {
                ReadOnlySpan<byte> text = input[lane];
                int start = done * 16;
                if ((mask & (1 << lane)) == 0 || text.Length <= start)
                {
                    continue;
                }
                int length = Math.Min(steps * 16, text.Length - start);
                Xor(text.Slice(start, length), lane, batch[lane].Output.Slice(outputOffset + start, length));
            }
        }
    }

    /// <summary>output = input ⊕ <paramref name="lane"/>'s keystream from the first step on (in place is fine).</summary>
    private void Xor(ReadOnlySpan<byte> input, int lane, Span<byte> output)
    {
        int block = 0;
        for (; (block * 16) + 16 <= input.Length; block++)
        {
            (AesSiv.Load(input, block * 16) ^ _stream[block][lane]).CopyTo(output[(block * 16)..]);
        }
        if (block * 16 < input.Length)
        {
            AesSiv.XorPartial(input[(block * 16)..], _stream[block][lane], output[(block * 16)..]);
        }
    }

    /// <summary>S2V(K, A, N, P) (RFC 5297 §2.4) for all lanes: the same steps as <see cref="AesSiv"/>'s, each one across the lanes.</summary>
    private static LaneBlocks S2V(scoped ref LaneSivs s, scoped ref LaneCiphers mac, int rounds, scoped in Lanes<ReadOnlySpan<byte>> a, scoped in Lanes<ReadOnlySpan<byte>> n, scoped in Lanes<ReadOnlySpan<byte>> p)
    {
        var countA = default(LaneCounts);
        var countN = default(LaneCounts);
        var countP = default(LaneCounts);
        for (int lane = 0; lane < Width; lane++)
        {
            countA[lane] = AesSiv.Blocks(a[lane]) - 1;
            countN[lane] = AesSiv.Blocks(n[lane]) - 1;
            countP[lane] = AesSiv.PrefixBlocks(p[lane]);
        }
        var xa = default(LaneBlocks);
        var xn = default(LaneBlocks);
        var xp = default(LaneBlocks);
        Chain(ref mac, rounds, a, ref countA, ref xa);
        Chain(ref mac, rounds, n, ref countN, ref xn);
        Chain(ref mac, rounds, p, ref countP, ref xp);
        for (int lane = 0; lane < Width; lane++)
        {
            xa[lane] ^= s[lane].LastBlock(a[lane], AesSiv.Blocks(a[lane]));
            xn[lane] ^= s[lane].LastBlock(n[lane], AesSiv.Blocks(n[lane]));
        }
        AesEncryptor.EncryptLanes(ref mac, ref xa, rounds);
        AesEncryptor.EncryptLanes(ref mac, ref xn, rounds);
        var x = default(LaneBlocks);
        var last = default(LaneBlocks);
        int two = 0;
        for (int lane = 0; lane < Width; lane++)
        {
            Vector128<byte> d = AesSiv.Dbl(s[lane].CmacZeroDoubled ^ xa[lane]) ^ xn[lane];
            if (s[lane].FinalBlocks(p[lane], d, out Vector128<byte> firstBlock, out last[lane]) == 2)
            {
                two |= 1 << lane;
            }
            x[lane] = xp[lane] ^ firstBlock;
        }
        if (two != 0)
        {
            AesEncryptor.EncryptLanes(ref mac, ref x, rounds);
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
        AesEncryptor.EncryptLanes(ref mac, ref xp, rounds);
        return xp;
    }

    /// <summary>
    /// The CBC-MAC chains of all lanes' strings over their first <paramref name="counts"/> blocks: all
    /// lanes together as far as all go, then the longer ones on (a finished lane's step is dropped).
    /// </summary>
    private static void Chain(scoped ref LaneCiphers mac, int rounds, scoped in Lanes<ReadOnlySpan<byte>> data, scoped ref LaneCounts counts, scoped ref LaneBlocks x)
    {
        int common = int.MaxValue, longest = 0;
        for (int lane = 0; lane < Width; lane++)
        {
            common = Math.Min(common, counts[lane]);
            longest = Math.Max(longest, counts[lane]);
        }
        if (common > 0)
        {
            int length = common * 16;
            ReadOnlySpan<byte> d0 = data[0][..length], d1 = data[1][..length], d2 = data[2][..length], d3 = data[3][..length];
            ReadOnlySpan<byte> d4 = data[4][..length], d5 = data[5][..length], d6 = data[6][..length], d7 = data[7][..length];
            for (int offset = 0; offset < length; offset += 16)
            {
                x[0] ^= AesSiv.Load(d0, offset);
                x[1] ^= AesSiv.Load(d1, offset);
                x[2] ^= AesSiv.Load(d2, offset);
                x[3] ^= AesSiv.Load(d3, offset);
                x[4] ^= AesSiv.Load(d4, offset);
                x[5] ^= AesSiv.Load(d5, offset);
                x[6] ^= AesSiv.Load(d6, offset);
                x[7] ^= AesSiv.Load(d7, offset);
                AesEncryptor.EncryptLanes(ref mac, ref x, rounds);
            }
        }
        for (int block = common; block < longest; block++)
        {
            LaneBlocks t = x;
            for (int lane = 0; lane < Width; lane++)
            {
                if (block < counts[lane])
                {
                    t[lane] ^= AesSiv.Load(data[lane], block * 16);
                }
            }
            AesEncryptor.EncryptLanes(ref mac, ref t, rounds);
            for (int lane = 0; lane < Width; lane++)
            {
                if (block < counts[lane])
                {
                    x[lane] = t[lane];
                }
            }
        }
    }

    /// <summary>Each lane's CTR counter base (<see cref="AesSiv.CounterBase"/>).</summary>
    [InlineArray(Width)]
    private struct LaneCounters
    {
        private Vector128<uint> _first;
    }
}
