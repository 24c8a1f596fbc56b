namespace Appliance.Protocol;

/// <summary>
/// Rate-limit settings with chrony's <c>ratelimit</c> semantics: each client may average one request
/// per <see cref="Interval"/> with bursts of <see cref="Burst"/>; beyond that one request in
/// 2^<see cref="Leak"/> is still answered with time (none when it is 0), so a flood spoofing a
/// victim's address cannot cut the victim off. With <see cref="Kod"/>, a request that is dropped
/// gets a KoD RATE (RFC 5905 §7.4) instead when the client has had none for an interval: at most
/// one KoD per client per interval, however fast it sends.
/// </summary>
public sealed record RateLimitSettings(TimeSpan Interval, int Burst, int Leak, bool Kod, int Clients)
{
    public static RateLimitSettings Default { get; } = new(TimeSpan.FromSeconds(2), 8, 2, false, 1 << 20);
}

/// <summary>
/// One client as the rate-limit table saw it (what <c>appliance clients</c> shows): the address (an
/// IPv6 client's /64), its requests, how many were over the rate, the KoDs it was sent, how many
/// carried NTS fields, and when it was last seen (on the limiter's clock).
/// </summary>
public readonly record struct ClientRecord(NetAddress Address, bool IsPrefix, long Requests, long RateLimited, long KissesSent, long NtsRequests, long LastSeenNanoseconds);

/// <summary>What the rate limiter says about one request.</summary>
public enum RateDecision : byte
{
    Allow,

    /// <summary>Over the rate, but this one is the 1 in 2^leak that is answered with time anyway.</summary>
    Leak,

    /// <summary>Over the rate: no response.</summary>
    Drop,

    /// <summary>Over the rate and not leaked, with KoD on and the client's KoD allowance unspent: a KoD RATE.</summary>
    Kiss,
}

/// <summary>
/// Per-client token buckets in a bounded, lossy, O(1) table: 4-way set-associative, indexed by a keyed
/// hash with a random seed (so an attacker cannot aim at one set), evicting the least recently seen
/// entry of a set. A flood of spoofed sources only evicts; the table never grows. IPv6 clients are
/// keyed by their /64, IPv4 by the address. One table per worker: no locks.
/// Each entry also holds the client's KoD allowance (one per interval), which KoD RATE and KoD DENY
/// share: a KoD is 48 octets, as long as a plain request, so without a limit of its own a flood spoofing
/// a victim's address would be reflected at the victim one for one.
/// Each entry keeps the client's counters too (like chrony's client log), for <see cref="CopyClients"/>:
/// plain increments on a line the request has just touched.
/// </summary>
public sealed class RateLimiter
{
    /// <summary>What one tracked client costs: the size of an entry (docs: ntp.rate-limit.clients; a test pins it).</summary>
    public const int BytesPerClient = 48;

    private const int Ways = 4;
    private const int TokenUnit = 1 << 16;

    /// <summary>The burst that still fits the token count in 32 bits.</summary>
    private const int MaxBurst = int.MaxValue / TokenUnit;

    private readonly Entry[] _entries;
    private readonly int _setMask;
    private readonly ulong _k0;
    private readonly ulong _k1;
    private long _intervalMicros;
    private int _capacityTokens;
    private uint _leakMask;
    private bool _leakNever;
    private bool _kod;
    private ulong _random;
    private int _used;
    private long _evictions;

