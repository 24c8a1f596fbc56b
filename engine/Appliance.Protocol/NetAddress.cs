using System.Buffers.Binary;
using System.Net;

namespace Appliance.Protocol;

/// <summary>
/// An IPv4 or IPv6 address as a 128-bit value, IPv4 held as IPv4-mapped IPv6 (RFC 4291 §2.5.5.2),
/// so one table and one prefix matcher serve both families. Allocation-free.
/// </summary>
public readonly record struct NetAddress(UInt128 Value)
{
    private static readonly UInt128 s_v4MappedPrefix = new(0, 0x0000_FFFF_0000_0000UL);
    private static readonly UInt128 s_v4MappedMask = new(ulong.MaxValue, 0xFFFF_FFFF_0000_0000UL);

    public bool IsIPv4 => (Value & s_v4MappedMask) == s_v4MappedPrefix;

    /// <summary>An IPv4 address given in host order (a.b.c.d → 0xaabbccdd).</summary>
    public static NetAddress FromIPv4(uint address) => new(s_v4MappedPrefix | address);

    /// <summary>An address from its network-order bytes: 4 bytes for IPv4, 16 for IPv6.</summary>
    public static NetAddress FromBytes(ReadOnlySpan<byte> bytes) => bytes.Length switch
    {
        4 => FromIPv4(BinaryPrimitives.ReadUInt32BigEndian(bytes)),
        16 => new NetAddress(BinaryPrimitives.ReadUInt128BigEndian(bytes)),
        _ => throw new ArgumentException("An address has 4 or 16 bytes.", nameof(bytes)),
    };

    public static NetAddress FromIPAddress(IPAddress address)
    {
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int written);
        return FromBytes(bytes[..written]);
    }

    /// <summary>The IPv4 address in host order; only meaningful when <see cref="IsIPv4"/>.</summary>
    public uint IPv4 => (uint)(Value & uint.MaxValue);

    /// <summary>The high 64 bits: the /64 prefix of an IPv6 address.</summary>
    public ulong Upper => (ulong)(Value >> 64);

    public void WriteBytes(Span<byte> destination16) => BinaryPrimitives.WriteUInt128BigEndian(destination16, Value);

    public IPAddress ToIPAddress()
    {
        if (IsIPv4)
        {
            return new IPAddress(BinaryPrimitives.ReverseEndianness(IPv4));
        }
        Span<byte> bytes = stackalloc byte[16];
        WriteBytes(bytes);
        return new IPAddress(bytes);
    }

    public override string ToString() => ToIPAddress().ToString();
}
