using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Appliance.Protocol.Roughtime;

/// <summary>The tags of RFC 10049 §12.3: four octets read as a little-endian uint32 (§4.1.3).</summary>
public static class RoughtimeTag
{
    public const uint Sig = 0x00474953;
    public const uint Ver = 0x00524556;
    public const uint Srv = 0x00565253;
    public const uint Nonc = 0x434e4f4e;
    public const uint Dele = 0x454c4544;
    public const uint Type = 0x45505954;
    public const uint Path = 0x48544150;
    public const uint Radi = 0x49444152;
    public const uint Pubk = 0x4b425550;
    public const uint Midp = 0x5044494d;
    public const uint Srep = 0x50455253;
    public const uint Vers = 0x53524556;
    public const uint Mint = 0x544e494d;
    public const uint Root = 0x544f4f52;
    public const uint Cert = 0x54524543;
    public const uint Maxt = 0x5458414d;
    public const uint Indx = 0x58444e49;
    public const uint Zzzz = 0x5a5a5a5a;
}

/// <summary>Version numbers (RFC 10049 §5, §12.2).</summary>
public static class RoughtimeVersion
{
    /// <summary>RFC 10049.</summary>
    public const uint Rfc = 1;

    /// <summary>
    /// What drafts 12 to 19 used for testing (draft-ietf-ntp-roughtime-19 §5). Served as drafts 16–19
    /// define it, which is version 1's wire (TYPE, the hash first in PATH for a 0 bit); requests of
    /// drafts 12–13 carry no TYPE and get nothing.
    /// </summary>
    public const uint Draft = 0x8000000c;
}

/// <summary>
/// A Roughtime message (RFC 10049 §4.2): uint32 N, N − 1 offsets, N tags, then the values. Parsing
/// checks every rule a hostile sender could break — offsets multiples of four, ascending and inside
/// the message, tags strictly ascending — and allocates nothing.
/// </summary>
public readonly ref struct RoughtimeMessage
{
    /// <summary>A bound on N before anything is read: a 2048-byte message holds at most 256 tags (8 bytes of header each).</summary>
    public const int MaxTags = 256;

    private readonly ReadOnlySpan<byte> _bytes;

    private RoughtimeMessage(ReadOnlySpan<byte> bytes, int count)
    {
        _bytes = bytes;
        Count = count;
    }

    public int Count { get; }

    private int HeaderLength => 8 * Count;

    public uint TagAt(int i) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.Slice(4 + (4 * (Count - 1)) + (4 * i)));

    private int OffsetAt(int i) => i == 0 ? 0 : (int)BinaryPrimitives.ReadUInt32LittleEndian(_bytes.Slice(4 * i));

    /// <summary>The value of the <paramref name="i"/>th tag.</summary>
    public ReadOnlySpan<byte> ValueAt(int i)
    {
        int start = HeaderLength + OffsetAt(i);
        int end = i + 1 < Count ? HeaderLength + OffsetAt(i + 1) : _bytes.Length;
        return _bytes[start..end];
    }

    public static bool TryParse(ReadOnlySpan<byte> bytes, out RoughtimeMessage message)
    {
        message = default;
        if (bytes.Length < 4 || bytes.Length % 4 != 0)
        {
            return false;
        }
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        if (count > MaxTags || 8L * count > bytes.Length || (count == 0 && bytes.Length != 4))
        {
            return false;
        }
        var parsed = new RoughtimeMessage(bytes, (int)count);
        long values = bytes.Length - parsed.HeaderLength;
        long previousOffset = 0;
        uint previousTag = 0;
        for (int i = 0; i < parsed.Count; i++)
        {
            long offset = i == 0 ? 0 : BinaryPrimitives.ReadUInt32LittleEndian(bytes.Slice(4 * i));
            uint tag = parsed.TagAt(i);
            if (offset % 4 != 0 || offset < previousOffset || offset > values || (i > 0 && tag <= previousTag))
            {
                return false;
            }
            previousOffset = offset;
            previousTag = tag;
        }
        message = parsed;
        return true;
    }

    /// <summary>The value of <paramref name="tag"/>; false when the message has no such tag.</summary>
    public bool TryGet(uint tag, out ReadOnlySpan<byte> value)
    {
        for (int i = 0; i < Count; i++)
        {
            uint t = TagAt(i);
            if (t == tag)
            {
                value = ValueAt(i);
                return true;
            }
            if (t > tag)
            {
                break;
            }
        }
        value = default;
        return false;
    }

    /// <summary>A uint32 value (RFC 10049 §4.1.1), false unless the tag is there with exactly four bytes.</summary>
    public bool TryGetUInt32(uint tag, out uint value)
    {
        value = 0;
        if (!TryGet(tag, out ReadOnlySpan<byte> bytes) || bytes.Length != 4)
        {
            return false;
        }
        value = BinaryPrimitives.ReadUInt32LittleEndian(bytes);
        return true;
    }

    /// <summary>A uint64 value (a timestamp, RFC 10049 §4.1.4), false unless the tag is there with exactly eight bytes.</summary>
    public bool TryGetUInt64(uint tag, out ulong value)
    {
        value = 0;
        if (!TryGet(tag, out ReadOnlySpan<byte> bytes) || bytes.Length != 8)
        {
            return false;
        }
        value = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        return true;
    }

    /// <summary>
    /// Writes the header of a message whose tags (strictly ascending) have values of the given
    /// lengths (each a multiple of four), laid out in order after it; returns the header's length.
    /// The caller writes each value at <c>header + the lengths before it</c>.
    /// </summary>
    public static int WriteHeader(Span<byte> destination, ReadOnlySpan<uint> tags, ReadOnlySpan<int> lengths)
    {
        int n = tags.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)n);
        if (n == 0)
        {
            return 4;
        }
        int offset = 0;
        for (int i = 0; i < n; i++)
        {
            if (i > 0)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(destination.Slice(4 * i), (uint)offset);
            }
            BinaryPrimitives.WriteUInt32LittleEndian(destination.Slice(4 + (4 * (n - 1)) + (4 * i)), tags[i]);
            offset += lengths[i];
        }
        return 8 * n;
    }

    /// <summary>The length of a message with values of these lengths.</summary>
    public static int Length(ReadOnlySpan<int> lengths)
    {
        int total = lengths.Length == 0 ? 4 : 8 * lengths.Length;
        foreach (int length in lengths)
        {
            total += length;
        }
        return total;
    }
}

