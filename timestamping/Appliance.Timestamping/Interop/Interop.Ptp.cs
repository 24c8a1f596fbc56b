using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>struct ptp_clock_time (linux/ptp_clock.h): 16 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PtpClockTime
{
    public long Seconds;
    public uint Nanoseconds;
    public uint Reserved;

    public readonly long ToNanoseconds() => (Seconds * 1_000_000_000L) + Nanoseconds;
}

/// <summary>
/// struct ptp_sys_offset: n_samples, 3 reserved words, then 2n+1 alternating readings
/// (system, PHC, system, …, system); room for PTP_MAX_SAMPLES = 25: 832 bytes.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 832)]
public struct PtpSysOffset
{
    public const int MaxSamples = 25;

    public uint Samples;
    public uint Reserved0;
    public uint Reserved1;
    public uint Reserved2;
    public PtpClockTime First;
}

internal static partial class Libc
{
    /// <summary>_IOW('=', 5, struct ptp_sys_offset).</summary>
    internal const uint PtpSysOffsetRequest = 0x43403d05;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    internal static partial int IoctlPtpSysOffset(int fd, nuint request, ref PtpSysOffset data);
}
