using Appliance.Protocol.Roughtime;

namespace Appliance.Server.Roughtime;

/// <summary>How a Roughtime request ended without an answer beyond <see cref="RoughtimeDrop"/>: what the listener decides before the responder sees it.</summary>
public enum RoughtimeListenerDrop
{
    /// <summary>The served time is not synchronised: nothing is signed (a signed wrong time is worse than none).</summary>
    Unsynchronised = 100,

    /// <summary>A datagram larger than a slot (2048 bytes), or a TCP frame above that: never read whole, never answered.</summary>
    Truncated,

    /// <summary>The kernel refused to send the answer.</summary>
    SendFailed,

    /// <summary>The client's network is denied by <c>ntp.access</c>.</summary>
    Denied,

    /// <summary>A TCP connection closed at accept: the server's or its client's connections were all taken.</summary>
    Refused,
}

/// <summary>The Roughtime listener's counters, per transport (0 UDP, 1 TCP), read at scrape time.</summary>
public sealed class RoughtimeCounters
{
    public const int Udp = 0;
    public const int Tcp = 1;

    /// <summary>The drop reasons as their metric labels, in the order of <see cref="Reasons"/>.</summary>
    public static IReadOnlyList<(int Reason, string Label)> Reasons { get; } =
    [
        ((int)RoughtimeDrop.Framing, "framing"),
        ((int)RoughtimeDrop.TooShort, "too_short"),
        ((int)RoughtimeDrop.Malformed, "malformed"),
        ((int)RoughtimeDrop.Version, "version"),
        ((int)RoughtimeDrop.OtherServer, "other_server"),
        ((int)RoughtimeDrop.NotSigned, "not_signed"),
        ((int)RoughtimeDrop.TooLarge, "too_large"),
        ((int)RoughtimeListenerDrop.Unsynchronised, "unsynchronised"),
        ((int)RoughtimeListenerDrop.Truncated, "truncated"),
        ((int)RoughtimeListenerDrop.SendFailed, "send_failed"),
        ((int)RoughtimeListenerDrop.Denied, "denied"),
        ((int)RoughtimeListenerDrop.Refused, "refused"),
    ];

    private readonly long[] _received = new long[2];
    private readonly long[] _answered = new long[2];
    private readonly long[,] _dropped = new long[2, Reasons.Count];
    private long _signatures;
    private long _batches;

    public long Received(int transport) => Interlocked.Read(ref _received[transport]);

    public long Answered(int transport) => Interlocked.Read(ref _answered[transport]);

    /// <summary>Requests of <paramref name="transport"/> dropped for <paramref name="reason"/> (a <see cref="RoughtimeDrop"/> or <see cref="RoughtimeListenerDrop"/> value).</summary>
    public long Dropped(int transport, int reason) => Interlocked.Read(ref _dropped[transport, Index(reason)]);

    /// <summary>SREPs signed: one per version per batch (RFC 10049 §5.3), however many requests the batch held.</summary>
    public long Signatures => Interlocked.Read(ref _signatures);

    /// <summary>Batches that had at least one request to sign for.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    internal void CountReceived(int transport, int n) => Interlocked.Add(ref _received[transport], n);

    internal void CountAnswered(int transport, int n) => Interlocked.Add(ref _answered[transport], n);

    internal void CountDrop(int transport, int reason, int n = 1) => Interlocked.Add(ref _dropped[transport, Index(reason)], n);

    internal void CountSigned(int signatures)
    {
        Interlocked.Add(ref _signatures, signatures);
        Interlocked.Increment(ref _batches);
    }

    private static int Index(int reason)
    {
        for (int i = 0; i < Reasons.Count; i++)
        {
            if (Reasons[i].Reason == reason)
            {
                return i;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(reason), reason, "no Roughtime drop reason");
    }
}
