namespace Appliance.Engine;

/// <summary>
/// How long a worker pauses before it restarts after a fault: from <see cref="First"/>, doubling up to
/// <see cref="Max"/> while faults come close together (a fault that repeats at once must not spin a
/// core), and back to <see cref="First"/> once the worker has run <see cref="HealthyRun"/> without one.
/// Without the reset, a worker that faulted nine times over months was down 30 s at every later
/// fault (issue #14 item 13). A fault that keeps coming back within a minute of each restart is a
/// standing fault: its pause stays at <see cref="Max"/>.
/// </summary>
public sealed record RestartBackoff(TimeSpan First, TimeSpan Max, TimeSpan HealthyRun)
{
    /// <summary>100 ms, doubling to 30 s; reset after a minute without a fault.</summary>
    public static RestartBackoff Default { get; } = new(TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(1));

    /// <summary>The pause after a fault that ended a run of <paramref name="ranFor"/>, given the pause before it (<see cref="TimeSpan.Zero"/> for the first fault).</summary>
    public TimeSpan Next(TimeSpan previous, TimeSpan ranFor) =>
        previous <= TimeSpan.Zero || ranFor >= HealthyRun
            ? First
            : TimeSpan.FromTicks(Math.Min(previous.Ticks * 2, Max.Ticks));
}
