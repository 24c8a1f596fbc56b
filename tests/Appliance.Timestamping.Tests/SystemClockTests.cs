namespace Appliance.Timestamping.Tests;

public class SystemClockTests
{
    [Fact]
    public void RealtimeNanoseconds_AgreesWithDateTimeUtcNow()
    {
        long before = DateTime.UtcNow.Ticks;
        long realtime = SystemClock.RealtimeNanoseconds();
        long after = DateTime.UtcNow.Ticks;
        long realtimeTicks = (realtime / 100) + DateTime.UnixEpoch.Ticks;
        Assert.InRange(realtimeTicks, before - 10, after + 10);
    }

    [Fact]
    public void MonotonicNanoseconds_NeverGoesBackwards()
    {
        long previous = SystemClock.MonotonicNanoseconds();
        for (int i = 0; i < 10_000; i++)
        {
            long now = SystemClock.MonotonicNanoseconds();
            Assert.True(now >= previous);
            previous = now;
        }
    }

    [Fact]
    public void MeasurePrecision_IsSubMicrosecondOnThisKernel()
    {
        // Linux reads CLOCK_REALTIME through the vDSO in tens of nanoseconds: 2^-20 s is about 1 µs.
        Assert.InRange(SystemClock.MeasurePrecision(), (sbyte)-32, (sbyte)-20);
    }

    [Theory]
    [InlineData(1L, -29)]
    [InlineData(30L, -24)]
    [InlineData(1_000L, -19)]
    [InlineData(1_000_000_000L, 0)]
    [InlineData(5_000_000_000L, 0)]
    public void PrecisionFromNanoseconds_IsCeilLog2Seconds(long step, int expected) =>
        Assert.Equal(expected, SystemClock.PrecisionFromNanoseconds(step));
}
