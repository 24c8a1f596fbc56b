using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>struct pps_ktime (linux/pps.h): 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PpsKTime
{
    public long Seconds;
    public int Nanoseconds;
    public uint Flags;

    public readonly long ToNanoseconds() => (Seconds * 1_000_000_000L) + Nanoseconds;
}

/// <summary>struct pps_kinfo: the last assert and clear edges with their sequence numbers; 48 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PpsKInfo
{
    public uint AssertSequence;
    public uint ClearSequence;
    public PpsKTime AssertTime;
    public PpsKTime ClearTime;
    public int CurrentMode;
}

/// <summary>struct pps_fdata: PPS_FETCH's argument, the info and a timeout; 64 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PpsFData
{
    public PpsKInfo Info;
    public PpsKTime Timeout;
}

/// <summary>struct pps_kparams: PPS_GETPARAMS/PPS_SETPARAMS; 40 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PpsKParams
{
    public int ApiVersion;
    public int Mode;
    public PpsKTime AssertOffset;
    public PpsKTime ClearOffset;
}

internal static partial class Libc
{
    // linux/pps.h: the size field of these ioctl numbers is that of a pointer (8), as the header declares them.
    internal const uint PpsGetParams = 0x800870a1;   // _IOR('p', 0xa1, struct pps_kparams *)
    internal const uint PpsSetParams = 0x400870a2;   // _IOW('p', 0xa2, struct pps_kparams *)
    internal const uint PpsGetCap = 0x800870a3;      // _IOR('p', 0xa3, int *)
    internal const uint PpsFetch = 0xc00870a4;       // _IOWR('p', 0xa4, struct pps_fdata *)

    internal const int PpsCaptureAssert = 0x01, PpsCaptureClear = 0x02, PpsTsFmtTspec = 0x1000;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlPpsFetch(int fd, nuint request, ref PpsFData data);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlPpsParams(int fd, nuint request, ref PpsKParams parameters);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlInt(int fd, nuint request, out int value);
}
