using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>
/// Software mode's clock: the system clock plus a correction c(t) that the clock core steers exactly
/// as it would steer the kernel's — a frequency command changes c's slope (served time stays
/// continuous), a step moves it. The system clock itself is never touched, and neither is the
/// kernel's status. The correction is published to the workers as the <see cref="TimeTransform"/> of
/// the <see cref="ServerState"/>.
/// </summary>
/// <param name="system">Reads the untouched clock underneath (Unix nanoseconds): the system clock, or a simulated one.</param>
public sealed class VirtualClock(Func<long> system) : ISteeredClock
{
    public TimeTransform Transform { get; private set; } = TimeTransform.Identity;

    public long Now() => Transform.Apply(system());

    public void Step(double seconds) =>
        Transform = Transform with { OffsetNanoseconds = Transform.OffsetNanoseconds + (long)Math.Round(seconds * 1e9) };

    public void SetFrequency(double correction)
    {
        // Re-anchor at now so the served clock does not jump, then change the slope.
        long now = system();
        Transform = new TimeTransform(now, Transform.Apply(now) - now, correction);
    }

    public void SetStatus(LeapIndicator leap, bool synchronised, double maxErrorSeconds, double estimatedErrorSeconds, int taiOffset)
    {
        // The leap and sync status reach clients through the ServerState; the kernel's stays as it is.
    }
}
