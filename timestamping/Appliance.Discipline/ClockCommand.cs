using Appliance.Protocol;

namespace Appliance.Discipline;

/// <summary>What the clock core asks of the clock it steers (kernel mode); software mode ignores these.</summary>
public abstract record ClockCommand
{
    /// <summary>Step the clock by this many seconds (ADJ_SETOFFSET).</summary>
    public sealed record Step(double Seconds) : ClockCommand;

    /// <summary>Run the clock faster by this fraction (s/s; ADJ_FREQUENCY): drift correction plus slew.</summary>
    public sealed record SetFrequency(double Correction) : ClockCommand;

    /// <summary>Kernel status: leap to apply at the end of the UTC day, synchronised or not, error bounds, TAI − UTC.</summary>
    public sealed record SetStatus(LeapIndicator Leap, bool Synchronised, double MaxError, double EstimatedError, int TaiOffset) : ClockCommand;
}
