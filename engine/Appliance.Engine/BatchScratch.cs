using Appliance.Protocol.Nts;

namespace Appliance.Engine;

/// <summary>What each slot's response still needs after the batch is answered.</summary>
internal enum SlotKind : byte
{
    /// <summary>Nothing (dropped, or a KoD that carries no server time).</summary>
    None,

    /// <summary>A plain time response: the batch's transmit timestamp.</summary>
    Plain,

    /// <summary>A plain time response in interleaved mode (RFC 9769): it carries an earlier response's transmit timestamp already.</summary>
    Interleaved,

    /// <summary>An NTS response: its own transmit timestamp, then sealing.</summary>
    Nts,

    /// <summary>An NTS request accepted, waiting for its group's cookies and authenticator (<see cref="NtsPacketHandler.Answer"/>).</summary>
    NtsPending,
}

/// <summary>Per-worker, per-slot state between answering a batch and sending it. Allocated once.</summary>
internal sealed class BatchScratch
{
    public BatchScratch(int capacity, NtsPacketHandler? nts, Protocol.InterleavedTable? interleaved = null)
    {
        Interleaved = interleaved;
        if (nts is not null && nts.Capacity < capacity)
        {
            throw new ArgumentException($"the NTS handler holds {nts.Capacity} requests, the batch {capacity}", nameof(nts));
        }
        Kind = new SlotKind[capacity];
        Nts = nts;
    }

    public SlotKind[] Kind { get; }

    public NtsPacketHandler? Nts { get; }

    /// <summary>The batch's transmit timestamp (as sent), for <see cref="NtpWorker.SaveInterleaved"/>.</summary>
    public Protocol.NtpTimestamp Transmit { get; set; }

    /// <summary>
    /// Requests received before this (the system clock, nanoseconds since the Unix epoch) are shed as
    /// stale (<see cref="NtpWorker.ProcessBatch"/>); 0: none is. Set by the worker for each batch.
    /// </summary>
    public long ShedBefore { get; set; }

    /// <summary>Requests of the batch shed as stale (<see cref="NtpWorker.ProcessBatch"/>).</summary>
    public int Shed { get; set; }

    /// <summary>Responses of the batch that asked for the kernel's transmit timestamp (<see cref="NtpWorker.ProcessBatch"/>).</summary>
    public int TransmitRequests { get; set; }

    /// <summary>The worker's interleaved-mode state, or null for basic mode only.</summary>
    public Protocol.InterleavedTable? Interleaved { get; }
}
