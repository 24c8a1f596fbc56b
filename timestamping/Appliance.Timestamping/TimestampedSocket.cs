using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>Options for a <see cref="TimestampedSocket"/>.</summary>
public sealed record TimestampedSocketOptions
{
    /// <summary>Join an SO_REUSEPORT group (one socket per worker on the same address).</summary>
    public bool ReusePort { get; init; }

    /// <summary>Kernel receive buffer; large so that bursts are queued, not dropped.</summary>
    public int ReceiveBufferBytes { get; init; } = 4 << 20;

    /// <summary>Use the NIC's hardware receive (and transmit) timestamps when it offers them.</summary>
    public bool HardwareTimestamps { get; init; }

    /// <summary>
    /// Let the slots a batch marks (<see cref="PacketBatch.RequestTransmitTimestamp"/>) ask for the
    /// kernel's transmit timestamp (software, or the NIC's with <see cref="HardwareTimestamps"/>).
    /// </summary>
    public bool TransmitTimestamps { get; init; }

    /// <summary>How long a receive blocks with nothing to read, so the worker can notice a stop request.</summary>
    public TimeSpan ReceiveTimeout { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Take only datagrams that arrived on this interface, and send out of it (SO_BINDTODEVICE, set
    /// before the bind); null: any interface. A PTP slave listens on its link alone: bound to the
    /// wildcard, a socket also takes datagrams routed in from every other interface. Unprivileged
    /// since Linux 5.7.
    /// </summary>
    public string? Device { get; init; }
}

/// <summary>
/// A UDP socket that receives and sends in batches (recvmmsg/sendmmsg) with kernel receive timestamps
/// (SO_TIMESTAMPING) and the destination address of every datagram (IP_PKTINFO/IPV6_RECVPKTINFO).
/// Safe API over the native calls: callers see spans and <see cref="PacketBatch"/>, never pointers.
/// </summary>
public sealed unsafe class TimestampedSocket : IDisposable
{
    private readonly SocketFd _fd;
    private readonly bool _preferHardware;
    private readonly int _transmitFlags;

    private TimestampedSocket(SocketFd fd, IPEndPoint localEndPoint, bool preferHardware, bool kernelTimestamps, int transmitFlags)
    {
        _fd = fd;
        LocalEndPoint = localEndPoint;
        _preferHardware = preferHardware;
        KernelTimestamps = kernelTimestamps;
        _transmitFlags = transmitFlags;
    }

    public IPEndPoint LocalEndPoint { get; }

    public bool IsIPv6 => LocalEndPoint.AddressFamily == AddressFamily.InterNetworkV6;

    /// <summary>True when the kernel stamps received datagrams (SO_TIMESTAMPING or SO_TIMESTAMPNS accepted).</summary>
    public bool KernelTimestamps { get; }

    /// <summary>
    /// True when marked responses ask for the kernel's transmit timestamps: asked for in the options,
    /// and SO_TIMESTAMPING (not only the older SO_TIMESTAMPNS) accepted.
    /// </summary>
    public bool TransmitTimestamps => _transmitFlags != 0;

    /// <summary>The file descriptor, for attaching a reuseport program (<see cref="ReusePortSteering"/>).</summary>
    internal int Fd => _fd.Value;

    /// <summary>Opens and binds; throws <see cref="SocketException"/> with the reason when that fails.</summary>
    public static TimestampedSocket Open(IPEndPoint endPoint, TimestampedSocketOptions options)
    {
        bool ipv6 = endPoint.AddressFamily == AddressFamily.InterNetworkV6;
        int fd = Libc.Socket(ipv6 ? Libc.AfInet6 : Libc.AfInet, Libc.SockDgram | Libc.SockCloexec, Libc.IpProtoUdp);
        if (fd < 0)
        {
            throw NativeErrors.Socket(Marshal.GetLastPInvokeError(), "socket");
        }
        var handle = new SocketFd(fd);
        try
        {
            if (ipv6)
            {
                // One socket per family: an IPv6 socket never takes IPv4 traffic (DESIGN.md listens on both).
                Check(Libc.SetSockOptInt(fd, Libc.IpProtoIpv6, Libc.Ipv6V6Only, 1), "IPV6_V6ONLY");
                Check(Libc.SetSockOptInt(fd, Libc.IpProtoIpv6, Libc.Ipv6RecvPktInfo, 1), "IPV6_RECVPKTINFO");
            }
            else
            {
                Check(Libc.SetSockOptInt(fd, Libc.IpProtoIp, Libc.IpPktInfo, 1), "IP_PKTINFO");
            }
            if (options.ReusePort)
            {
                Check(Libc.SetSockOptInt(fd, Libc.SolSocket, Libc.SoReusePort, 1), "SO_REUSEPORT");
            }
            if (options.Device is { } device)
            {
                BindToDevice(fd, device);
            }
            bool kernelTimestamps = EnableTimestamps(fd, options.HardwareTimestamps, out bool timestamping);
            // Without TX_HARDWARE the kernel stamps in software; with it, it still does when the driver
            // does not stamp the packet (skb_tx_timestamp), and the NIC's stamp comes instead when it does.
            int transmitFlags = options.TransmitTimestamps && timestamping
                ? Libc.SofTimestampingTxSoftware | (options.HardwareTimestamps ? Libc.SofTimestampingTxHardware : 0)
                : 0;
            SetReceiveBuffer(fd, options.ReceiveBufferBytes);
            var timeout = new Timeval
            {
                Seconds = (long)options.ReceiveTimeout.TotalSeconds,
                Microseconds = options.ReceiveTimeout.Milliseconds * 1000L,
            };
            Check(Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoRcvTimeo, &timeout, (uint)sizeof(Timeval)), "SO_RCVTIMEO");

            byte* address = stackalloc byte[SockAddr.StorageSize];
            int length = SockAddr.Write(new Span<byte>(address, SockAddr.StorageSize), endPoint);
            if (Libc.Bind(fd, address, (uint)length) != 0)
            {
                throw NativeErrors.Socket(Marshal.GetLastPInvokeError(), $"bind {endPoint}");
            }
            uint nameLength = SockAddr.StorageSize;
            Check(Libc.GetSockName(fd, address, &nameLength), "getsockname");
            IPEndPoint bound = SockAddr.ToEndPoint(new ReadOnlySpan<byte>(address, (int)nameLength));
            return new TimestampedSocket(handle, bound, options.HardwareTimestamps, kernelTimestamps, transmitFlags);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sets the receive buffer: what the kernel queues for the socket before it drops datagrams on
    /// arrival. Lowered while a worker sheds (issue #20): the excess is then dropped by the kernel as
    /// it arrives, which costs the worker nothing, instead of queued for the worker to shed one by one.
    /// </summary>
    public void SetReceiveBuffer(int bytes) => SetReceiveBuffer(_fd.Value, bytes);

    /// <summary>
    /// The receive buffer in force, as a <see cref="SetReceiveBuffer(int)"/> value: the kernel
    /// doubles what it is given (socket(7)), and without CAP_NET_ADMIN caps it at net.core.rmem_max,
    /// so this may be less than what was asked for. 0 when it cannot be read.
    /// </summary>
    public int ReceiveBuffer => Math.Max(0, Libc.GetSockOptInt(_fd.Value, Libc.SolSocket, Libc.SoRcvBuf) / 2);

    /// <summary>SO_RCVBUFFORCE exceeds rmem_max when we are privileged; fall back to what the limit allows.</summary>
    private static void SetReceiveBuffer(int fd, int bytes)
    {
        if (Libc.SetSockOptInt(fd, Libc.SolSocket, Libc.SoRcvBufForce, bytes) != 0)
        {
            Libc.SetSockOptInt(fd, Libc.SolSocket, Libc.SoRcvBuf, bytes);
        }
    }

    /// <summary>Kernel receive timestamps; <paramref name="timestamping"/> says SO_TIMESTAMPING (whose reporting flags transmit timestamps need) was taken.</summary>
    private static bool EnableTimestamps(int fd, bool hardware, out bool timestamping)
    {
        int flags = Libc.SofTimestampingRxSoftware | Libc.SofTimestampingSoftware;
        if (hardware)
        {
            flags |= Libc.SofTimestampingRxHardware | Libc.SofTimestampingRawHardware;
        }
        timestamping = Libc.SetSockOptInt(fd, Libc.SolSocket, Libc.SoTimestamping, flags) == 0;
        return timestamping || Libc.SetSockOptInt(fd, Libc.SolSocket, Libc.SoTimestampNs, 1) == 0;
    }

    private static void BindToDevice(int fd, string device)
    {
        byte* name = stackalloc byte[Libc.InterfaceNameSize];
        var span = new Span<byte>(name, Libc.InterfaceNameSize);
        span.Clear();
        // A name the kernel could not hold is refused here, with the name, rather than cut to another one.
        if (device.Length is 0 or >= Libc.InterfaceNameSize || !System.Text.Ascii.IsValid(device))
        {
            throw NativeErrors.Socket(Errno.EINVAL, $"SO_BINDTODEVICE {device} (an interface name is 1 to {Libc.InterfaceNameSize - 1} ASCII characters)");
        }
        System.Text.Encoding.ASCII.GetBytes(device, span);
        Check(Libc.SetSockOpt(fd, Libc.SolSocket, Libc.SoBindToDevice, name, (uint)(device.Length + 1)), $"SO_BINDTODEVICE {device}");
    }

    private static void Check(int result, string what)
    {
        if (result != 0)
        {
            throw NativeErrors.Socket(Marshal.GetLastPInvokeError(), what);
        }
    }

    /// <summary>
    /// Fixes the peer (connect(2)): datagrams go there without a per-datagram address or route lookup,
    /// and only its datagrams are received. The load generator's fast path.
    /// </summary>
    public void Connect(IPEndPoint peer)
    {
        byte* address = stackalloc byte[SockAddr.StorageSize];
        int length = SockAddr.Write(new Span<byte>(address, SockAddr.StorageSize), peer);
        if (Libc.Connect(_fd.Value, address, (uint)length) != 0)
        {
            throw NativeErrors.Socket(Marshal.GetLastPInvokeError(), $"connect {peer}");
        }
    }

    /// <summary>
    /// Joins an IPv4 multicast group on one interface and sends multicast out of it
    /// (IP_ADD_MEMBERSHIP and IP_MULTICAST_IF with struct ip_mreqn: group, address, ifindex).
    /// For PTP's 224.0.1.129 (IEEE 1588 Annex D).
    /// </summary>
    public void JoinMulticast(IPAddress group, int interfaceIndex)
    {
        byte* request = stackalloc byte[12];
        var span = new Span<byte>(request, 12);
        span.Clear();
        group.TryWriteBytes(span[..4], out _);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(span[8..], interfaceIndex);
        Check(Libc.SetSockOpt(_fd.Value, Libc.IpProtoIp, Libc.IpAddMembership, request, 12), $"IP_ADD_MEMBERSHIP {group}");
        Check(Libc.SetSockOpt(_fd.Value, Libc.IpProtoIp, Libc.IpMulticastIf, request, 12), "IP_MULTICAST_IF");
    }

    /// <summary>
    /// Asks the kernel for software transmit timestamps too (SOF_TIMESTAMPING_TX_SOFTWARE, with
    /// OPT_TSONLY: the error queue returns the timestamp without the payload). For a PTP slave's
    /// Delay_Req: a reading taken before the send would be early by the whole send path.
    /// </summary>
    public void EnableTransmitTimestamps() =>
        Check(Libc.SetSockOptInt(_fd.Value, Libc.SolSocket, Libc.SoTimestamping,
            Libc.SofTimestampingRxSoftware | Libc.SofTimestampingSoftware | Libc.SofTimestampingTxSoftware | Libc.SofTimestampingOptTsonly),
            "SO_TIMESTAMPING (transmit)");

    /// <summary>
    /// The transmit timestamp of the datagram just sent, from the socket's error queue
    /// (MSG_ERRQUEUE), waiting up to <paramref name="wait"/> for it; 0 when none came.
    /// </summary>
    public long ReadTransmitTimestamp(PacketBatch batch, TimeSpan wait)
    {
        long deadline = SystemClock.MonotonicNanoseconds() + (long)(wait.TotalMilliseconds * 1e6);
        do
        {
            MMsgHdr* messages = batch.PrepareReceive();
            int n = Libc.RecvMMsg(_fd.Value, messages, 1, Libc.MsgErrQueue | Libc.MsgDontWait, null);
            if (n > 0)
            {
                batch.CompleteReceive(n, false);
                return batch.ReceiveTimestamp(0);
            }
            Thread.Yield();
        }
        while (SystemClock.MonotonicNanoseconds() < deadline);
        return 0;
    }

    /// <summary>Most datagrams one segmented send may carry (UDP_MAX_SEGMENTS in older kernels).</summary>
    public const int MaxSegments = 64;

    /// <summary>
    /// Turns on UDP segmentation offload (UDP_SEGMENT): a send of k × <paramref name="segmentSize"/>
    /// bytes leaves as k datagrams for the cost of one trip through the stack. For the load generator.
    /// </summary>
    public void EnableSegmentation(int segmentSize) =>
        Check(Libc.SetSockOptInt(_fd.Value, Libc.SolUdp, Libc.UdpSegment, segmentSize), "UDP_SEGMENT");

    /// <summary>
    /// Sends <paramref name="datagrams"/> (consecutive datagrams of the segment size) to the connected
    /// peer with one send(2). Returns 0, or the errno when the kernel refused it.
    /// </summary>
    public int SendSegmented(ReadOnlySpan<byte> datagrams)
    {
        fixed (byte* p = datagrams)
        {
            while (true)
            {
                nint sent = Libc.Send(_fd.Value, p, (nuint)datagrams.Length, Libc.MsgDontWait);
                if (sent >= 0)
                {
                    return 0;
                }
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Errno.EINTR)
                {
                    return errno;
                }
            }
        }
    }

    /// <summary>
    /// Receives up to a batch of datagrams with one recvmmsg. Blocks until one arrives or the receive
    /// timeout passes; takes what is already queued after the first (MSG_WAITFORONE).
    /// Returns the count, 0 on timeout or signal, or −errno on failure. Never allocates.
    /// </summary>
    public int Receive(PacketBatch batch) => Receive(batch, Libc.MsgWaitForOne);

    /// <summary>As <see cref="Receive(PacketBatch)"/>, but returns 0 at once when nothing is queued.</summary>
    public int ReceiveNoWait(PacketBatch batch) => Receive(batch, Libc.MsgDontWait);

    /// <summary>
    /// Takes up to a batch of looped transmit timestamps from the socket's error queue (MSG_ERRQUEUE),
    /// without waiting: each slot a sent datagram as it left (<see cref="PacketBatch.IsLoopedTransmit"/>)
    /// with its timestamp in <see cref="PacketBatch.ReceiveTimestamp"/>. The error queue is charged to
    /// the receive buffer, so it is drained after every send that asked for timestamps, or requests
    /// would be dropped. Returns the count, 0 when empty, or −errno.
    /// </summary>
    public int ReceiveTransmitTimestamps(PacketBatch batch) => Receive(batch, Libc.MsgErrQueue | Libc.MsgDontWait);

    private int Receive(PacketBatch batch, int flags)
    {
        MMsgHdr* messages = batch.PrepareReceive();
        int n = Libc.RecvMMsg(_fd.Value, messages, (uint)batch.Capacity, flags, null);
        if (n < 0)
        {
            int errno = Marshal.GetLastSystemError();
            batch.CompleteReceive(0, _preferHardware);
            return errno is Errno.EAGAIN or Errno.EINTR ? 0 : -errno;
        }
        batch.CompleteReceive(n, _preferHardware);
        return n;
    }

    /// <summary>
    /// Sends every response marked in the batch with one sendmmsg (more only when the kernel takes part
    /// of the batch). A datagram the kernel refuses is skipped and counted. Returns the number refused.
    /// </summary>
    public int Send(PacketBatch batch)
    {
        MMsgHdr* messages;
        int count = batch.PrepareSend(&messages, IsIPv6, _transmitFlags);
        int errors = 0;
        int offset = 0;
        while (offset < count)
        {
            int sent = Libc.SendMMsg(_fd.Value, messages + offset, (uint)(count - offset), Libc.MsgDontWait);
            if (sent > 0)
            {
                offset += sent;
                continue;
            }
            if (sent < 0 && Marshal.GetLastSystemError() == Errno.EINTR)
            {
                continue;
            }
            // The first remaining message failed (full buffer, unreachable...): drop it, go on.
            errors++;
            offset++;
        }
        return errors;
    }

    /// <summary>
    /// Runs the send and receive paths once for real (the generated P/Invoke stubs, the kernel's
    /// first-send work) by sending one byte to a throwaway loopback socket, so that the first client's
    /// transmit timestamp is not followed by one-time work: a one-shot client would see that as
    /// path asymmetry. Best effort: without loopback it only compiles the code.
    /// </summary>
    public void WarmUp(PacketBatch batch)
    {
        IPAddress loopback = IsIPv6 ? IPAddress.IPv6Loopback : IPAddress.Loopback;
        TimestampedSocket? sink = null;
        try
        {
            sink = Open(new IPEndPoint(loopback, 0), new TimestampedSocketOptions { ReceiveTimeout = TimeSpan.FromMilliseconds(100) });
        }
        catch (SocketException)
        {
        }
        batch.Clear();
        if (sink is not null)
        {
            batch.Load(0, [0], sink.LocalEndPoint, 0);
            batch.SetResponse(0, 1);
        }
        Send(batch);
        if (sink is not null)
        {
            sink.Receive(batch);
            sink.Dispose();
        }
        batch.Clear();
    }

    public void Dispose() => _fd.Dispose();

    /// <summary>Owns the descriptor; closes it exactly once. The worker stops using it before disposing.</summary>
    private sealed class SocketFd : SafeHandle
    {
        public SocketFd(int fd)
            : base(-1, ownsHandle: true) => SetHandle(fd);

        public int Value => (int)handle;

        public override bool IsInvalid => handle == -1;

        protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
    }
}
