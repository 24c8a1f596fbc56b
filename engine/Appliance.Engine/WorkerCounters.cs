using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Engine;

/// <summary>
/// One worker's counters. Written by that worker alone with plain increments (DESIGN.md boundary 5:
/// one increment on the hot path); read at scrape time, where a slightly stale value is fine
/// (64-bit reads are atomic on x86-64).
/// </summary>
public sealed class WorkerCounters
{
    private readonly long[] _outcomes = new long[2 * OutcomeNames.ActionCount * OutcomeNames.ReasonCount];
    private readonly long[] _timestampSources = new long[3];
    private readonly long[] _transmitSources = new long[3];
    private readonly long[] _kernelTransmit = new long[2 * 3];
    private long _unreadableTransmit;
    private long _received;
    private long _sendErrors;
    private long _receiveErrors;
    private long _restarts;
    private long _cookiesIssued;
    private long _allocatedBytes;
    private long _sleeps;
    private long _spinNanoseconds;
    private long _interleaved;

    public long Received => Volatile.Read(ref _received);
    public long SendErrors => Volatile.Read(ref _sendErrors);
    public long ReceiveErrors => Volatile.Read(ref _receiveErrors);

    /// <summary>Times the worker's loop failed and was restarted.</summary>
    public long Restarts => Volatile.Read(ref _restarts);

    /// <summary>Packets whose receive time came from <paramref name="source"/>.</summary>
    public long Timestamps(TimestampSource source) => Volatile.Read(ref _timestampSources[(int)source]);

    /// <summary>Time responses whose transmit timestamp came from <paramref name="source"/>.</summary>
    public long TransmitTimestamps(TimestampSource source) => Volatile.Read(ref _transmitSources[(int)source]);

    /// <summary>
    /// The kernel's transmit timestamps read back from <paramref name="source"/> (the kernel's software
    /// stamp or the NIC's) that replaced a saved response's (<paramref name="saved"/>), or whose
    /// response was no longer held (evicted, or answered from already).
    /// </summary>
    public long KernelTransmitTimestamps(TimestampSource source, bool saved) => Volatile.Read(ref _kernelTransmit[KernelIndex(source, saved)]);

    /// <summary>Looped transmit timestamps that could not be read: no timestamp, or no UDP datagram found in what came back.</summary>
    public long UnreadableTransmitTimestamps => Volatile.Read(ref _unreadableTransmit);

    /// <summary>Bytes this worker's thread has allocated since it started (GC.GetAllocatedBytesForCurrentThread).</summary>
    public long AllocatedBytes => Volatile.Read(ref _allocatedBytes);

    /// <summary>Blocking receives the worker entered: a sleep each unless a datagram was already queued (and one per receive timeout while idle).</summary>
    public long Sleeps => Volatile.Read(ref _sleeps);

    /// <summary>Time the worker spent polling its empty sockets (busy-poll, with the turn that caught a datagram), nanoseconds.</summary>
    public long SpinNanoseconds => Volatile.Read(ref _spinNanoseconds);

    /// <summary>Time responses sent in interleaved mode (RFC 9769): each carries the transmit timestamp of the one before.</summary>
    public long Interleaved => Volatile.Read(ref _interleaved);

    /// <summary>Fresh NTS cookies sent in responses.</summary>
    public long CookiesIssued => Volatile.Read(ref _cookiesIssued);

    /// <summary>Plain and NTS requests together.</summary>
    public long Get(ResponseAction action, ResponseReason reason) => Get(action, reason, false) + Get(action, reason, true);

    public long Get(ResponseAction action, ResponseReason reason, bool nts) =>
        Volatile.Read(ref _outcomes[Index(action, reason, nts)]);

    public void CountReceived(int packets) => _received += packets;

    public void Count(Outcome outcome) => _outcomes[Index(outcome.Action, outcome.Reason, outcome.Nts)]++;

    public void CountCookies(int cookies) => _cookiesIssued += cookies;

    public void CountInterleaved() => _interleaved++;

    public void CountSendErrors(int errors) => _sendErrors += errors;

    public void CountReceiveError() => _receiveErrors++;

    public void CountSleep() => _sleeps++;

    public void CountSpin(long nanoseconds) => _spinNanoseconds += nanoseconds;

    public void CountRestart() => Interlocked.Increment(ref _restarts);

    public void CountTimestamp(TimestampSource source) => _timestampSources[(int)source]++;

    /// <summary><paramref name="responses"/> time responses stamped from <paramref name="source"/>: one add per batch.</summary>
    public void CountTransmitTimestamps(TimestampSource source, int responses) => _transmitSources[(int)source] += responses;

    public void CountKernelTransmitTimestamp(TimestampSource source, bool saved) => _kernelTransmit[KernelIndex(source, saved)]++;

    public void CountUnreadableTransmitTimestamp() => _unreadableTransmit++;

    public void SetAllocatedBytes(long bytes) => Volatile.Write(ref _allocatedBytes, bytes);

    private static int KernelIndex(TimestampSource source, bool saved) => ((int)source * 2) + (saved ? 1 : 0);

    private static int Index(ResponseAction action, ResponseReason reason, bool nts) =>
        (((nts ? OutcomeNames.ActionCount : 0) + (int)action) * OutcomeNames.ReasonCount) + (int)reason;
}
