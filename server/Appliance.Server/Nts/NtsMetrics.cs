using Appliance.Protocol.Nts;

namespace Appliance.Server.Nts;

/// <summary>NTS-KE and key-ring counters, read at scrape time.</summary>
public sealed class NtsMetrics
{
    private readonly long[] _handshakes = new long[NtsKeOutcomeNames.Count];
    private long _rotations;
    private long _cookies;
    private long _keyPersistFailures;

    public long Rotations => Interlocked.Read(ref _rotations);

    /// <summary>Saves of the key ring that failed (each try counts; the ring kept serving from memory).</summary>
    public long KeyPersistFailures => Interlocked.Read(ref _keyPersistFailures);

    /// <summary>Cookies handed out by NTS-KE (the NTP path counts its own per worker).</summary>
    public long CookiesIssued => Interlocked.Read(ref _cookies);

    /// <summary>NTS-KE connections that ended for <paramref name="reason"/>.</summary>
    public long Handshakes(NtsKeServerReason reason) => Interlocked.Read(ref _handshakes[(int)reason]);

    /// <summary>One NTS-KE connection's end (its labels: <see cref="NtsKeOutcomeNames"/>).</summary>
    public void CountHandshake(NtsKeServerReason reason) => Interlocked.Increment(ref _handshakes[(int)reason]);

    public void CountRotation() => Interlocked.Increment(ref _rotations);

    public void CountKeyPersistFailure() => Interlocked.Increment(ref _keyPersistFailures);

    public void CountCookies(int n) => Interlocked.Add(ref _cookies, n);
}
