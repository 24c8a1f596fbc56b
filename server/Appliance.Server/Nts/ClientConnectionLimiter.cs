using System.Net;

namespace Appliance.Server.Nts;

/// <summary>
/// New NTS-KE connections per client address per interval (fixed windows), in a bounded table:
/// when it is full and nothing has expired, new addresses are refused rather than the table grown.
/// </summary>
internal sealed class ClientConnectionLimiter(int connections, TimeSpan interval, int capacity = 65536)
{
    private readonly Dictionary<IPAddress, (long WindowStart, int Count)> _clients = [];
    private readonly long _intervalTicks = interval.Ticks;
    private readonly object _gate = new();

    public bool TryAdmit(IPAddress client, long nowTicks)
    {
        lock (_gate)
        {
            if (_clients.TryGetValue(client, out var entry) && nowTicks - entry.WindowStart < _intervalTicks)
            {
                if (entry.Count >= connections)
                {
                    return false;
                }
                _clients[client] = (entry.WindowStart, entry.Count + 1);
                return true;
            }
            if (_clients.Count >= capacity && !_clients.ContainsKey(client))
            {
                foreach (IPAddress stale in _clients.Where(c => nowTicks - c.Value.WindowStart >= _intervalTicks).Select(c => c.Key).ToList())
                {
                    _clients.Remove(stale);
                }
                if (_clients.Count >= capacity)
                {
                    return false;
                }
            }
            _clients[client] = (nowTicks, 1);
            return true;
        }
    }
}
