using System.Security.Cryptography;

namespace Appliance.Protocol.Crypto;

/// <summary>
/// AES-SIV (RFC 5297), the reference: S2V over AES-CMAC (RFC 4493) with the first half of the key,
/// CTR with the second, written step for step as the two RFCs write them, over the platform's AES
/// (System.Security.Cryptography: OpenSSL here, on AES-NI or, without it, OpenSSL's own
/// constant-time code). Used where one operation at a time is enough: NTS-KE cookies, the upstream
/// NTS client, the NTP path on a CPU without AES-NI (<see cref="Nts.NtsPacketHandler"/>), and the
/// tests, which hold <see cref="AesSivLanes"/>, the NTP path's fast path, to it bit for bit.
/// Through the RFC 5116 AEAD interface as NTS uses it (RFC 8915 §5.6): the associated data and then
/// the nonce are the S2V strings before the plaintext. Output is SIV (16 bytes) ‖ ciphertext.
/// Safe to share between threads: operations take turns on the instance's AES contexts (a lock).
/// Sealing and opening allocate nothing; <see cref="SetKey"/> allocates the platform's new contexts.
/// </summary>
public sealed class AesSiv : INtsAead
{
    public const int TagLength = 16;

    /// <summary>The AES block, and every S2V and CMAC value: 128 bits.</summary>
    private const int BlockLength = 16;

    private readonly Lock _gate = new();

    // RFC 5297 §2.6: K1, the leftmost half of the key, for S2V; K2, the rightmost, for CTR.
    private readonly PlatformBlockCipher _s2vKey = new();
    private readonly PlatformBlockCipher _ctrKey = new();

    // The CMAC subkeys of K1 (RFC 4493 §2.3, also named K1 and K2 there): they depend on the key alone.
    private readonly byte[] _subkey1 = new byte[BlockLength];
    private readonly byte[] _subkey2 = new byte[BlockLength];

    /// <param name="key">32 bytes (AEAD_AES_SIV_CMAC_256) or 64 (AEAD_AES_SIV_CMAC_512).</param>
    public AesSiv(ReadOnlySpan<byte> key) => SetKey(key);

    /// <summary>AES-SIV-CMAC-256 or -512, by the key's length.</summary>
    public AeadAlgorithm Algorithm { get; private set; }

    /// <summary>Re-keys: 32 bytes (AES-SIV-CMAC-256: two AES-128 keys) or 64 (AES-SIV-CMAC-512: two AES-256 keys).</summary>
    public void SetKey(ReadOnlySpan<byte> key)
    {
        if (key.Length is not (32 or 64))
        {
            throw new ArgumentException("AES-SIV keys are 256 or 512 bits", nameof(key));
        }
        int half = key.Length / 2;
        lock (_gate)
        {
            Algorithm = key.Length == 32 ? AeadAlgorithm.AesSivCmac256 : AeadAlgorithm.AesSivCmac512;
            _s2vKey.SetKey(key[..half]);
            _ctrKey.SetKey(key[half..]);
            // RFC 4493 §2.3: L = AES-128(K, const_Zero); K1 = dbl(L); K2 = dbl(K1) (the same
            // doubling as S2V's, RFC 5297 §2.3).
            _s2vKey.Encrypt(Zero, _subkey1);
            Dbl(_subkey1);
            _subkey1.CopyTo(_subkey2, 0);
            Dbl(_subkey2);
        }
    }

