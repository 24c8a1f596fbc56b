using Appliance.Protocol;

namespace Appliance.Protocol.Tests;

public class NtpTimestampTests
{
    [Fact]
    public void FromUnixNanoseconds_UnixEpoch_IsNtpSeconds2208988800()
    {
        var ts = NtpTimestamp.FromUnixNanoseconds(0);
        Assert.Equal(2_208_988_800u, ts.Seconds);
        Assert.Equal(0u, ts.Fraction);
    }

    [Fact]
    public void FromUnixNanoseconds_HalfSecond_IsHalfFraction()
    {
        var ts = NtpTimestamp.FromUnixNanoseconds(1_500_000_000);
        Assert.Equal(2_208_988_801u, ts.Seconds);
        Assert.Equal(0x8000_0000u, ts.Fraction);
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(1_795_435_203_123_456_789L)] // 2026-11-23
    [InlineData(2_085_978_495_999_999_999L)] // just before the 2036 era wrap
    [InlineData(2_085_978_496_000_000_001L)] // just after it
    [InlineData(-1L)]
    public void ToUnixNanoseconds_RoundTripsWithinOneNanosecond(long unixNanoseconds)
    {
        var ts = NtpTimestamp.FromUnixNanoseconds(unixNanoseconds);
        long back = ts.ToUnixNanoseconds(unixNanoseconds + 1_000_000_000L * 3600 * 24 * 365);
        Assert.InRange(back - unixNanoseconds, -1, 1);
    }

    [Fact]
    public void FromUnixNanoseconds_After2036_WrapsToEra1()
    {
        // 2036-02-07T06:28:16Z is NTP era 1 second 0 (RFC 5905 §6).
        var ts = NtpTimestamp.FromUnixNanoseconds(2_085_978_496L * 1_000_000_000L);
        Assert.Equal(0u, ts.Seconds);
    }

    [Fact]
    public void SecondsSince_IsSignedDifference()
    {
        var a = NtpTimestamp.FromUnixNanoseconds(10_000_000_000);
        var b = NtpTimestamp.FromUnixNanoseconds(10_250_000_000);
        Assert.Equal(0.25, b.SecondsSince(a), 9);
        Assert.Equal(-0.25, a.SecondsSince(b), 9);
    }

    [Fact]
    public void NtpShort_RoundsUpAndSaturates()
    {
        Assert.Equal(0u, NtpShort.FromSeconds(0).Value);
        Assert.Equal(0u, NtpShort.FromSeconds(-1).Value);
        Assert.Equal(1u, NtpShort.FromSeconds(1e-9).Value);
        Assert.Equal(0x0001_8000u, NtpShort.FromSeconds(1.5).Value);
        Assert.Equal(uint.MaxValue, NtpShort.FromSeconds(1e9).Value);
    }
}
