using Appliance.Protocol;
using Appliance.Protocol.Nts;

namespace Appliance.Server.Nts;

/// <summary>
/// NTS-KE admission per client: new connections per interval (fixed windows) and connections open at
/// once. A client is an IPv4 address or an IPv6 /64: one /64 is what a single subscriber or host is
/// given (RFC 6177, RFC 7421), so counting its 2^64 addresses apart would be no limit at all.
/// The table is bounded and lossy, O(1) and allocation-free per call: when it is full, the client
/// seen least recently among those with no connection open is forgotten (its window starts again),
/// never a new client refused. A client holding connections is never forgotten, so its open count
/// stays true; there are at most as many of those as connections, fewer than the table holds.
/// </summary>
public sealed class ClientConnectionLimiter
{
    /// <summary>Clients remembered when the server's connection limit does not ask for more.</summary>
    public const int DefaultCapacity = 65536;

    private static readonly UInt128 s_prefix64 = UInt128.MaxValue << 64;

    private int _perInterval;
    private long _intervalTicks;
    private int _concurrent;
    private readonly Entry[] _entries;
    private readonly Dictionary<UInt128, int> _index;
    private readonly Lock _gate = new();
    private int _used;

    // The clients with no connection open, least recently seen first: a doubly linked list through
    // _entries by index, so touching, pinning and forgetting are O(1).
    private int _oldest = -1;
    private int _newest = -1;

    /// <param name="perInterval">New connections one client may open per <paramref name="interval"/>.</param>
    /// <param name="concurrent">Connections one client may hold open at once.</param>
    /// <param name="capacity">Clients remembered; more than the server's connection limit, so one can always be forgotten.</param>
    public ClientConnectionLimiter(int perInterval, TimeSpan interval, int concurrent, int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perInterval, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrent, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _perInterval = perInterval;
        _intervalTicks = interval.Ticks;
        _concurrent = concurrent;
        _entries = new Entry[capacity];
        // Sized once: adds and removes within the capacity reuse its slots and allocate nothing.
        _index = new Dictionary<UInt128, int>(capacity);
    }

    /// <summary>Clients remembered at most (fixed when built).</summary>
    public int Capacity => _entries.Length;

    /// <summary>
    /// New limits (a reload), the table kept: a client's connections open and opened this interval
    /// still count, against the new limits from its next connection.
    /// </summary>
    public void Update(int perInterval, TimeSpan interval, int concurrent)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perInterval, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrent, 1);
        lock (_gate)
        {
            _perInterval = perInterval;
            _intervalTicks = interval.Ticks;
            _concurrent = concurrent;
        }
    }

    /// <summary>Clients in the table now.</summary>
    public int Clients
    {
        get
        {
            lock (_gate)
            {
                return _index.Count;
            }
        }
    }

    /// <summary>The key a client is counted under: the IPv4 address, or the IPv6 address's /64.</summary>
    public static UInt128 ClientKey(NetAddress address) => address.IsIPv4 ? address.Value : address.Value & s_prefix64;

    /// <summary>
    /// Admits a new connection from <paramref name="client"/> at <paramref name="nowTicks"/> (a
    /// monotonic time in <see cref="TimeSpan"/> ticks), or says why not: <see cref="NtsKeServerReason.ClientConcurrency"/>
    /// (it holds its maximum open), <see cref="NtsKeServerReason.ClientRate"/> (it opened its maximum this
    /// interval), or <see cref="NtsKeServerReason.MaxConnections"/> (every client remembered holds a
    /// connection: only when the capacity is not above the connection limit). An admitted connection
    /// is given back with <see cref="Release"/>.
    /// </summary>
    public bool TryAdmit(NetAddress client, long nowTicks, out NtsKeServerReason refusal)
    {
        UInt128 key = ClientKey(client);
        lock (_gate)
        {
            if (!_index.TryGetValue(key, out int i))
            {
                if (!TryTake(out i))
                {
                    refusal = NtsKeServerReason.MaxConnections;
                    return false;
                }
                _entries[i] = new Entry { Key = key, WindowStart = nowTicks };
                _index.Add(key, i);
                Append(i);
            }
            ref Entry entry = ref _entries[i];
            // Concurrency first: a refusal for it costs the client none of its new connections.
            if (entry.Open >= _concurrent)
            {
                refusal = NtsKeServerReason.ClientConcurrency;
                return false;
            }
            if (nowTicks - entry.WindowStart >= _intervalTicks)
            {
                entry.WindowStart = nowTicks;
                entry.Opened = 0;
            }
            if (entry.Opened >= _perInterval)
            {
                if (entry.Open == 0)
                {
                    // Seen again: it stays remembered, with the count that refuses it.
                    Unlink(i);
                    Append(i);
                }
                refusal = NtsKeServerReason.ClientRate;
                return false;
            }
            entry.Opened++;
            if (entry.Open++ == 0)
            {
                Unlink(i); // held while a connection is open
            }
            refusal = NtsKeServerReason.Ok;
            return true;
        }
    }

    /// <summary>One connection <see cref="TryAdmit"/> admitted for <paramref name="client"/> has ended.</summary>
    public void Release(NetAddress client)
    {
        lock (_gate)
        {
            if (!_index.TryGetValue(ClientKey(client), out int i) || _entries[i].Open == 0)
            {
                throw new InvalidOperationException($"{client} holds no NTS-KE connection");
            }
            if (--_entries[i].Open == 0)
            {
                Append(i);
            }
        }
    }

    /// <summary>A free slot, or the slot of the client seen least recently with nothing open; false when every client holds a connection.</summary>
    private bool TryTake(out int i)
    {
        if (_used < _entries.Length)
        {
            i = _used++;
            return true;
        }
        i = _oldest;
        if (i < 0)
        {
            return false;
        }
        Unlink(i);
        _index.Remove(_entries[i].Key);
        return true;
    }

    private void Append(int i)
    {
        _entries[i].Newer = -1;
        _entries[i].Older = _newest;
        if (_newest >= 0)
        {
            _entries[_newest].Newer = i;
        }
        else
        {
            _oldest = i;
        }
        _newest = i;
    }

    private void Unlink(int i)
    {
        ref Entry entry = ref _entries[i];
        if (entry.Older >= 0)
        {
            _entries[entry.Older].Newer = entry.Newer;
        }
        else
        {
            _oldest = entry.Newer;
        }
        if (entry.Newer >= 0)
        {
            _entries[entry.Newer].Older = entry.Older;
        }
        else
        {
            _newest = entry.Older;
        }
        entry.Older = entry.Newer = -1;
    }

    private struct Entry
    {
        public UInt128 Key;
        public long WindowStart;
        public int Opened;
        public int Open;
        public int Older;
        public int Newer;
    }
}
