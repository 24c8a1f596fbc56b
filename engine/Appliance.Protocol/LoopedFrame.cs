using System.Buffers.Binary;

namespace Appliance.Protocol;

/// <summary>
/// Finds the UDP payload in a datagram the kernel looped back with its transmit timestamp. The
/// looped copy is the packet as the timestamp was taken (Documentation/networking/timestamping.rst
/// §1.3.3, "the outgoing packet is looped back to the socket's error queue"): for the software and
/// hardware timestamps taken in the driver, from the link-layer header on (Ethernet, loopback's too,
/// with up to two VLAN tags), or from the IP header on a device without one (tun, WireGuard).
/// The transmit timestamp is matched to its response by what the response says, as chrony's server
/// does, so nothing about the order of sends needs to be kept.
/// </summary>
public static class LoopedFrame
{
    private const int EthernetHeader = 14;
    private const int UdpHeader = 8;
    private const ushort EtherTypeIPv4 = 0x0800;
    private const ushort EtherTypeIPv6 = 0x86DD;
    private const ushort EtherTypeVlan = 0x8100;
    private const ushort EtherTypeQinQ = 0x88A8;
    private const byte ProtocolUdp = 17;

    /// <summary>The UDP payload of <paramref name="frame"/>, or an empty span when it holds none that can be read.</summary>
    public static ReadOnlySpan<byte> UdpPayload(ReadOnlySpan<byte> frame)
    {
        // An Ethernet header first: its EtherType (after any VLAN tags) names the IP version that follows.
        if (frame.Length >= EthernetHeader)
        {
            int offset = 12;
            ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
            for (int tags = 0; tags < 2 && type is EtherTypeVlan or EtherTypeQinQ && frame.Length >= offset + 6; tags++)
            {
                offset += 4;
                type = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
            }
            offset += 2;
            if (type is EtherTypeIPv4 or EtherTypeIPv6 && IpPayload(frame[offset..], type == EtherTypeIPv4 ? 4 : 6) is { IsEmpty: false } payload)
            {
                return payload;
            }
        }
        // No link-layer header: the IP header's version nibble.
        return frame.IsEmpty ? default : IpPayload(frame, frame[0] >> 4);
    }

    private static ReadOnlySpan<byte> IpPayload(ReadOnlySpan<byte> packet, int version)
    {
        int header;
        int length;
        if (version == 4 && packet.Length >= 20 && (packet[0] >> 4) == 4)
        {
            header = (packet[0] & 0x0F) * 4;
            length = BinaryPrimitives.ReadUInt16BigEndian(packet[2..]);
            if (header < 20 || packet[9] != ProtocolUdp || length < header)
            {
                return default;
            }
        }
        else if (version == 6 && packet.Length >= 40 && (packet[0] >> 4) == 6)
        {
            // Our own responses carry no extension headers: UDP follows the fixed header.
            header = 40;
            length = header + BinaryPrimitives.ReadUInt16BigEndian(packet[4..]);
            if (packet[6] != ProtocolUdp)
            {
                return default;
            }
        }
        else
        {
            return default;
        }
        if (length > packet.Length || length - header < UdpHeader)
        {
            return default;
        }
        ReadOnlySpan<byte> udp = packet[header..length];
        int udpLength = BinaryPrimitives.ReadUInt16BigEndian(udp[4..]);
        return udpLength < UdpHeader || udpLength > udp.Length ? default : udp[UdpHeader..udpLength];
    }
}
