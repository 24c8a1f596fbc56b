using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>
/// struct timex on x86-64 glibc (linux/timex.h): 208 bytes, every offset pinned by a test. Only the
/// fields the appliance writes or reads are named; the tail is the kernel's reserved padding.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 208)]
public struct Timex
{
    [FieldOffset(0)] public uint Modes;

    /// <summary>ADJ_SETOFFSET: the step's sub-second part lives in <see cref="TimeFraction"/>; ADJ_OFFSET: the offset to slew.</summary>
    [FieldOffset(8)] public long Offset;

    /// <summary>Frequency offset in ppm with a 16-bit binary fraction (scaled ppm, ±500 ppm).</summary>
    [FieldOffset(16)] public long Frequency;

    [FieldOffset(24)] public long MaxError;
    [FieldOffset(32)] public long EstError;
    [FieldOffset(40)] public int Status;

    /// <summary>PLL time constant; with ADJ_TAI, the TAI−UTC offset.</summary>
    [FieldOffset(48)] public long Constant;

    [FieldOffset(56)] public long Precision;
    [FieldOffset(64)] public long Tolerance;

    /// <summary>struct timeval time: seconds, then µs (ns with ADJ_NANO).</summary>
    [FieldOffset(72)] public long TimeSeconds;
    [FieldOffset(80)] public long TimeFraction;

    [FieldOffset(88)] public long Tick;
    [FieldOffset(160)] public int Tai;
}

internal static partial class Libc
{
    /// <summary>clock_adjtime(2): reads (modes = 0) or adjusts a clock; returns the clock state (TIME_OK...) or −1.</summary>
    [LibraryImport("libc", EntryPoint = "clock_adjtime", SetLastError = true)]
    internal static partial int ClockAdjtime(int clockId, ref Timex timex);
}