    /// <param name="capacity">Entries (rounded up to a power of two, at least 4).</param>
    /// <param name="seed0">Random bits for the hash key and the leak draw: randomness is passed in.</param>
    public RateLimiter(RateLimitSettings settings, int capacity, ulong seed0, ulong seed1)
    {
        int size = (int)Math.Max(Ways, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(capacity, 1)));
        _entries = new Entry[size];
        _setMask = (size / Ways) - 1;
        _k0 = seed0;
        _k1 = seed1;
        _random = Mix(seed0 ^ seed1) | 1;
        Settings = settings;
        UpdateSettings(settings);
    }

    public RateLimitSettings Settings { get; private set; }

    /// <summary>
    /// New interval, burst, leak and KoD for every client, the table kept: a client keeps its bucket
    /// (a bucket above the new burst is cut to it at its next request) and its KoD allowance, so a
    /// reload cannot hand a flooding client a fresh burst. The table's size (<see cref="RateLimitSettings.Clients"/>)
    /// stays as built. Call it on the thread that calls <see cref="Check"/>.
    /// </summary>
    public void UpdateSettings(RateLimitSettings settings)
    {
        Settings = settings;
        _intervalMicros = Math.Max(1, (long)settings.Interval.TotalMicroseconds);
        _capacityTokens = Math.Clamp(settings.Burst, 1, MaxBurst) * TokenUnit;
        _leakNever = settings.Leak <= 0;
        _leakMask = (1u << Math.Clamp(settings.Leak, 0, 30)) - 1;
        _kod = settings.Kod;
    }

    /// <summary>Entries the table holds (its bound).</summary>
    public int Capacity => _entries.Length;

    /// <summary>Entries in use; never more than <see cref="Capacity"/>. Readable from any thread.</summary>
    public int Count => Volatile.Read(ref _used);

    /// <summary>
    /// Clients dropped from a full set to make room for a new one (the set's least recently seen):
    /// a steady rise means the table is too small for the population, or a flood of spoofed sources.
    /// Written by the owning worker alone, readable from any thread.
    /// </summary>
    public long Evictions => Volatile.Read(ref _evictions);

    /// <summary>True when the table currently tracks this client (tests and diagnostics).</summary>
    public bool Tracks(NetAddress client)
    {
        ulong key = Key(client, out int set);
        for (int w = 0; w < Ways; w++)
        {
            if (_entries[(set * Ways) + w].Key == key)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// True when the table knows the client and its bucket would hold a token at
    /// <paramref name="nowNanoseconds"/>: a look that charges, refills and evicts nothing. A client
    /// the table does not hold is not known to poll within its rate (a flood from random sources
    /// evicts as it goes): false.
    /// </summary>
    public bool HasToken(NetAddress client, long nowNanoseconds)
    {
        ulong key = Key(client, out int set);
        for (int w = set * Ways; w < (set + 1) * Ways; w++)
        {
            ref Entry entry = ref _entries[w];
            if (entry.Key == key)
            {
                long elapsed = (nowNanoseconds / 1000) - entry.Time;
                long refill = elapsed <= 0 ? 0 : Refill(elapsed);
                return Math.Min(_capacityTokens, entry.Tokens + refill) >= TokenUnit;
            }
        }
        return false;
    }

    /// <summary>
    /// Charges one request to the client's bucket at <paramref name="nowNanoseconds"/>, a clock that
    /// should not step (the worker's monotonic clock). On a clock that steps back, a client loses the
    /// refill for the time between its last request and the step, not the length of the step.
    /// </summary>
    /// <param name="nts">The request carries NTS extension fields (counted for <see cref="CopyClients"/>).</param>
    public RateDecision Check(NetAddress client, long nowNanoseconds, bool nts = false)
    {
        ref Entry entry = ref Touch(client, nowNanoseconds, nts);
        if (entry.Tokens >= TokenUnit)
        {
            entry.Tokens -= TokenUnit;
            return RateDecision.Allow;
        }
        entry.Limited++;
        // The leak comes first and stays time: it is what keeps the victim of a spoofed flood served.
        if (!_leakNever && (NextRandom() & _leakMask) == 0)
        {
            return RateDecision.Leak;
        }
        return _kod && SpendKiss(ref entry) ? RateDecision.Kiss : RateDecision.Drop;
    }

    /// <summary>
    /// For a request that is refused anyway (a denied client): whether it may have a KoD, charged to the
    /// client's KoD allowance at <paramref name="nowNanoseconds"/> (one per interval).
    /// </summary>
    public bool TryKiss(NetAddress client, long nowNanoseconds, bool nts = false) => SpendKiss(ref Touch(client, nowNanoseconds, nts));

    private static bool SpendKiss(ref Entry entry)
    {
        if (entry.Kisses < TokenUnit)
        {
            return false;
        }
        entry.Kisses -= TokenUnit;
        entry.KissesSent++;
        return true;
    }

    /// <summary>
    /// Adds every client the table holds to <paramref name="into"/>, its last-seen time on the clock
    /// <see cref="Check"/> is given. Safe from any thread while the owning worker writes: an entry
    /// caught half-written (its address no longer hashing to its key) is left out, and a counter may
    /// be a request behind. Visits the whole table (<see cref="Capacity"/> entries): for diagnostics,
    /// never the request path.
    /// </summary>
    public void CopyClients(List<ClientRecord> into)
    {
        ArgumentNullException.ThrowIfNull(into);
        Entry[] entries = _entries;
        for (int i = 0; i < entries.Length; i++)
        {
            Entry entry = entries[i];
            if (entry.Key == 0)
            {
                continue;
            }
            NetAddress address = AddressOf(entry.Id, out bool prefix);
            if (Key(address, out int set) != entry.Key || set != i / Ways)
            {
                continue; // torn by a concurrent write
            }
            into.Add(new ClientRecord(address, prefix, entry.Requests, entry.Limited, entry.KissesSent, entry.NtsRequests, entry.Time * 1000));
        }
    }

    /// <summary>What an entry keeps of the address: the IPv4 address (mapped), or the IPv6 client's upper 64 bits.</summary>
    private static ulong IdOf(NetAddress client) => client.IsIPv4 ? (ulong)client.Value : client.Upper;

    /// <summary>
    /// Back from <see cref="IdOf"/>: an IPv4-mapped low half (0000:ffff:a.b.c.d) is IPv4; anything else
    /// is an IPv6 /64 (the hash keys both the same way, so the key check tells them apart when needed).
    /// </summary>
    private static NetAddress AddressOf(ulong id, out bool prefix)
    {
        prefix = (id >> 32) != 0xFFFF;
        return new NetAddress(prefix ? new UInt128(id, 0) : new UInt128(0, id));
    }

    /// <summary>The client's entry, created (full) or refilled to <paramref name="nowNanoseconds"/>.</summary>
    private ref Entry Touch(NetAddress client, long nowNanoseconds, bool nts)
    {
        ulong key = Key(client, out int set);
        long now = nowNanoseconds / 1000;
        int start = set * Ways;
        int slot = -1;
        int victim = start;
        for (int w = start; w < start + Ways; w++)
        {
            if (_entries[w].Key == key)
            {
                slot = w;
                break;
            }
            if (_entries[w].Key == 0 || (_entries[victim].Key != 0 && _entries[w].Time < _entries[victim].Time))
            {
                victim = w;
            }
        }
        ref Entry entry = ref _entries[slot >= 0 ? slot : victim];
        if (slot < 0)
        {
            // A new (or evicted and returning) client starts with a full bucket and its KoD allowance.
            if (entry.Key == 0)
            {
                _used++;
            }
            else
            {
                _evictions++;
            }
            entry.Key = key;
            entry.Id = IdOf(client);
            entry.Tokens = _capacityTokens;
            entry.Kisses = TokenUnit;
            entry.Requests = 0;
            entry.Limited = 0;
            entry.KissesSent = 0;
            entry.NtsRequests = 0;
        }
        else
        {
            // Behind the entry's time (a clock stepped back): no time elapsed, and the entry moves to
            // the new time, so refills resume at once instead of waiting out the step. Until the clock
            // passes the old times again, the clients seen since the step look older than the rest to
            // the eviction: they may be evicted first (and come back with a full bucket). Only callers
            // without a monotonic clock meet this; the workers pass theirs.
            long elapsed = now - entry.Time;
            if (elapsed > 0)
            {
                long refill = Refill(elapsed);
                entry.Tokens = (int)Math.Min(_capacityTokens, entry.Tokens + refill);
                entry.Kisses = (int)Math.Min(TokenUnit, entry.Kisses + refill);
            }
            else
            {
                entry.Tokens = Math.Min(_capacityTokens, entry.Tokens); // a burst cut by UpdateSettings
            }
        }
        entry.Time = now;
        entry.Requests++;
        if (nts)
        {
            entry.NtsRequests++;
        }
        return ref entry;
    }

    /// <summary>The tokens <paramref name="elapsedMicros"/> (&gt; 0) refill: one per interval, a full bucket at most (which also keeps the product from overflowing).</summary>
    private long Refill(long elapsedMicros) =>
        elapsedMicros >= _intervalMicros * (_capacityTokens / TokenUnit) ? _capacityTokens : elapsedMicros * TokenUnit / _intervalMicros;

    private ulong Key(NetAddress client, out int set)
    {
        ulong upper = client.Upper;
        // IPv6 by /64 (one subscriber's prefix); IPv4 (mapped) by the whole address.
        ulong lower = client.IsIPv4 ? (ulong)client.Value : 0;
        ulong h = Mix(upper ^ _k0) ^ Mix(lower ^ _k1 ^ 0x9E3779B97F4A7C15UL);
        set = (int)(h >> 40) & _setMask;
        return h | 1;
    }

    /// <summary>The MurmurHash3 64-bit finalizer: every input bit affects every output bit.</summary>
    internal static ulong Mix(ulong x)
    {
        x ^= x >> 33;
        x *= 0xFF51AFD7ED558CCDUL;
        x ^= x >> 33;
        x *= 0xC4CEB9FE1A85EC53UL;
        x ^= x >> 33;
        return x;
    }

    /// <summary>xorshift64*: enough for the leak draw, seeded from the caller's randomness.</summary>
    private uint NextRandom()
    {
        _random ^= _random >> 12;
        _random ^= _random << 25;
        _random ^= _random >> 27;
        return (uint)((_random * 0x2545F4914F6CDD1DUL) >> 32);
    }

    /// <summary><see cref="BytesPerClient"/> bytes: the figure <c>ntp.rate-limit.clients</c> documents.</summary>
    private struct Entry
    {
        public ulong Key;
        public long Time;
        public int Tokens;

        /// <summary>The KoD allowance, in the same units as the tokens: one KoD is one unit, at most one is held.</summary>
        public int Kisses;

        /// <summary>The address as <see cref="IdOf"/> keeps it.</summary>
        public ulong Id;

        // The client log: wrapping after 2^32 requests is harmless for a display.
        public uint Requests;
        public uint Limited;
        public uint KissesSent;
        public uint NtsRequests;
    }
}