    /// <summary>SIV ‖ C for plaintext P under associated data A and nonce N (RFC 5297 §2.6, as RFC 5116's AEAD).</summary>
    public void Encrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        CheckRoom(plaintext, output);
        Span<byte> d = stackalloc byte[BlockLength];
        lock (_gate)
        {
            S2VStart(d);
            S2VNext(d, associatedData);
            S2VNext(d, nonce);
            Seal(d, plaintext, output);
        }
    }

    /// <summary>Opens <paramref name="ciphertext"/>, SIV ‖ C (RFC 5297 §2.7); false (and a cleared output) when it is not authentic.</summary>
    public bool Decrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        if (ciphertext.Length < TagLength || plaintext.Length < ciphertext.Length - TagLength)
        {
            return false;
        }
        Span<byte> v = stackalloc byte[BlockLength];
        Span<byte> d = stackalloc byte[BlockLength];
        Span<byte> t = stackalloc byte[BlockLength];
        Span<byte> p = plaintext[..(ciphertext.Length - TagLength)];
        lock (_gate)
        {
            // V is the first block, C the rest; P = CTR(K2, V, C); T = S2V(K1, A, N, P); P only if T = V.
            ciphertext[..TagLength].CopyTo(v);
            Ctr(v, ciphertext[TagLength..], p);
            S2VStart(d);
            S2VNext(d, associatedData);
            S2VNext(d, nonce);
            S2VLast(d, p, t);
        }
        if (!CryptographicOperations.FixedTimeEquals(t, v))
        {
            p.Clear();
            return false;
        }
        return true;
    }

    /// <summary>
    /// SIV ‖ C with any number of associated-data strings (RFC 5297 §2.6): S2V over
    /// <paramref name="components"/> and then the plaintext. For the RFC's test vectors (A.1, A.2).
    /// </summary>
    public void EncryptComponents(ReadOnlySpan<byte[]> components, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        CheckRoom(plaintext, output);
        Span<byte> d = stackalloc byte[BlockLength];
        lock (_gate)
        {
            S2VStart(d);
            foreach (byte[] component in components)
            {
                S2VNext(d, component);
            }
            Seal(d, plaintext, output);
        }
    }

    private static void CheckRoom(ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        if (output.Length < plaintext.Length + TagLength)
        {
            throw new ArgumentException("output too small", nameof(output));
        }
    }

    /// <summary>
    /// The end of encryption (RFC 5297 §2.6), S2V's strings before the plaintext taken into
    /// <paramref name="d"/>: V = S2V(K1, …, P) with P, always the last string (so S2V never runs with
    /// none, §2.4's n = 0); C = CTR(K2, V, P); the output is V ‖ C.
    /// </summary>
    private void Seal(ReadOnlySpan<byte> d, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        Span<byte> v = stackalloc byte[BlockLength];
        S2VLast(d, plaintext, v);
        v.CopyTo(output);
        Ctr(v, plaintext, output.Slice(TagLength, plaintext.Length));
    }

    /// <summary>AES-CMAC (RFC 4493) of <paramref name="message"/> under K1, the key's first half (for the RFC 4493 vectors).</summary>
    internal void Cmac(ReadOnlySpan<byte> message, Span<byte> mac)
    {
        lock (_gate)
        {
            Cmac(message, [], mac);
        }
    }

    // ---- S2V (RFC 5297 §2.4), in three steps so that the strings need not be in one list:
    //   D = AES-CMAC(K, <zero>)
    //   for i = 1 to n-1: D = dbl(D) xor AES-CMAC(K, Si)
    //   if len(Sn) >= 128: T = Sn xorend D, else T = dbl(D) xor pad(Sn)
    //   V = AES-CMAC(K, T)

    /// <summary>D = AES-CMAC(K, &lt;zero&gt;).</summary>
    private void S2VStart(Span<byte> d) => Cmac(Zero, [], d);

    /// <summary>D = dbl(D) xor AES-CMAC(K, Si), for every string before the last.</summary>
    private void S2VNext(Span<byte> d, ReadOnlySpan<byte> s)
    {
        Span<byte> mac = stackalloc byte[BlockLength];
        Cmac(s, [], mac);
        Dbl(d);
        Xor(d, mac);
    }

    /// <summary>V = AES-CMAC(K, T) for the last string Sn.</summary>
    private void S2VLast(ReadOnlySpan<byte> d, ReadOnlySpan<byte> last, Span<byte> v)
    {
        if (last.Length >= BlockLength)
        {
            // T = Sn xorend D: D xored onto Sn's last 16 bytes. CMAC reads T from Sn, D applied as it goes.
            Cmac(last, d, v);
            return;
        }
        Span<byte> t = stackalloc byte[BlockLength];
        Span<byte> padded = stackalloc byte[BlockLength];
        d.CopyTo(t);
        Dbl(t);
        Pad(last, padded);
        Xor(t, padded);
        Cmac(t, [], v);
    }

    // ---- AES-CMAC (RFC 4493 §2.4) ----

    /// <summary>
    /// T = AES-CMAC(K, M), M being <paramref name="message"/> with <paramref name="xorEnd"/> (16 bytes,
    /// or none) xored onto its last 16 bytes: S2V's "xorend" (RFC 5297 §2.1), applied as M is read.
    /// </summary>
    private void Cmac(ReadOnlySpan<byte> message, ReadOnlySpan<byte> xorEnd, Span<byte> mac)
    {
        // Steps 2 and 3: n blocks, at least one; the last is complete or not.
        int n = (message.Length + BlockLength - 1) / BlockLength;
        bool complete = n > 0 && message.Length % BlockLength == 0;
        n = Math.Max(n, 1);
        // Step 5 and the loop of step 6: X = AES(K, X xor M_i) for i = 1 to n-1.
        Span<byte> x = stackalloc byte[BlockLength];
        Span<byte> block = stackalloc byte[BlockLength];
        x.Clear();
        for (int i = 0; i < n - 1; i++)
        {
            ReadBlock(message, i, xorEnd, block);
            Xor(x, block);
            _s2vKey.Encrypt(x, x);
        }
        // Step 4: M_last = M_n xor K1 if complete, else padding(M_n) xor K2.
        int length = ReadBlock(message, n - 1, xorEnd, block);
        if (complete)
        {
            Xor(block, _subkey1);
        }
        else
        {
            Pad(block[..length], block);
            Xor(block, _subkey2);
        }
        // The end of step 6: T = AES(K, M_last xor X).
        Xor(x, block);
        _s2vKey.Encrypt(x, mac);
    }

    /// <summary>
    /// Block <paramref name="i"/> of M into <paramref name="block"/>: its bytes (fewer than 16 for a
    /// short last block; returns how many), with <paramref name="xorEnd"/> applied where they fall in
    /// M's last 16 bytes.
    /// </summary>
    private static int ReadBlock(ReadOnlySpan<byte> message, int i, ReadOnlySpan<byte> xorEnd, Span<byte> block)
    {
        int start = i * BlockLength;
        int length = Math.Min(BlockLength, message.Length - start);
        message.Slice(start, length).CopyTo(block);
        if (!xorEnd.IsEmpty)
        {
            int end = message.Length - BlockLength; // where the last 16 bytes start
            for (int j = Math.Max(0, end - start); j < length; j++)
            {
                block[j] ^= xorEnd[start + j - end];
            }
        }
        return length;
    }

    /// <summary>pad(X) / padding(X) (RFC 5297 §2.1, RFC 4493 §2.4): X ‖ 10^*, to 16 bytes. <paramref name="output"/> may start where X does.</summary>
    private static void Pad(ReadOnlySpan<byte> partial, Span<byte> output)
    {
        partial.CopyTo(output);
        output[partial.Length] = 0x80;
        output[(partial.Length + 1)..BlockLength].Clear();
    }

    /// <summary>
    /// dbl(S) (RFC 5297 §2.3, RFC 4493 §2.3): S shifted left one bit; if its first bit was 1, the last
    /// byte xor 0x87 (multiplication by x in GF(2^128)), without branching on it.
    /// </summary>
    private static void Dbl(Span<byte> s)
    {
        int first = s[0] >> 7;
        for (int i = 0; i < BlockLength - 1; i++)
        {
            s[i] = (byte)((s[i] << 1) | (s[i + 1] >> 7));
        }
        s[BlockLength - 1] = (byte)((s[BlockLength - 1] << 1) ^ (first * 0x87));
    }

    // ---- CTR (RFC 5297 §2.5) ----

    /// <summary>
    /// output = input xor the first len(input) bytes of AES(K2, Q) ‖ AES(K2, Q+1) ‖ …, where Q is V
    /// with bits 63 and 31 cleared (V bitand 1^64 ‖ 0 ‖ 1^31 ‖ 0 ‖ 1^31) and Q+i is mod 2^128,
    /// big-endian. In place (output = input) is fine.
    /// </summary>
    private void Ctr(ReadOnlySpan<byte> v, ReadOnlySpan<byte> input, Span<byte> output)
    {
        Span<byte> counter = stackalloc byte[BlockLength];
        Span<byte> keystream = stackalloc byte[BlockLength];
        v.CopyTo(counter);
        counter[8] &= 0x7F;
        counter[12] &= 0x7F;
        for (int offset = 0; offset < input.Length; offset += BlockLength)
        {
            _ctrKey.Encrypt(counter, keystream);
            int length = Math.Min(BlockLength, input.Length - offset);
            for (int j = 0; j < length; j++)
            {
                output[offset + j] = (byte)(input[offset + j] ^ keystream[j]);
            }
            Increment(counter);
        }
    }

    /// <summary>Q = Q + 1 mod 2^128, big-endian.</summary>
    private static void Increment(Span<byte> counter)
    {
        for (int i = BlockLength - 1; i >= 0; i--)
        {
            if (++counter[i] != 0)
            {
                return;
            }
        }
    }

    private static void Xor(Span<byte> target, ReadOnlySpan<byte> other)
    {
        for (int i = 0; i < BlockLength; i++)
        {
            target[i] ^= other[i];
        }
    }

    /// <summary>&lt;zero&gt; (RFC 5297 §2.1), const_Zero (RFC 4493 §2.3): 128 zero bits.</summary>
    private static ReadOnlySpan<byte> Zero => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
}
