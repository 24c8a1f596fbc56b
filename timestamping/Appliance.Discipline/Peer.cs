namespace Appliance.Discipline;

/// <summary>What the selection made of a source.</summary>
public enum PeerStatus : byte
{
    /// <summary>No usable sample yet, or its last one is too old.</summary>
    NoSample,

    /// <summary>Unusable: unsynchronised, stratum ≥ 16, or root distance over the limit.</summary>
    Unfit,

    /// <summary>Outside the intersection of the majority's correctness intervals (RFC 5905 §11.2.1).</summary>
    Falseticker,

    /// <summary>A truechimer dropped by clustering (RFC 5905 §11.2.2).</summary>
    Outlier,

    /// <summary>A survivor, combined into the system offset.</summary>
    Candidate,

    /// <summary>The system peer: the survivor the system's stratum and reference id come from.</summary>
    SystemPeer,
}

/// <summary>One time source as the clock core sees it: its filter and what the last selection said.</summary>
public sealed class Peer(int id, string name, uint referenceId)
{
    public int Id { get; } = id;

    public string Name { get; } = name;

    /// <summary>The reference id a server names this source by (IPv4 address, refclock code, or hash).</summary>
    public uint ReferenceId { get; set; } = referenceId;

    public ClockFilter Filter { get; } = new();

    public PeerStatus Status { get; internal set; }

    /// <summary>Seconds between polls of this source; the driver keeps it current as the poll adapts.</summary>
    public double PollSeconds { get; set; } = 64;

    /// <summary>
    /// True when the newest sample is older than eight polls: the RFC 5905 reach register would be
    /// all zeros, and the source is no longer a candidate (§11.2: a candidate must be reachable).
    /// </summary>
    public bool IsStale(long now) => Filter.Best is null || (now - Filter.LastSampleTime) / 1e9 > 8 * PollSeconds;

    /// <summary>
    /// Root distance λ (RFC 5905 §11.2): half the total round trip to the primary reference plus every
    /// dispersion on the way, grown with PHI since the sample was taken.
    /// </summary>
    public double RootDistance(long now)
    {
        if (Filter.Best is not { } s)
        {
            return double.PositiveInfinity;
        }
        double age = Math.Max(0, (now - s.LocalTime) / 1e9);
        return Math.Max(Constants.MinDispersion / 1000, ((s.RootDelay + s.Delay) / 2) + s.RootDispersion + Filter.Dispersion + (Constants.Phi * age) + Filter.Jitter);
    }
}
