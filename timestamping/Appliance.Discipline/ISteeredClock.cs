using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>
/// The clock the core steers (DESIGN.md "Time"): CLOCK_REALTIME through clock_adjtime in kernel mode
/// (<c>KernelClock</c>), a <see cref="VirtualClock"/> over the untouched system clock in software mode,
/// or the simulator's oscillator. The daemon and the simulation carry out the core's commands through
/// the one dispatch, <see cref="SteeredClock.Apply"/>.
/// </summary>
public interface ISteeredClock
{
    /// <summary>The steered clock's reading now, Unix nanoseconds: the time the core works in.</summary>
    long Now();

    /// <summary>
    /// The steered clock for a reading of the system clock (kernel timestamps, sources' T1 and T4):
    /// identity when the system clock is the one steered, the correction in software mode. Published to
    /// the workers in the <see cref="ServerState"/>.
    /// </summary>
    TimeTransform Transform { get; }

    /// <summary>Steps the clock by <paramref name="seconds"/>.</summary>
    void Step(double seconds);

    /// <summary>Runs the clock faster by <paramref name="correction"/> (s/s): drift correction plus slew.</summary>
    void SetFrequency(double correction);

    /// <summary>The status readers of the clock see: a pending leap second, synchronised or not, error bounds, TAI − UTC.</summary>
    void SetStatus(LeapIndicator leap, bool synchronised, double maxErrorSeconds, double estimatedErrorSeconds, int taiOffset);
}

/// <summary>The one dispatch from the core's <see cref="ClockCommand"/>s to the clock it steers.</summary>
public static class SteeredClock
{
    public static void Apply(this ISteeredClock clock, IReadOnlyList<ClockCommand> commands)
    {
        foreach (ClockCommand command in commands)
        {
            switch (command)
            {
                case ClockCommand.Step step:
                    clock.Step(step.Seconds);
                    break;
                case ClockCommand.SetFrequency frequency:
                    clock.SetFrequency(frequency.Correction);
                    break;
                case ClockCommand.SetStatus status:
                    clock.SetStatus(status.Leap, status.Synchronised, status.MaxError, status.EstimatedError, status.TaiOffset);
                    break;
            }
        }
    }
}
