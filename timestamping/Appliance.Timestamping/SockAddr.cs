using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>
/// Conversions between IP addresses and the kernel's sockaddr_in (16 bytes) and sockaddr_in6 (28 bytes).
/// Ports and addresses are in network byte order; the family is host order.
/// </summary>
internal static class SockAddr
{
    public const int StorageSize = 128; // sizeof(struct sockaddr_storage)
    public const int In4Size = 16;
    public const int In6Size = 28;

    public static int Write(Span<byte> destination, IPEndPoint endPoint)
    {
        destination[..StorageSize].Clear();
        BinaryPrimitives.WriteUInt16BigEndian(destination[2..], (ushort)endPoint.Port);
        if (endPoint.AddressFamily == AddressFamily.InterNetwork)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(destination, Libc.AfInet);
            endPoint.Address.TryWriteBytes(destination.Slice(4, 4), out _);
            return In4Size;
        }
        BinaryPrimitives.WriteUInt16LittleEndian(destination, Libc.AfInet6);
        endPoint.Address.TryWriteBytes(destination.Slice(8, 16), out _);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[24..], (uint)endPoint.Address.ScopeId);
        return In6Size;
    }

    public static int Family(ReadOnlySpan<byte> sockaddr) => BinaryPrimitives.ReadUInt16LittleEndian(sockaddr);

    public static ushort Port(ReadOnlySpan<byte> sockaddr) => BinaryPrimitives.ReadUInt16BigEndian(sockaddr[2..]);

    /// <summary>The address bytes: 4 for AF_INET, 16 for AF_INET6, empty otherwise.</summary>
    public static ReadOnlySpan<byte> AddressBytes(ReadOnlySpan<byte> sockaddr) => Family(sockaddr) switch
    {
        Libc.AfInet => sockaddr.Slice(4, 4),
        Libc.AfInet6 => sockaddr.Slice(8, 16),
        _ => [],
    };

    public static IPEndPoint ToEndPoint(ReadOnlySpan<byte> sockaddr) =>
        new(new IPAddress(AddressBytes(sockaddr)), Port(sockaddr));
}
