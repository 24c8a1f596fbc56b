using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>
/// Software mode's clock: the system clock plus a correction c(t) that the clock core steers exactly
/// as it would steer the kernel's — a frequency command changes c's slope (served time stays
/// continuous), a step moves it. The system clock itself is never touched. The correction is
/// published to the workers as the <see cref="TimeTransform"/> of the <see cref="ServerState"/>.
/// </summary>
public sealed class VirtualClock
{
    public TimeTransform Transform { get; private set; } = TimeTransform.Identity;

    /// <summary>Served time for a system-clock reading.</summary>
    public long ToServed(long systemNanoseconds) => Transform.Apply(systemNanoseconds);

    /// <summary>Applies a command issued at system-clock time <paramref name="systemNow"/>.</summary>
    public void Apply(ClockCommand command, long systemNow)
    {
        switch (command)
        {
            case ClockCommand.Step step:
                Transform = Transform with { OffsetNanoseconds = Transform.OffsetNanoseconds + (long)Math.Round(step.Seconds * 1e9) };
                break;
            case ClockCommand.SetFrequency frequency:
                // Re-anchor at now so the served clock does not jump, then change the slope.
                long correction = Transform.Apply(systemNow) - systemNow;
                Transform = new TimeTransform(systemNow, correction, frequency.Correction);
                break;
        }
    }
}
