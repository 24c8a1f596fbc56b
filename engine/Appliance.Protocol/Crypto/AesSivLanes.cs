using System.Numerics;
using System.Runtime.Intrinsics;
using static Appliance.Protocol.Crypto.SivBlocks;

namespace Appliance.Protocol.Crypto;

/// <summary>
/// <see cref="Width"/> AES-SIV operations (RFC 5297) of as many different requests side by side, on
/// AES-NI: the NTP path's one fast path. Every CMAC chain is serial: one request's S2V waits out the
/// AES latency at each block, using a fraction of what the AES unit can start per cycle. Running the
/// lanes' chains in lock step (one round of each in turn, <see cref="AesEncryptor.EncryptLanes"/>)
/// fills those slots, so all lanes cost little more than one; CTR runs in lock step too (one keystream
/// block of every lane per step) and so do the key schedules. Results are bit for bit those of the
/// reference <see cref="AesSiv"/> (tested against it). Each lane keeps its own key state (schedules,
/// CMAC subkeys) inline in the instance and expands a key again only when it changes (the server's
/// cookie key stays). Needs AES-NI (<see cref="IsSupported"/>). One instance per thread; nothing here
/// allocates.
/// </summary>
public sealed class AesSivLanes
{
    /// <summary>
    /// Lanes in lock step: AES-NI's latency over its issue rate. On this CPU one chain step costs
    /// 11.5 ns, four side by side 11.5 ns, eight 11.9 ns (<see cref="AesEncryptor.EncryptLanes"/>).
    /// </summary>
    public const int Width = 8;

    /// <summary>
    /// The lane count of the routines written out lane by lane, one register or field per lane and no
    /// loop over lanes, so that the JIT keeps them in registers: <see cref="AesEncryptor.EncryptLanes"/>,
    /// <see cref="AesEncryptor.Expand128Lanes"/>, the common blocks of <see cref="Chain"/>,
    /// <see cref="Lanes{T}"/> and <see cref="SivBatch"/>. Changing <see cref="Width"/> means writing
    /// those again: <see cref="WidthIsWrittenOut"/> does not compile until then.
    /// </summary>
    internal const int WrittenOutWidth = 8;

    /// <summary>
    /// Compiles only when <see cref="Width"/> equals <see cref="WrittenOutWidth"/>: otherwise one side
    /// of the | is negative, and a negative constant has no byte. (Lane masks are ints: any width up to
    /// 32 would do for them.)
    /// </summary>
    internal const byte WidthIsWrittenOut = (Width - WrittenOutWidth) | (WrittenOutWidth - Width);

    /// <summary>Keystream blocks per lane generated before they are applied (CTR in lock step).</summary>
    private const int StreamBlocks = 32;

    private readonly byte[] _keys = new byte[Width * 64];
    private readonly int[] _keyLengths = new int[Width];
    private readonly bool[] _ctrReady = new bool[Width];
    private readonly LaneBlocks[] _stream = new LaneBlocks[StreamBlocks];

    // Each lane's key state, inline in the instance (no object per lane, so no reference is ever
    // stored: each such store is a call to the GC's write barrier): the S2V (CMAC) and CTR key
    // schedules, the CMAC subkeys K1 and K2 (RFC 4493 §2.3) and dbl(CMAC(K, 0^128)), S2V's D before
    // its first string (RFC 5297 §2.4), which depends on the key alone.
    private LaneRoundKeys _macKeys;
    private LaneRoundKeys _ctrKeys;
    private LaneBlocks _k1;
    private LaneBlocks _k2;
    private LaneBlocks _cmacZeroDoubled;

    /// <exception cref="PlatformNotSupportedException">The CPU has no AES-NI (<see cref="IsSupported"/>).</exception>
    public AesSivLanes()
    {
        if (!IsSupported)
        {
            throw new PlatformNotSupportedException("AesSivLanes runs on AES-NI, which this CPU lacks; use AesSiv (the platform's AES) one operation at a time");
        }
    }

