using System.Buffers.Binary;

namespace Appliance.Protocol;

/// <summary>
/// An NTP timestamp (RFC 5905 §6): 32 bits of seconds since 1900-01-01 and 32 bits of fraction.
/// The seconds wrap every 136 years (era); conversions resolve the era against a pivot.
/// </summary>
public readonly record struct NtpTimestamp(ulong Value)
{
    /// <summary>Seconds from 1900-01-01 (NTP prime epoch) to 1970-01-01 (Unix epoch).</summary>
    public const long UnixEpochOffsetSeconds = 2_208_988_800;
    private const long NanosPerSecond = 1_000_000_000;

    public static NtpTimestamp Zero => default;

    public uint Seconds => (uint)(Value >> 32);
    public uint Fraction => (uint)Value;
    public bool IsZero => Value == 0;

    /// <summary>Converts nanoseconds since the Unix epoch; the era is dropped (RFC 5905 §6).</summary>
    public static NtpTimestamp FromUnixNanoseconds(long unixNanoseconds)
    {
        long seconds = Math.DivRem(unixNanoseconds, NanosPerSecond, out long nanos);
        if (nanos < 0)
        {
            nanos += NanosPerSecond;
            seconds--;
        }
        // nanos < 1e9 < 2^30, so nanos << 32 fits in 62 bits; rounding to nearest keeps the
        // round trip through ToUnixNanoseconds exact.
        ulong fraction = (((ulong)nanos << 32) + (NanosPerSecond / 2)) / NanosPerSecond;
        ulong ntpSeconds = (ulong)(uint)(seconds + UnixEpochOffsetSeconds);
        return new NtpTimestamp((ntpSeconds << 32) + fraction);
    }

    /// <summary>
    /// Converts to nanoseconds since the Unix epoch, choosing the era that puts the result
    /// closest to <paramref name="pivotUnixNanoseconds"/> (within ±68 years).
    /// </summary>
    public long ToUnixNanoseconds(long pivotUnixNanoseconds)
    {
        long nanos = (long)(((ulong)Fraction * NanosPerSecond + (1UL << 31)) >> 32);
        long pivotNtpSeconds = Math.DivRem(pivotUnixNanoseconds, NanosPerSecond, out long pivotRem) + UnixEpochOffsetSeconds;
        if (pivotRem < 0)
        {
            pivotNtpSeconds--;
        }
        // The signed 32-bit difference between the wire seconds and the pivot's picks the nearest era.
        int delta = unchecked((int)(Seconds - (uint)pivotNtpSeconds));
        long ntpSeconds = pivotNtpSeconds + delta;
        return ((ntpSeconds - UnixEpochOffsetSeconds) * NanosPerSecond) + nanos;
    }

    /// <summary>Difference this − other in seconds, assuming both are within 68 years of each other.</summary>
    public double SecondsSince(NtpTimestamp other) => unchecked((long)(Value - other.Value)) / 4294967296.0;

    public NtpTimestamp AddSeconds(double seconds) => new(unchecked(Value + (ulong)(long)Math.Round(seconds * 4294967296.0)));

    public static NtpTimestamp Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt64BigEndian(source));

    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64BigEndian(destination, Value);

    public override string ToString() => $"{Seconds:x8}.{Fraction:x8}";
}

/// <summary>
/// NTP short format (RFC 5905 §6): 16 bits of seconds and 16 bits of fraction, used for root delay
/// and root dispersion. Conversions saturate instead of wrapping.
/// </summary>
public readonly record struct NtpShort(uint Value)
{
    public static NtpShort FromSeconds(double seconds)
    {
        if (!(seconds > 0))
        {
            return default;
        }
        double scaled = Math.Ceiling(seconds * 65536.0); // round up: never understate delay or dispersion
        return new NtpShort(scaled >= uint.MaxValue ? uint.MaxValue : (uint)scaled);
    }

    public double ToSeconds() => Value / 65536.0;

    public static NtpShort Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt32BigEndian(source));

    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt32BigEndian(destination, Value);
}
