using System.Runtime.InteropServices;
using Appliance.Protocol;
using Appliance.Testing;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping.Tests;

/// <summary>
/// clock_adjtime: the struct layout, the real kernel read without changing anything (modes = 0), and
/// every write against a simulated kernel. These tests never steer the machine's clock.
/// </summary>
public class KernelClockTests
{
    [Fact]
    public void Timex_Is208BytesWithGlibcOffsets()
    {
        Assert.Equal(208, Marshal.SizeOf<Timex>());
        (string Field, int Offset)[] expected =
        [
            (nameof(Timex.Modes), 0), (nameof(Timex.Offset), 8), (nameof(Timex.Frequency), 16), (nameof(Timex.MaxError), 24),
            (nameof(Timex.EstError), 32), (nameof(Timex.Status), 40), (nameof(Timex.Constant), 48), (nameof(Timex.Precision), 56),
            (nameof(Timex.Tolerance), 64), (nameof(Timex.TimeSeconds), 72), (nameof(Timex.TimeFraction), 80), (nameof(Timex.Tick), 88),
            (nameof(Timex.Tai), 160),
        ];
        foreach ((string field, int offset) in expected)
        {
            Assert.Equal(offset, (int)Marshal.OffsetOf<Timex>(field));
        }
    }

    [Fact]
    public void RealKernel_ReadOnly_GivesTheKernelsConstants()
    {
        // modes = 0 changes nothing and needs no privilege. A wrong layout would read garbage here:
        // the tick is 10 000 µs at USER_HZ 100 and the tolerance is the kernel's MAXFREQ, 500 ppm.
        KernelClockState state = KernelClock.Realtime.Read();
        Assert.InRange(state.Result, 0, 5); // TIME_OK … TIME_ERROR
        Assert.Equal(10_000, state.TickMicroseconds);
        Assert.Equal(500, state.TolerancePpm);
        Assert.InRange(state.FrequencyPpm, -500, 500);
        Assert.InRange(state.TaiOffset, 0, 100);
    }

    [Theory]
    [InlineData(12.5e-6, 819200)]      // 12.5 ppm × 2^16
    [InlineData(-3e-6, -196608)]
    [InlineData(800e-6, 32768000)]     // clamped to the kernel's ±500 ppm
    public void SetFrequency_WritesScaledPpm(double correction, long scaled)
    {
        var kernel = new SimulatedKernel();
        new KernelClock(kernel.Adjtime).SetFrequency(correction);
        Timex call = Assert.Single(kernel.Calls);
        Assert.Equal(KernelClock.AdjFrequency, call.Modes);
        Assert.Equal(scaled, call.Frequency);
    }

    [Theory]
    [InlineData(1.25, 1, 250_000_000)]
    [InlineData(-0.3, -1, 700_000_000)]  // tv_nsec must be in [0, 1e9): −0.3 s = −1 s + 0.7 s
    [InlineData(-2.0, -2, 0)]
    public void Step_UsesSetOffsetInNanoseconds(double seconds, long whole, long fraction)
    {
        var kernel = new SimulatedKernel();
        new KernelClock(kernel.Adjtime).Step(seconds);
        Timex call = Assert.Single(kernel.Calls);
        Assert.Equal(KernelClock.AdjSetOffset | KernelClock.AdjNano, call.Modes);
        Assert.Equal(whole, call.TimeSeconds);
        Assert.Equal(fraction, call.TimeFraction);
    }

    [Fact]
    public void SetStatus_LeapInsertUnsyncAndErrorsAndTai()
    {
        var kernel = new SimulatedKernel();
        var clock = new KernelClock(kernel.Adjtime);
        clock.SetStatus(LeapIndicator.InsertSecond, synchronised: true, maxErrorSeconds: 0.0025, estimatedErrorSeconds: 0.00001, taiOffset: 37);
        clock.SetStatus(LeapIndicator.NoWarning, synchronised: false, maxErrorSeconds: 100, estimatedErrorSeconds: 16, taiOffset: 0);

        Timex inserting = kernel.Calls[0];
        Assert.Equal(KernelClock.AdjStatus | KernelClock.AdjMaxError | KernelClock.AdjEstError | KernelClock.AdjTai, inserting.Modes);
        Assert.Equal(KernelClock.StaIns, inserting.Status); // and not STA_PLL: the kernel's own loop stays off
        Assert.Equal(2500, inserting.MaxError);
        Assert.Equal(10, inserting.EstError);
        Assert.Equal(37, inserting.Constant);

        Timex unsynchronised = kernel.Calls[1];
        Assert.Equal(KernelClock.StaUnsync, unsynchronised.Status);
        Assert.Equal(16_000_000, unsynchronised.MaxError); // the kernel's NTP_PHASE_LIMIT-style cap
        Assert.Equal(0u, unsynchronised.Modes & KernelClock.AdjTai);
    }

    [Fact]
    public void SetStatus_Unchanged_IsNotRewrittenEveryTick_AChangeIsAtOnce()
    {
        var kernel = new SimulatedKernel();
        var clock = new KernelClock(kernel.Adjtime);
        for (int tick = 0; tick < 5; tick++)
        {
            clock.SetStatus(LeapIndicator.NoWarning, synchronised: true, 0.001 * (tick + 1), 0.0001, 37);
        }
        Assert.Single(kernel.Calls);
        clock.SetStatus(LeapIndicator.InsertSecond, synchronised: true, 0.001, 0.0001, 37);
        Assert.Equal(2, kernel.Calls.Count);
        Assert.Equal(KernelClock.StaIns, kernel.Calls[1].Status);
    }

    [Fact]
    public void SetStatus_AFailedCall_IsRetriedAtTheNextTick()
    {
        var kernel = new SimulatedKernel { Errno = 1 };
        var clock = new KernelClock(kernel.Adjtime);
        Assert.Throws<InvalidOperationException>(() => clock.SetStatus(LeapIndicator.NoWarning, false, 16, 16, 0));
        kernel.Errno = 0;
        clock.SetStatus(LeapIndicator.NoWarning, false, 16, 16, 0);
        Assert.Equal(2, kernel.Calls.Count);
    }

    [Fact]
    public void PermissionDenied_SaysWhatToDo()
    {
        var kernel = new SimulatedKernel { Errno = 1 };
        var e = Assert.Throws<InvalidOperationException>(() => new KernelClock(kernel.Adjtime).Step(1));
        Assert.Contains("CAP_SYS_TIME", e.Message, StringComparison.Ordinal);
        Assert.Contains("software", e.Message, StringComparison.Ordinal);
    }
}
