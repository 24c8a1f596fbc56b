using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>
/// N sockets on one address in an SO_REUSEPORT group, with a classic-BPF program that picks the socket
/// from the client's source address (IPv4: the address; IPv6: its /64). One client therefore always
/// lands on the same worker, whose rate-limit table then needs no lock (DESIGN.md "The shape").
/// </summary>
public static unsafe class ReusePortGroup
{
    /// <summary>
    /// Opens <paramref name="count"/> sockets on <paramref name="endPoint"/>; socket i receives the
    /// clients the program maps to i. Fails, naming the address, when anything else holds the port:
    /// SO_REUSEPORT would otherwise share it silently with a stray process (NOTES-dotnet.md).
    /// </summary>
    public static TimestampedSocket[] Open(IPEndPoint endPoint, int count, TimestampedSocketOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (count == 1)
        {
            return [TimestampedSocket.Open(endPoint, options with { ReusePort = false })];
        }
        // An exclusive probe bind: fails if any socket, reuseport or not, holds the port; for port 0
        // it also picks the port the whole group then shares.
        using (TimestampedSocket probe = TimestampedSocket.Open(endPoint, options with { ReusePort = false }))
        {
            endPoint = probe.LocalEndPoint;
        }
        var sockets = new TimestampedSocket[count];
        int opened = 0;
        try
        {
            for (; opened < count; opened++)
            {
                sockets[opened] = TimestampedSocket.Open(endPoint, options with { ReusePort = true });
            }
            AttachSteering(sockets[0], count);
            return sockets;
        }
        catch
        {
            for (int i = 0; i < opened; i++)
            {
                sockets[i].Dispose();
            }
            throw;
        }
    }

    /// <summary>The steering program for a group of <paramref name="count"/> sockets.</summary>
    internal static SockFilter[] Program(bool ipv6, int count)
    {
        const uint golden = 0x9E3779B1; // Knuth's multiplicative hash constant
        if (!ipv6)
        {
            return
            [
                new(Bpf.LdWAbs, 0, 0, Bpf.NetOffset + 12), // A = IPv4 source address
                new(Bpf.AluMulK, 0, 0, golden),
                new(Bpf.Tax, 0, 0, 0),
                new(Bpf.AluRshK, 0, 0, 16),
                new(Bpf.AluXorX, 0, 0, 0),                  // A = h ^ (h >> 16)
                new(Bpf.AluModK, 0, 0, (uint)count),
                new(Bpf.RetA, 0, 0, 0),
            ];
        }
        return
        [
            new(Bpf.LdWAbs, 0, 0, Bpf.NetOffset + 8),      // first word of the IPv6 source /64
            new(Bpf.AluMulK, 0, 0, golden),
            new(Bpf.Tax, 0, 0, 0),
            new(Bpf.LdWAbs, 0, 0, Bpf.NetOffset + 12),     // second word of the /64
            new(Bpf.AluXorX, 0, 0, 0),
            new(Bpf.AluMulK, 0, 0, 0x85EBCA6B),
            new(Bpf.Tax, 0, 0, 0),
            new(Bpf.AluRshK, 0, 0, 16),
            new(Bpf.AluXorX, 0, 0, 0),
            new(Bpf.AluModK, 0, 0, (uint)count),
            new(Bpf.RetA, 0, 0, 0),
        ];
    }

    /// <summary>The socket index the program picks for a source address: the same arithmetic in C#, for tests.</summary>
    public static int SteerIndex(IPAddress source, int count)
    {
        byte[] b = source.GetAddressBytes();
        uint h;
        if (b.Length == 4)
        {
            h = unchecked(ReadBe(b, 0) * 0x9E3779B1);
        }
        else
        {
            uint x = unchecked(ReadBe(b, 0) * 0x9E3779B1);
            h = unchecked((ReadBe(b, 4) ^ x) * 0x85EBCA6B);
        }
        h ^= h >> 16;
        return (int)(h % (uint)count);
    }

    private static uint ReadBe(byte[] b, int offset) => System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(offset));

    private static void AttachSteering(TimestampedSocket socket, int count)
    {
        SockFilter[] program = Program(socket.IsIPv6, count);
        fixed (SockFilter* filter = program)
        {
            var prog = new SockFprog { Length = (ushort)program.Length, Filter = filter };
            if (Libc.SetSockOpt(socket.Fd, Libc.SolSocket, Libc.SoAttachReusePortCbpf, &prog, (uint)sizeof(SockFprog)) != 0)
            {
                throw NativeErrors.Socket(Marshal.GetLastPInvokeError(), "SO_ATTACH_REUSEPORT_CBPF");
            }
        }
    }
}
