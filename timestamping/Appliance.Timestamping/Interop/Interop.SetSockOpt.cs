using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static unsafe partial class Libc
{
    internal const int SolSocket = 1;
    internal const int SoRcvBuf = 8;
    internal const int SoSndBuf = 7;
    internal const int SoReusePort = 15;
    internal const int SoRcvTimeo = 20;
    internal const int SoBindToDevice = 25;
    internal const int SoRcvBufForce = 33;
    internal const int SoTimestampNs = 35;
    internal const int SoTimestamping = 37;
    internal const int SoAttachReusePortCbpf = 51;

    internal const int IpProtoIp = 0;
    internal const int IpMulticastIf = 32;
    internal const int IpAddMembership = 35;
    internal const int IpPktInfo = 8;
    internal const int IpProtoIpv6 = 41;
    internal const int Ipv6V6Only = 26;
    internal const int Ipv6RecvPktInfo = 49;
    internal const int Ipv6PktInfo = 50;

    /// <summary>The control messages that carry a looped transmit timestamp's struct sock_extended_err (ip_recv_error, ipv6_recv_error).</summary>
    internal const int IpRecvErr = 11;
    internal const int Ipv6RecvErr = 25;

    /// <summary>sock_extended_err.ee_origin of a transmit timestamp (linux/errqueue.h).</summary>
    internal const byte SoEeOriginTimestamping = 4;

    /// <summary>SO_TIMESTAMPING flags (linux/net_tstamp.h).</summary>
    internal const int SofTimestampingTxHardware = 1 << 0;
    internal const int SofTimestampingTxSoftware = 1 << 1;
    internal const int SofTimestampingRxHardware = 1 << 2;
    internal const int SofTimestampingRxSoftware = 1 << 3;
    internal const int SofTimestampingSoftware = 1 << 4;
    internal const int SofTimestampingRawHardware = 1 << 6;
    internal const int SofTimestampingOptTsonly = 1 << 11;

    /// <summary>setsockopt(2).</summary>
    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    internal static partial int SetSockOpt(int fd, int level, int name, void* value, uint length);

    internal static int SetSockOptInt(int fd, int level, int name, int value) => SetSockOpt(fd, level, name, &value, sizeof(int));

    /// <summary>getsockopt(2).</summary>
    [LibraryImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    internal static partial int GetSockOpt(int fd, int level, int name, void* value, uint* length);

    /// <summary>An int option's value, or -1 when it cannot be read.</summary>
    internal static int GetSockOptInt(int fd, int level, int name)
    {
        int value;
        uint length = sizeof(int);
        return GetSockOpt(fd, level, name, &value, &length) == 0 ? value : -1;
    }

    /// <summary>IFNAMSIZ (linux/if.h): an interface name and its terminating NUL.</summary>
    internal const int InterfaceNameSize = 16;
}

/// <summary>struct timeval (16 bytes), for SO_RCVTIMEO.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct Timeval
{
    public long Seconds;
    public long Microseconds;
}