/// <summary>The packet around a message (RFC 10049 §5, Figure 2) and the hash (§5.3): on UDP and TCP alike.</summary>
public static class RoughtimePacket
{
    /// <summary>"ROUGHTIM" as a little-endian uint64.</summary>
    public const ulong Magic = 0x4d49544847554f52;

    public const int HeaderLength = 12;

    /// <summary>RFC 10049 §5.1: a request message SHOULD be at least this long; shorter ones are not answered here.</summary>
    public const int MinRequestMessage = 1024;

    public const int HashLength = 32;

    /// <summary>The message inside <paramref name="packet"/>, whose length must be exactly the header's plus the one it declares.</summary>
    public static bool TryUnwrap(ReadOnlySpan<byte> packet, out ReadOnlySpan<byte> message)
    {
        message = default;
        if (packet.Length < HeaderLength || BinaryPrimitives.ReadUInt64LittleEndian(packet) != Magic)
        {
            return false;
        }
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(packet[8..]);
        if (length != packet.Length - HeaderLength)
        {
            return false;
        }
        message = packet[HeaderLength..];
        return true;
    }

    /// <summary>Writes the packet header for a message of <paramref name="messageLength"/> bytes.</summary>
    public static void WriteHeader(Span<byte> destination, int messageLength)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], (uint)messageLength);
    }

    /// <summary>H(x): the first 32 bytes of SHA-512 (RFC 10049 §5.3), not SHA-512/256.</summary>
    public static void Hash(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        Span<byte> full = stackalloc byte[64];
        SHA512.HashData(data, full);
        full[..HashLength].CopyTo(destination);
    }

    /// <summary>H(prefix ‖ data) through <paramref name="scratch"/> (at least data + 1 bytes).</summary>
    public static void Hash(byte prefix, ReadOnlySpan<byte> data, Span<byte> scratch, Span<byte> destination)
    {
        scratch[0] = prefix;
        data.CopyTo(scratch[1..]);
        Hash(scratch[..(data.Length + 1)], destination);
    }

    /// <summary>SRV (RFC 10049 §5.1.4): H(0xff ‖ the long-term public key).</summary>
    public static void ServerId(ReadOnlySpan<byte> longTermPublicKey, Span<byte> destination)
    {
        Span<byte> scratch = stackalloc byte[1 + 32];
        Hash(0xff, longTermPublicKey, scratch, destination);
    }
}