    /// <summary>Whether this CPU has AES-NI, which the lanes run on.</summary>
    public static bool IsSupported => AesEncryptor.IsSupported;

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
                    AesEncryptor.Expand128(Vector128.Create(op.Key[16..]), ref _ctrKeys[lane]);
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
                SetKey512(lane, key);
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

    /// <summary>
    /// The lanes in <paramref name="mask"/> take their held 256-bit keys (AEAD_AES_SIV_CMAC_256: two
    /// AES-128 keys, RFC 5297 §2.2), schedules and subkeys made side by side.
    /// </summary>
    private void Rekey(int mask, bool ctr)
    {
        // The lock step expands all lanes. A lane outside the mask holding a 256-bit key gets its own
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
        // Without CTR (verifying a tag alone never runs it) the CTR schedules stay as they were, for
        // Run to expand when a lane's key is next used with text.
        if (ctr)
        {
            AesEncryptor.Expand128Lanes(ref _ctrKeys, in ctrKeys);
        }
        AesEncryptor.Expand128Lanes(ref _macKeys, in macKeys);
        // L = AES(K, 0), K1 = dbl(L), K2 = dbl(K1) (RFC 4493 §2.3); CMAC(0^128) = AES(K, 0^128 ⊕ K1),
        // one complete block.
        var q = default(LaneBlocks);
        AesEncryptor.EncryptLanes(in _macKeys, ref q, 10);
        for (int lane = 0; lane < Width; lane++)
        {
            _k1[lane] = Dbl(q[lane]);
            _k2[lane] = Dbl(_k1[lane]);
            q[lane] = _k1[lane];
        }
        AesEncryptor.EncryptLanes(in _macKeys, ref q, 10);
        for (int lane = 0; lane < Width; lane++)
        {
            _cmacZeroDoubled[lane] = Dbl(q[lane]);
        }
    }

