using System.Collections.Concurrent;

namespace Appliance.Server.Nts;

/// <summary>NTS-KE and key-ring counters, read at scrape time.</summary>
public sealed class NtsMetrics
{
    private readonly ConcurrentDictionary<(string Result, string Reason), long> _handshakes = new();
    private long _rotations;
    private long _cookies;

    public IEnumerable<KeyValuePair<(string Result, string Reason), long>> Handshakes => _handshakes;

    public long Rotations => Interlocked.Read(ref _rotations);

    /// <summary>Cookies handed out by NTS-KE (the NTP path counts its own per worker).</summary>
    public long CookiesIssued => Interlocked.Read(ref _cookies);

    /// <summary>One NTS-KE connection's end: result "ok", "error" (an Error record sent) or "closed" (dropped), and why.</summary>
    public void CountHandshake(string result, string reason) => _handshakes.AddOrUpdate((result, reason), 1, (_, n) => n + 1);

    public void CountRotation() => Interlocked.Increment(ref _rotations);

    public void CountCookies(int n) => Interlocked.Add(ref _cookies, n);
}
