using System.Buffers.Binary;

namespace Appliance.Protocol.Tests;

/// <summary>
/// The UDP payload inside a datagram the kernel looped back with its transmit timestamp: from the
/// link-layer header on (Ethernet, with VLAN tags), or from the IP header on a device without one.
/// </summary>
public class LoopedFrameTests
{
    private static readonly byte[] s_payload = [.. Enumerable.Range(0, 48).Select(i => (byte)(i + 1))];

    public static TheoryData<string, byte[]> Frames => new()
    {
        { "Ethernet, IPv4", [.. Ethernet(0x0800), .. IPv4(Udp(s_payload))] },
        { "Ethernet, IPv4 with options", [.. Ethernet(0x0800), .. IPv4(Udp(s_payload), optionWords: 2)] },
        { "Ethernet, IPv6", [.. Ethernet(0x86DD), .. IPv6(Udp(s_payload))] },
        { "802.1Q, IPv4", [.. Ethernet(0x8100), 0x00, 0x05, 0x08, 0x00, .. IPv4(Udp(s_payload))] },
        { "802.1ad and 802.1Q, IPv6", [.. Ethernet(0x88A8), 0x00, 0x05, 0x81, 0x00, 0x00, 0x07, 0x86, 0xDD, .. IPv6(Udp(s_payload))] },
        { "raw IPv4 (tun)", IPv4(Udp(s_payload)) },
        { "raw IPv6 (WireGuard)", IPv6(Udp(s_payload)) },
        { "Ethernet, IPv4, padded to the minimum frame", [.. Ethernet(0x0800), .. IPv4(Udp(s_payload)), 0, 0, 0, 0] },
    };

    [Theory]
    [MemberData(nameof(Frames))]
    public void ThePayloadIsFound(string frame, byte[] bytes)
    {
        Assert.True(s_payload.AsSpan().SequenceEqual(LoopedFrame.UdpPayload(bytes)), frame);
    }

    public static TheoryData<string, byte[]> Unreadable => new()
    {
        { "empty", [] },
        { "no payload (OPT_TSONLY)", new byte[3] },
        { "TCP", Protocol([.. Ethernet(0x0800), .. IPv4(Udp(s_payload))], 14 + 9, 6) },
        { "ARP", [.. Ethernet(0x0806), .. new byte[28]] },
        { "cut inside the UDP payload", [.. Ethernet(0x0800), .. IPv4(Udp(s_payload))[..40]] },
        { "IPv4 total length beyond the frame", Length([.. Ethernet(0x0800), .. IPv4(Udp(s_payload))], 14 + 2, 2000) },
        { "IPv4 header length under 20", Protocol([.. Ethernet(0x0800), .. IPv4(Udp(s_payload))], 14, 0x44) },
        { "UDP length beyond the packet", Length([.. Ethernet(0x0800), .. IPv4(Udp(s_payload))], 14 + 20 + 4, 500) },
        { "UDP length under its header", Length(IPv4(Udp(s_payload)), 20 + 4, 7) },
        { "IPv6 extension header", Protocol(IPv6(Udp(s_payload)), 6, 0) },
        { "EtherType IPv4 over an IPv6 header", [.. Ethernet(0x0800), .. IPv6(Udp(s_payload))] },
    };

    [Theory]
    [MemberData(nameof(Unreadable))]
    public void NothingIsFound(string frame, byte[] bytes)
    {
        Assert.True(LoopedFrame.UdpPayload(bytes).IsEmpty, frame);
    }

    [Fact]
    public void RandomBytes_NeverThrow()
    {
        var random = new Random(9769);
        var buffer = new byte[200];
        for (int i = 0; i < 20_000; i++)
        {
            random.NextBytes(buffer);
            int length = random.Next(buffer.Length + 1);
            ReadOnlySpan<byte> payload = LoopedFrame.UdpPayload(buffer.AsSpan(0, length));
            Assert.True(payload.Length <= length);
        }
    }

    private static byte[] Ethernet(ushort type)
    {
        var header = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(12), type);
        return header;
    }

    private static byte[] Udp(byte[] payload)
    {
        var datagram = new byte[8 + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(datagram, 123);
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(2), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(datagram.AsSpan(4), (ushort)datagram.Length);
        payload.CopyTo(datagram, 8);
        return datagram;
    }

    private static byte[] IPv4(byte[] udp, int optionWords = 0)
    {
        int header = 20 + (4 * optionWords);
        var packet = new byte[header + udp.Length];
        packet[0] = (byte)(0x40 | (header / 4));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
        packet[8] = 64;
        packet[9] = 17;
        udp.CopyTo(packet, header);
        return packet;
    }

    private static byte[] IPv6(byte[] udp)
    {
        var packet = new byte[40 + udp.Length];
        packet[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), (ushort)udp.Length);
        packet[6] = 17;
        packet[7] = 64;
        udp.CopyTo(packet, 40);
        return packet;
    }

    private static byte[] Protocol(byte[] frame, int offset, byte value)
    {
        frame[offset] = value;
        return frame;
    }

    private static byte[] Length(byte[] frame, int offset, ushort value)
    {
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(offset), value);
        return frame;
    }
}
