using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>struct iovec: 16 bytes on x86-64.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    public byte* Base;
    public nuint Length;
}

/// <summary>
/// struct msghdr: 56 bytes on x86-64 glibc (name at 0, namelen at 8, iov at 16, iovlen at 24,
/// control at 32, controllen at 40, flags at 48). Sizes and offsets pinned by NativeLayoutTests.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public byte* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public byte* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary>struct mmsghdr: a msghdr and the byte count the kernel fills in; 64 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct MMsgHdr
{
    public MsgHdr Header;
    public uint Length;
}

/// <summary>struct cmsghdr: 16 bytes, data at +16; CMSG_ALIGN is 8.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CMsgHdr
{
    public nuint Length;
    public int Level;
    public int Type;

    public static int Align(int length) => (length + 7) & ~7;

    public static int Space(int dataLength) => Align(16) + Align(dataLength);

    public static int Len(int dataLength) => Align(16) + dataLength;
}

/// <summary>struct in_pktinfo: 12 bytes (IP_PKTINFO).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct InPktInfo
{
    public int IfIndex;
    public uint SpecificDestination;
    public uint Address;
}

/// <summary>struct in6_pktinfo: 20 bytes (IPV6_PKTINFO).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct In6PktInfo
{
    public fixed byte Address[16];
    public int IfIndex;
}

internal static unsafe partial class Libc
{
    internal const int MsgDontWait = 0x40;
    internal const int MsgErrQueue = 0x2000;
    internal const int MsgTrunc = 0x20;
    internal const int MsgCTrunc = 0x08;
    internal const int MsgWaitForOne = 0x10000;

    /// <summary>
    /// recvmmsg(2). The timeout is left null: the loop wakes through SO_RCVTIMEO. No SetLastError: its
    /// stub clears errno before and reads it after every call (two more native calls, 2.5 % of a
    /// worker's CPU at 30 k/s); callers read <see cref="Marshal.GetLastSystemError"/> right after a
    /// call that failed, which the runtime keeps intact (its GC-suspend path on return from native
    /// code preserves the last error).
    /// </summary>
    [LibraryImport("libc", EntryPoint = "recvmmsg")]
    internal static partial int RecvMMsg(int fd, MMsgHdr* messages, uint count, int flags, Timespec* timeout);
}
