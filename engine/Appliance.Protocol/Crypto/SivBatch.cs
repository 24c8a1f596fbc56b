using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Appliance.Protocol.Crypto;

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

/// <summary>
/// Up to <see cref="AesSivLanes.Width"/> <see cref="SivOperation"/>s for one call of
/// <see cref="AesSivLanes"/>: one field per lane (no inline array of a ref struct), written out
/// (<see cref="AesSivLanes.WrittenOutWidth"/>).
/// </summary>
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
