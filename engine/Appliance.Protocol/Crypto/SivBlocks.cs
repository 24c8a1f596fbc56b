using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Appliance.Protocol.Crypto;

/// <summary>
/// The block arithmetic of AES-SIV (RFC 5297) and CMAC (RFC 4493) in 128-bit registers, for
/// <see cref="AesSivLanes"/>: dbl, the 10* padding, S2V's last CMAC blocks, CTR's counter blocks.
/// The same definitions as the reference <see cref="AesSiv"/>'s, which works byte by byte; the lanes
/// are tested bit for bit against it.
/// </summary>
internal static class SivBlocks
{
    /// <summary>CMAC blocks of a string: the empty string is one (padded) block (RFC 4493 §2.4).</summary>
    public static int Blocks(ReadOnlySpan<byte> s) => s.IsEmpty ? 1 : (s.Length + 15) / 16;

    /// <summary>P's blocks that run through the CMAC chain before the last 16 bytes that "xorend" touches.</summary>
    public static int PrefixBlocks(ReadOnlySpan<byte> p) => p.Length >= 16 ? (p.Length - 16) / 16 : 0;

    /// <summary>
    /// The last one or two CMAC input blocks of T (RFC 5297 §2.4), subkey <paramref name="k1"/> or
    /// <paramref name="k2"/> already applied to the last (RFC 4493 §2.4): T = P xorend D when P has 16
    /// bytes or more (after its <see cref="PrefixBlocks"/>), else T = dbl(D) xor pad(P), one block.
    /// Returns how many; with two, the first runs through the chain before the last.
    /// </summary>
    public static int FinalBlocks(ReadOnlySpan<byte> p, Vector128<byte> d, Vector128<byte> k1, Vector128<byte> k2,
        out Vector128<byte> first, out Vector128<byte> last)
    {
        first = default;
        if (p.Length < 16)
        {
            // T is one complete block: its CMAC uses K1.
            last = Dbl(d) ^ Pad(p) ^ k1;
            return 1;
        }
        int offset = PrefixBlocks(p) * 16;
        int extra = p.Length - offset - 16; // 0..15 bytes past one block
        Vector128<byte> end = Load(p, p.Length - 16) ^ d; // the last 16 bytes, xorend applied
        if (extra == 0)
        {
            last = end ^ k1;
            return 1;
        }
        // Two blocks: the first has D's leading bytes over its tail, the second is the rest, padded.
        Vector128<byte> indices = Vector128<byte>.Indices;
        first = Load(p, offset) ^ Vector128.Shuffle(d, indices - Vector128.Create((byte)extra));
        Vector128<byte> rest = Vector128.Shuffle(end, indices + Vector128.Create((byte)(16 - extra)))
            & Vector128.LessThan(indices, Vector128.Create((byte)extra));
        last = (rest | (Vector128.Equals(indices, Vector128.Create((byte)extra)) & Vector128.Create((byte)0x80))) ^ k2;
        return 2;
    }

    /// <summary>
    /// The last CMAC block of a message of <paramref name="blocks"/> blocks (RFC 4493 §2.4): ⊕ K1 if
    /// complete, else padded (10*) ⊕ K2.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> LastBlock(ReadOnlySpan<byte> message, int blocks, Vector128<byte> k1, Vector128<byte> k2)
    {
        int offset = (blocks - 1) * 16;
        return message.Length - offset == 16 ? Load(message, offset) ^ k1 : Pad(message[offset..]) ^ k2;
    }

    /// <summary>
    /// A string of under 16 bytes padded to a block: the bytes, 0x80, zeros ("10*", RFC 4493 §2.4).
    /// Built in two registers, without a buffer on the stack.
    /// </summary>
    public static Vector128<byte> Pad(ReadOnlySpan<byte> partial)
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

    /// <summary>The 16 bytes at <paramref name="offset"/> (bounds checked by the slice).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Load(ReadOnlySpan<byte> data, int offset) =>
        Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(data.Slice(offset, 16)));

    /// <summary>output = input ⊕ the first input.Length (under 16) bytes of <paramref name="stream"/>.</summary>
    public static void XorPartial(ReadOnlySpan<byte> input, Vector128<byte> stream, Span<byte> output)
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
    public static Vector128<uint> CounterBase(Vector128<byte> v) =>
        Vector128.Shuffle(v & Vector128.Create(0xFFFF_FFFF_FFFF_FFFFUL, 0xFFFF_FF7F_FFFF_FF7FUL).AsByte(), LastWordSwap).AsUInt32();

    /// <summary>The counter block Q + <paramref name="i"/>, big-endian as AES takes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> CounterBlock(Vector128<uint> q, uint i) =>
        Vector128.Shuffle((q + Vector128.Create(0, 0, 0, i)).AsByte(), LastWordSwap);

    /// <summary>Reverses the bytes of the last 32-bit word (big-endian ↔ the CPU's order), the rest as it is.</summary>
    private static Vector128<byte> LastWordSwap => Vector128.Create((byte)0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 15, 14, 13, 12);

    /// <summary>Doubling in GF(2^128) (RFC 5297 §2.3): shift left one bit, xor 0x87 on carry. Big-endian bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<byte> Dbl(Vector128<byte> value)
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
