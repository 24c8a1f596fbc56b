namespace Appliance.Protocol.Roughtime;

/// <summary>
/// One Roughtime server's verified answer (RFC 10049 §5.4) as an interval "now" lay in when it came
/// back: the server signed MIDP ± RADI somewhere between the request leaving and the answer
/// arriving, so at the arrival the truth is within [MIDP − RADI, MIDP + RADI + the round trip].
/// </summary>
/// <param name="Server">Its name, for the log.</param>
/// <param name="AtMonotonic">When the answer arrived, on the monotonic clock.</param>
public readonly record struct RoughtimeSample(string Server, long EarliestUnixNanoseconds, long LatestUnixNanoseconds, long AtMonotonic)
{
    /// <summary>The interval of a reading; MIDP in nanoseconds must fit a long (before 2262): a client checks that first.</summary>
    public static RoughtimeSample FromReading(string server, ulong midpointSeconds, uint radiusSeconds, long sentMonotonic, long receivedMonotonic)
    {
        long midpoint = checked((long)midpointSeconds * 1_000_000_000);
        long radius = (long)radiusSeconds * 1_000_000_000;
        return new RoughtimeSample(server, midpoint - radius, midpoint + radius + Math.Max(0, receivedMonotonic - sentMonotonic), receivedMonotonic);
    }
}
