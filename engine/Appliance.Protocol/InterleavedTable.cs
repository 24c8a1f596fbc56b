namespace Appliance.Protocol;

/// <summary>
/// The server's state for the interleaved client/server mode (RFC 9769 §2): for each response sent,
/// its receive timestamp (the key a client in interleaved mode sends back as its origin) and its
/// transmit timestamp, which the next, interleaved, response carries. Bounded, lossy and O(1) like
/// the rate-limit table: 4-way set-associative, indexed by a keyed hash of the receive timestamp,
/// the oldest entry of a full set evicted. A lost entry costs one basic-mode answer, which the client
/// tells by its origin (RFC 9769 §2), never a wrong one. One table per worker (source steering keeps a
/// client on one worker): no locks.
/// </summary>
public sealed class InterleavedTable
{
    /// <summary>What one saved response costs: the size of an entry.</summary>
    public const int BytesPerEntry = 32;

    private const int Ways = 4;

    /// <summary>The low byte of an entry's client key holds where its transmit timestamp came from.</summary>
    private const ulong SourceMask = 0xFF;

    private readonly Entry[] _entries;
    private readonly int _setMask;
    private readonly ulong _key;
    private ulong _sequence;
    private long _evictions;
    private int _used;

    /// <param name="capacity">Entries (rounded up to a power of two, at least 4).</param>
    /// <param name="seed">Random bits for the hash key (randomness is passed in), so that nobody can aim at one set.</param>
    public InterleavedTable(int capacity, ulong seed)
    {
        int size = (int)Math.Max(Ways, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, 1)));
        _entries = new Entry[size];
        _setMask = (size / Ways) - 1;
        _key = seed;
    }

    public int Capacity => _entries.Length;

    /// <summary>Responses whose timestamps are held now.</summary>
    public int Count => _used;

    /// <summary>Entries dropped to make room before any interleaved request asked for them.</summary>
    public long Evictions => _evictions;

    /// <summary>
    /// Saves a response's receive and transmit timestamps, for the client at <paramref name="client"/>.
    /// A receive timestamp already held (two requests stamped alike) makes it unusable for good:
    /// RFC 9769 §2 forbids detecting interleaved mode from a timestamp that is not unique.
    /// </summary>
    /// <param name="source">The caller's tag for where <paramref name="transmit"/> came from, handed back by <see cref="TryTake"/>.</param>
    public void Save(NtpTimestamp receive, NtpTimestamp transmit, NetAddress client, byte source = 0)
    {
        int set = Set(receive);
        int victim = -1;
        ulong oldest = ulong.MaxValue;
        for (int w = 0; w < Ways; w++)
        {
            ref Entry entry = ref _entries[(set * Ways) + w];
            if (entry.Sequence != 0 && entry.Receive == receive.Value)
            {
                // Not unique: no request may be answered from it, now or when it comes again (a
                // tombstone, as chrony's NTPTS_DISABLED, until it is evicted).
                entry = entry with { Transmit = 0 };
                return;
            }
            if (entry.Sequence < oldest)
            {
                oldest = entry.Sequence;
                victim = w;
            }
        }
        ref Entry slot = ref _entries[(set * Ways) + victim];
        if (slot.Sequence == 0)
        {
            _used++;
        }
        else
        {
            _evictions++;
        }
        slot = new Entry(receive.Value, transmit.Value, ClientKey(client) | source, ++_sequence);
    }

    /// <summary>
    /// Replaces the transmit timestamp saved for the response whose receive timestamp was
    /// <paramref name="receive"/> with a better one: the kernel's, which can only be read after the
    /// send, and which the interleaved mode exists to carry (RFC 9769 §1). False when that response is
    /// not held, was answered from already, or its receive timestamp was not unique.
    /// </summary>
    public bool UpdateTransmit(NtpTimestamp receive, NtpTimestamp transmit, byte source)
    {
        if (receive.IsZero)
        {
            return false;
        }
        int set = Set(receive);
        for (int w = 0; w < Ways; w++)
        {
            ref Entry entry = ref _entries[(set * Ways) + w];
            if (entry.Sequence != 0 && entry.Receive == receive.Value && entry.Transmit != 0)
            {
                entry = entry with { Transmit = transmit.Value, Client = (entry.Client & ~SourceMask) | source };
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// The transmit timestamp of the response whose receive timestamp was <paramref name="origin"/>,
    /// sent to <paramref name="client"/>; the entry is removed, so it answers one request only
    /// (RFC 9769 §2: "MUST NOT be used again"). False when it is not held.
    /// </summary>
    public bool TryTake(NtpTimestamp origin, NetAddress client, out NtpTimestamp transmit) => TryTake(origin, client, out transmit, out _);

    /// <inheritdoc cref="TryTake(NtpTimestamp, NetAddress, out NtpTimestamp)"/>
    /// <param name="source">The tag saved with the transmit timestamp (<see cref="Save"/>, <see cref="UpdateTransmit"/>).</param>
    public bool TryTake(NtpTimestamp origin, NetAddress client, out NtpTimestamp transmit, out byte source)
    {
        transmit = default;
        source = 0;
        if (origin.IsZero)
        {
            return false;
        }
        int set = Set(origin);
        ulong owner = ClientKey(client);
        for (int w = 0; w < Ways; w++)
        {
            ref Entry entry = ref _entries[(set * Ways) + w];
            if (entry.Sequence != 0 && entry.Receive == origin.Value && (entry.Client & ~SourceMask) == owner && entry.Transmit != 0)
            {
                transmit = new NtpTimestamp(entry.Transmit);
                source = (byte)(entry.Client & SourceMask);
                entry = default;
                _used--;
                return true;
            }
        }
        return false;
    }

    private int Set(NtpTimestamp receive) => (int)(RateLimiter.Mix(receive.Value ^ _key) >> 40) & _setMask;

    /// <summary>A keyed hash of the client's address, its low byte left for the transmit timestamp's source.</summary>
    private ulong ClientKey(NetAddress client) => (RateLimiter.Mix((ulong)(client.Value >> 64) ^ _key) ^ RateLimiter.Mix((ulong)client.Value ^ ~_key)) & ~SourceMask;

    /// <param name="Client">The client's key (<see cref="ClientKey"/>) with the transmit timestamp's source in its low byte.</param>
    /// <param name="Sequence">When it was saved (0: the entry is free); the smallest of a set is its oldest.</param>
    private readonly record struct Entry(ulong Receive, ulong Transmit, ulong Client, ulong Sequence);
}
