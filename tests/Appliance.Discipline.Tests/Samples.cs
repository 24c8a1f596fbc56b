using Appliance.Protocol;

namespace Appliance.Discipline.Tests;

/// <summary>Samples as a stratum-1 upstream would produce them, in Unix nanoseconds.</summary>
internal static class Samples
{
    public const long Start = 1_795_435_200L * 1_000_000_000; // 2026-11-23

    public static long At(double seconds) => Start + (long)(seconds * 1e9);

    public static Sample Make(double atSeconds, double offset, double delay = 300e-6, LeapIndicator leap = LeapIndicator.NoWarning, byte stratum = 1) =>
        new(At(atSeconds), offset, delay, 1e-6, RootDelay: 0, RootDispersion: 10e-6, stratum, leap, 0x47505300);
}
