using System.Buffers.Binary;

namespace Appliance.Protocol;

/// <summary>One extension field (RFC 7822 §3): a 16-bit type, a 16-bit length and a value.</summary>
public readonly ref struct ExtensionField
{
    public ExtensionField(ushort type, ReadOnlySpan<byte> value, int offset, int length)
    {
        Type = type;
        Value = value;
        Offset = offset;
        Length = length;
    }

    public ushort Type { get; }

    /// <summary>The value including any padding (the field's bytes after its 4-byte header).</summary>
    public ReadOnlySpan<byte> Value { get; }

    /// <summary>Offset of the field's first byte in the region it was read from.</summary>
    public int Offset { get; }

    /// <summary>Whole field length in bytes, header included.</summary>
    public int Length { get; }
}

/// <summary>How the bytes after an NTP header split into extension fields and a legacy MAC.</summary>
public readonly record struct ExtensionLayout(int FieldsLength, int MacLength)
{
    public bool HasFields => FieldsLength > 0;
    public bool HasMac => MacLength > 0;
}

/// <summary>
/// Extension-field parsing and writing, RFC 7822. A field is type(16) ‖ length(16) ‖ value, the
/// length counting the whole field, a multiple of 4 and at least 16 (RFC 7822 §3, §7.5).
/// </summary>
public static class ExtensionFields
{
    public const int HeaderLength = 4;
    public const int MinFieldLength = 16;

    /// <summary>Shortest legacy MAC: 32-bit key id + 128-bit digest (RFC 5905 §7.3).</summary>
    public const int MinMacLength = 20;

    /// <summary>Longest legacy MAC in NTPv4: 32-bit key id + 160-bit digest (RFC 7822 §7.5).</summary>
    public const int MaxMacLength = 24;

    /// <summary>
    /// Splits the region after the header into extension fields and a MAC, following RFC 7822 §7.5:
    /// a remainder of 20 to 24 bytes is a legacy MAC; otherwise it must start with a well-formed
    /// extension field. NTPv3 has no extension fields (RFC 1305), only an optional MAC.
    /// </summary>
    /// <returns>False when the region is malformed; the packet must then be dropped.</returns>
    public static bool TryGetLayout(ReadOnlySpan<byte> afterHeader, byte version, out ExtensionLayout layout)
    {
        layout = default;
        int offset = 0;
        while (offset < afterHeader.Length)
        {
            int remainder = afterHeader.Length - offset;
            if (remainder >= MinMacLength && remainder <= MaxMacLength)
            {
                layout = new ExtensionLayout(offset, remainder);
                return true;
            }
            if (version < 4 || remainder < MinFieldLength)
            {
                return false;
            }
            int length = BinaryPrimitives.ReadUInt16BigEndian(afterHeader[(offset + 2)..]);
            if (length < MinFieldLength || (length & 3) != 0 || length > remainder)
            {
                return false;
            }
            offset += length;
        }
        layout = new ExtensionLayout(offset, 0);
        return true;
    }

    /// <summary>Enumerates the fields of a region already checked by <see cref="TryGetLayout"/>.</summary>
    public static Enumerator Enumerate(ReadOnlySpan<byte> fields) => new(fields);

    /// <summary>
    /// Writes one field with its value padded with zeros to a multiple of 4 and at least
    /// <paramref name="minLength"/> bytes. Returns the bytes written, or 0 if it does not fit.
    /// </summary>
    public static int Write(Span<byte> destination, ushort type, ReadOnlySpan<byte> value, int minLength = MinFieldLength)
    {
        int length = Math.Max(minLength, (HeaderLength + value.Length + 3) & ~3);
        if (length > destination.Length || length > ushort.MaxValue)
        {
            return 0;
        }
        BinaryPrimitives.WriteUInt16BigEndian(destination, type);
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)length);
        value.CopyTo(destination[HeaderLength..]);
        destination[(HeaderLength + value.Length)..length].Clear();
        return length;
    }

    public ref struct Enumerator
    {
        private readonly ReadOnlySpan<byte> _fields;
        private int _next;
        private ExtensionField _current;

        internal Enumerator(ReadOnlySpan<byte> fields)
        {
            _fields = fields;
            _next = 0;
            _current = default;
        }

        public readonly ExtensionField Current => _current;

        public readonly Enumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            if (_fields.Length - _next < MinFieldLength)
            {
                return false;
            }
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(_fields[_next..]);
            int length = BinaryPrimitives.ReadUInt16BigEndian(_fields[(_next + 2)..]);
            if (length < MinFieldLength || length > _fields.Length - _next)
            {
                return false;
            }
            _current = new ExtensionField(type, _fields.Slice(_next + HeaderLength, length - HeaderLength), _next, length);
            _next += length;
            return true;
        }
    }
}
