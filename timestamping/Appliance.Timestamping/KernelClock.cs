using System.Runtime.InteropServices;
using Appliance.Discipline;
using Appliance.Protocol;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>What the kernel says about its clock discipline (clock_adjtime with modes = 0).</summary>
public readonly record struct KernelClockState(int Result, double FrequencyPpm, double MaxErrorSeconds, double EstErrorSeconds, int Status, int TaiOffset,
    long TickMicroseconds, double TolerancePpm)
{
    /// <summary>STA_UNSYNC: the kernel tells readers of adjtimex that the clock is not synchronised.</summary>
    public bool Unsynchronised => (Status & KernelClock.StaUnsync) != 0;
}

/// <summary>
/// Steers CLOCK_REALTIME through clock_adjtime(2) for kernel mode: the frequency (ADJ_FREQUENCY),
/// steps (ADJ_SETOFFSET, atomic in the kernel), the status word (leap insert/delete, STA_UNSYNC),
/// maxerror/esterror (what adjtimex readers such as ntp_gettime see) and the TAI offset. The clock
/// core computes the slew itself as a frequency, so the kernel's own PLL stays off (no STA_PLL).
/// The system call is injectable: tests drive a simulated clock and never steer the machine's.
/// </summary>
public sealed class KernelClock(KernelClock.AdjtimeCall adjtime) : ISteeredClock
{
    // The core restates the status every tick; the kernel hears it at once when the leap or sync
    // state changes, else every 16 s (its error bounds grow by themselves in between).
    private const long StatusRefreshNanoseconds = 16_000_000_000L;

    private (LeapIndicator Leap, bool Synchronised)? _status;
    private long _statusTime;

    /// <summary>clock_adjtime(CLOCK_REALTIME, …): the result, or −errno.</summary>
    public delegate int AdjtimeCall(ref Timex timex);

    // linux/timex.h
    public const uint AdjOffset = 0x0001, AdjFrequency = 0x0002, AdjMaxError = 0x0004, AdjEstError = 0x0008,
        AdjStatus = 0x0010, AdjTai = 0x0080, AdjSetOffset = 0x0100, AdjNano = 0x2000;

    public const int StaIns = 0x0010, StaDel = 0x0020, StaUnsync = 0x0040;

    /// <summary>The kernel refuses frequencies beyond ±500 ppm (MAXFREQ).</summary>
    public const double MaxFrequency = 500e-6;

    /// <summary>The real CLOCK_REALTIME. Needs CAP_SYS_TIME for anything but <see cref="Read"/>.</summary>
    public static KernelClock Realtime { get; } = new(Native);

    private static int Native(ref Timex timex)
    {
        int result = Libc.ClockAdjtime(Libc.ClockRealtime, ref timex);
        return result < 0 ? -Marshal.GetLastPInvokeError() : result;
    }

    /// <summary>The steered clock is the system clock itself.</summary>
    public long Now() => SystemClock.RealtimeNanoseconds();

    /// <summary>Kernel timestamps are readings of the steered clock: nothing to map.</summary>
    public TimeTransform Transform => TimeTransform.Identity;

    /// <summary>Reads the discipline state without changing anything (modes = 0).</summary>
    public KernelClockState Read()
    {
        var timex = default(Timex);
        int result = Call(ref timex, "read the clock state");
        return new KernelClockState(result, timex.Frequency / 65536.0, timex.MaxError / 1e6, timex.EstError / 1e6, timex.Status, timex.Tai,
            timex.Tick, timex.Tolerance / 65536.0);
    }

    /// <summary>Sets the frequency correction (s/s; positive runs the clock faster), clamped to ±500 ppm.</summary>
    public void SetFrequency(double correction)
    {
        var timex = new Timex
        {
            Modes = AdjFrequency,
            Frequency = (long)Math.Round(Math.Clamp(correction, -MaxFrequency, MaxFrequency) * 1e6 * 65536),
        };
        Call(ref timex, "set the frequency");
    }

    /// <summary>Steps the clock by <paramref name="seconds"/> (ADJ_SETOFFSET | ADJ_NANO: one atomic add in the kernel).</summary>
    public void Step(double seconds)
    {
        long nanoseconds = (long)Math.Round(seconds * 1e9);
        // struct timeval with ADJ_NANO: tv_usec holds ns and must be in [0, 1e9); negative steps borrow a second.
        long whole = Math.DivRem(nanoseconds, 1_000_000_000L, out long fraction);
        if (fraction < 0)
        {
            whole--;
            fraction += 1_000_000_000L;
        }
        var timex = new Timex { Modes = AdjSetOffset | AdjNano, TimeSeconds = whole, TimeFraction = fraction };
        Call(ref timex, "step the clock");
    }

    /// <summary>
    /// The status the kernel reports to its readers and acts on at midnight UTC: a pending leap
    /// second (STA_INS/STA_DEL, executed by the kernel itself), STA_UNSYNC, the error bounds (µs)
    /// and the TAI offset. Written at once when the leap or sync state changes, else every 16 s.
    /// </summary>
    public void SetStatus(LeapIndicator leap, bool synchronised, double maxErrorSeconds, double estimatedErrorSeconds, int taiOffset)
    {
        long now = SystemClock.MonotonicNanoseconds();
        if (_status == (leap, synchronised) && now - _statusTime < StatusRefreshNanoseconds)
        {
            return;
        }
        int status = (leap == LeapIndicator.InsertSecond ? StaIns : leap == LeapIndicator.DeleteSecond ? StaDel : 0) | (synchronised ? 0 : StaUnsync);
        var timex = new Timex
        {
            Modes = AdjStatus | AdjMaxError | AdjEstError | (taiOffset > 0 ? AdjTai : 0),
            Status = status,
            MaxError = (long)Math.Min(16e6, Math.Round(maxErrorSeconds * 1e6)),
            EstError = (long)Math.Min(16e6, Math.Round(estimatedErrorSeconds * 1e6)),
            Constant = taiOffset,
        };
        Call(ref timex, "set the clock status");
        _status = (leap, synchronised);
        _statusTime = now;
    }

    private int Call(ref Timex timex, string what)
    {
        int result = adjtime(ref timex);
        if (result < 0)
        {
            string reason = -result == Errno.EPERM
                ? "operation not permitted: kernel mode needs CAP_SYS_TIME (run as the appliance service, or set clock.mode: software)"
                : $"errno {-result}";
            throw new InvalidOperationException($"clock_adjtime could not {what}: {reason}");
        }
        return result;
    }
}
