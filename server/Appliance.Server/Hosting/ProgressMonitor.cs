namespace Appliance.Server.Hosting;

/// <summary>A part that has stopped making progress: its heartbeat stood still, or it keeps failing and restarting.</summary>
/// <param name="Since">How long the heartbeat has stood still (zero for a part that keeps failing).</param>
public sealed record Stall(string Part, bool Failing, TimeSpan Since)
{
    public string Problem => Failing ? "keeps failing and restarting" : $"has made no progress for {Since.TotalSeconds:F1} s";
}

/// <summary>
/// Decides from heartbeats whether the parts the watchdog vouches for (every NTP worker, the clock
/// service) still make progress. A part is stalled when its heartbeat has not moved for its grace
/// (a few of its own turns: a worker turns at least every receive timeout, 250 ms; the clock
/// service every second), or while its restart back-off has grown and it failed within the last
/// <see cref="FaultMemoryGraces"/> graces: a fault that keeps coming back is no progress, however
/// often the loop restarts and turns in between (the memory spans the short pauses of the first
/// restarts; from a pause longer than the grace on, the still heartbeat shows it too). "Now" is
/// passed in (monotonic nanoseconds); not thread-safe: one caller, the systemd loop.
/// </summary>
public sealed class ProgressMonitor
{
    /// <summary>How long, in graces, a fault with a grown back-off keeps its part stalled.</summary>
    public const int FaultMemoryGraces = 5;

    private readonly List<Part> _parts = [];

    /// <param name="heartbeat">Reads the part's turn counter.</param>
    /// <param name="grace">How long the counter may stand still before the part counts as stalled.</param>
    /// <param name="faults">Reads how often the part has failed and restarted (optional).</param>
    /// <param name="repeating">Whether its faults come close together (its back-off has grown).</param>
    public void Add(string name, Func<long> heartbeat, TimeSpan grace, long now, Func<long>? faults = null, Func<bool>? repeating = null) =>
        _parts.Add(new Part(name, heartbeat, (long)(grace.TotalMilliseconds * 1_000_000), faults, repeating)
        {
            Beat = heartbeat(),
            ChangedAt = now,
            Faults = faults?.Invoke() ?? 0,
        });

    /// <summary>The stalled parts now, in the order they were added; empty when all make progress.</summary>
    public IReadOnlyList<Stall> Check(long now)
    {
        var stalls = new List<Stall>();
        foreach (Part part in _parts)
        {
            long beat = part.Heartbeat();
            if (beat != part.Beat)
            {
                part.Beat = beat;
                part.ChangedAt = now;
            }
            long faults = part.ReadFaults?.Invoke() ?? 0;
            if (faults != part.Faults)
            {
                part.Faults = faults;
                part.FaultedAt = now;
            }
            bool failing = part.FaultedAt is long at && now - at < FaultMemoryGraces * part.GraceNanoseconds && part.Repeating?.Invoke() == true;
            long still = now - part.ChangedAt;
            if (failing || still >= part.GraceNanoseconds)
            {
                stalls.Add(new Stall(part.Name, failing, TimeSpan.FromTicks(still / 100)));
            }
        }
        return stalls;
    }

    private sealed class Part(string name, Func<long> heartbeat, long graceNanoseconds, Func<long>? faults, Func<bool>? repeating)
    {
        public string Name { get; } = name;
        public Func<long> Heartbeat { get; } = heartbeat;
        public long GraceNanoseconds { get; } = graceNanoseconds;
        public Func<long>? ReadFaults { get; } = faults;
        public Func<bool>? Repeating { get; } = repeating;
        public long Beat { get; set; }
        public long ChangedAt { get; set; }
        public long Faults { get; set; }
        public long? FaultedAt { get; set; }
    }
}