    /// <summary>
    /// One lane takes a 512-bit key (AEAD_AES_SIV_CMAC_512: two AES-256 keys, RFC 5297 §2.2), alone:
    /// the lock step runs one key size, and these are rare.
    /// </summary>
    private void SetKey512(int lane, ReadOnlySpan<byte> key)
    {
        if (key.Length != 64)
        {
            throw new ArgumentException("AES-SIV keys are 256 or 512 bits", nameof(key));
        }
        ref AesEncryptor.RoundKeys mac = ref _macKeys[lane];
        AesEncryptor.Expand256(Vector128.Create(key[..16]), Vector128.Create(key[16..32]), ref mac);
        AesEncryptor.Expand256(Vector128.Create(key[32..48]), Vector128.Create(key[48..]), ref _ctrKeys[lane]);
        // The subkeys as in Rekey (RFC 4493 §2.3).
        Vector128<byte> k1 = Dbl(AesEncryptor.Encrypt(in mac, 14, Vector128<byte>.Zero));
        _k1[lane] = k1;
        _k2[lane] = Dbl(k1);
        _cmacZeroDoubled[lane] = Dbl(AesEncryptor.Encrypt(in mac, 14, k1));
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
            LaneBlocks v = S2V(rounds, a, n, text);
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
        LaneBlocks expected = S2V(rounds, a, n, plain);
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
            q[lane] = CounterBase(ivs[lane]);
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
                    k[lane] = CounterBlock(q[lane], block);
                }
                AesEncryptor.EncryptLanes(in _ctrKeys, ref k, rounds);
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
            (Load(input, block * 16) ^ _stream[block][lane]).CopyTo(output[(block * 16)..]);
        }
        if (block * 16 < input.Length)
        {
            XorPartial(input[(block * 16)..], _stream[block][lane], output[(block * 16)..]);
        }
    }

    /// <summary>
    /// S2V(K, A, N, P) (RFC 5297 §2.4) for all lanes: D = dbl(dbl(CMAC(0)) ⊕ CMAC(A)) ⊕ CMAC(N), then
    /// V = CMAC(T) for P; each step across the lanes, their CMAC chains of A, N and P's prefix in lock step.
    /// </summary>
    private LaneBlocks S2V(int rounds, scoped in Lanes<ReadOnlySpan<byte>> a, scoped in Lanes<ReadOnlySpan<byte>> n, scoped in Lanes<ReadOnlySpan<byte>> p)
    {
        var countA = default(LaneCounts);
        var countN = default(LaneCounts);
        var countP = default(LaneCounts);
        for (int lane = 0; lane < Width; lane++)
        {
            countA[lane] = Blocks(a[lane]) - 1;
            countN[lane] = Blocks(n[lane]) - 1;
            countP[lane] = PrefixBlocks(p[lane]);
        }
        var xa = default(LaneBlocks);
        var xn = default(LaneBlocks);
        var xp = default(LaneBlocks);
        Chain(in _macKeys, rounds, a, ref countA, ref xa);
        Chain(in _macKeys, rounds, n, ref countN, ref xn);
        Chain(in _macKeys, rounds, p, ref countP, ref xp);
        for (int lane = 0; lane < Width; lane++)
        {
            xa[lane] ^= LastBlock(a[lane], Blocks(a[lane]), _k1[lane], _k2[lane]);
            xn[lane] ^= LastBlock(n[lane], Blocks(n[lane]), _k1[lane], _k2[lane]);
        }
        AesEncryptor.EncryptLanes(in _macKeys, ref xa, rounds);
        AesEncryptor.EncryptLanes(in _macKeys, ref xn, rounds);
        var x = default(LaneBlocks);
        var last = default(LaneBlocks);
        int two = 0;
        for (int lane = 0; lane < Width; lane++)
        {
            Vector128<byte> d = Dbl(_cmacZeroDoubled[lane] ^ xa[lane]) ^ xn[lane];
            if (FinalBlocks(p[lane], d, _k1[lane], _k2[lane], out Vector128<byte> firstBlock, out last[lane]) == 2)
            {
                two |= 1 << lane;
            }
            x[lane] = xp[lane] ^ firstBlock;
        }
        if (two != 0)
        {
            AesEncryptor.EncryptLanes(in _macKeys, ref x, rounds);
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
        AesEncryptor.EncryptLanes(in _macKeys, ref xp, rounds);
        return xp;
    }

    /// <summary>
    /// The CBC-MAC chains of all lanes' strings over their first <paramref name="counts"/> blocks: all
    /// lanes together as far as all go (written out lane by lane, <see cref="WrittenOutWidth"/>), then
    /// the longer ones on (a finished lane's step is dropped).
    /// </summary>
    private static void Chain(scoped ref readonly LaneRoundKeys mac, int rounds, scoped in Lanes<ReadOnlySpan<byte>> data, scoped ref LaneCounts counts, scoped ref LaneBlocks x)
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
                x[0] ^= Load(d0, offset);
                x[1] ^= Load(d1, offset);
                x[2] ^= Load(d2, offset);
                x[3] ^= Load(d3, offset);
                x[4] ^= Load(d4, offset);
                x[5] ^= Load(d5, offset);
                x[6] ^= Load(d6, offset);
                x[7] ^= Load(d7, offset);
                AesEncryptor.EncryptLanes(in mac, ref x, rounds);
            }
        }
        for (int block = common; block < longest; block++)
        {
            LaneBlocks t = x;
            for (int lane = 0; lane < Width; lane++)
            {
                if (block < counts[lane])
                {
                    t[lane] ^= Load(data[lane], block * 16);
                }
            }
            AesEncryptor.EncryptLanes(in mac, ref t, rounds);
            for (int lane = 0; lane < Width; lane++)
            {
                if (block < counts[lane])
                {
                    x[lane] = t[lane];
                }
            }
        }
    }
}
