using Appliance.Fuzz.Targets;

namespace Appliance.Fuzz;

/// <summary>One fuzz target: bytes in; returns normally, or throws when the code under test failed.</summary>
public delegate void FuzzAction(ReadOnlySpan<byte> input);

/// <param name="Name">The name afl-fuzz runs it by, and its corpus directory (tests/testdata/fuzz/NAME).</param>
/// <param name="MaxInput">Inputs are cut to this many bytes: the most the appliance itself reads of that input, or less where more adds nothing but time.</param>
public sealed record FuzzTarget(string Name, int MaxInput, FuzzAction Run);

/// <summary>Every target; `make fuzz` runs them all, Appliance.Fuzz.Tests replays each one's corpus.</summary>
public static class FuzzTargets
{
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        new("ntp", NtpTarget.MaxInput, NtpTarget.Run),
        new("nts", NtsTarget.MaxInput, NtsTarget.Run),
        new("ntske-records", NtsKeTargets.MaxInput, NtsKeTargets.Records),
        new("ntske-server", NtsKeTargets.MaxInput, NtsKeTargets.Server),
        new("ntske-client", NtsKeTargets.MaxInput, NtsKeTargets.Client),
        new("upstream", UpstreamTarget.MaxInput, UpstreamTarget.Run),
        new("gpsd", GpsdTarget.MaxInput, GpsdTarget.Run),
        new("ptp", PtpTarget.MaxInput, PtpTarget.Run),
        new("config", ConfigTarget.MaxInput, ConfigTarget.Run),
        new("chrony", ChronyTarget.MaxInput, ChronyTarget.Run),
        new("control", ControlTarget.MaxInput, ControlTarget.Run),
        new("roughtime", RoughtimeTarget.MaxInput, RoughtimeTarget.Run),
    ];

    public static FuzzTarget? Find(string name) => All.FirstOrDefault(t => t.Name == name);
}

/// <summary>
/// An invariant of the code under test does not hold: a finding, like an exception that escapes.
/// Its own type, so a crash report says which of the two it is.
/// </summary>
public sealed class InvariantViolatedException : Exception
{
    public InvariantViolatedException()
    {
    }

    public InvariantViolatedException(string message)
        : base(message)
    {
    }

    public InvariantViolatedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Throws unless <paramref name="holds"/>.</summary>
    public static void Check(bool holds, string invariant)
    {
        if (!holds)
        {
            throw new InvariantViolatedException(invariant);
        }
    }
}
