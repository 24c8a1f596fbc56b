using Appliance.Protocol.Nts;

namespace Appliance.Engine;

/// <summary>What each slot's response still needs after the batch is answered.</summary>
internal enum SlotKind : byte
{
    /// <summary>Nothing (dropped, or a KoD that carries no server time).</summary>
    None,

    /// <summary>A plain time response: the batch's transmit timestamp.</summary>
    Plain,

    /// <summary>An NTS response: its own transmit timestamp, then sealing.</summary>
    Nts,
}

/// <summary>Per-worker, per-slot state between answering a batch and sending it. Allocated once.</summary>
internal sealed class BatchScratch
{
    private const int KeyRoom = 64;
    private readonly byte[] _s2c;

    public BatchScratch(int capacity, NtsPacketHandler? nts)
    {
        Kind = new SlotKind[capacity];
        Jobs = new NtsSealJob[capacity];
        _s2c = new byte[capacity * KeyRoom];
        Nts = nts;
    }

    public SlotKind[] Kind { get; }

    public NtsSealJob[] Jobs { get; }

    public NtsPacketHandler? Nts { get; }

    public Span<byte> S2cKey(int slot) => _s2c.AsSpan(slot * KeyRoom, KeyRoom);
}
