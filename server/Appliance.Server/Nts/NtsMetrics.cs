using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;

namespace Appliance.Server.Nts;

/// <summary>NTS-KE and key-ring counters, read at scrape time.</summary>
public sealed class NtsMetrics
{
    private readonly long[] _handshakes = new long[NtsKeOutcomeNames.Count];
    private long _rotations;
    private long _cookies;
    private long _keyPersistFailures;

    // Key exchanges agreed, per AEAD of AeadAlgorithms.All, and again for AEAD 30 keys from the context of 15.
    private readonly long[] _agreed = new long[AeadAlgorithms.All.Count + 1];

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

    /// <summary>A key exchange that ended with cookies, on <paramref name="aead"/>, its keys from the context of <paramref name="exporter"/> (RFC 8915 §5.1).</summary>
    public void CountAgreement(AeadAlgorithm aead, AeadAlgorithm exporter) =>
        Interlocked.Increment(ref _agreed[aead != exporter ? AeadAlgorithms.All.Count : Index(aead)]);

    /// <summary>Key exchanges per AEAD and exporter context: "rfc8915" (the AEAD's own id) or "aead15" (chrony 4.4 to 4.6.0's for AEAD 30).</summary>
    public IEnumerable<(AeadAlgorithm Aead, string Context, long Count)> Agreements()
    {
        for (int i = 0; i < AeadAlgorithms.All.Count; i++)
        {
            yield return (AeadAlgorithms.All[i], "rfc8915", Interlocked.Read(ref _agreed[i]));
        }
        yield return (AeadAlgorithm.Aes128GcmSiv, "aead15", Interlocked.Read(ref _agreed[AeadAlgorithms.All.Count]));
    }

    private static int Index(AeadAlgorithm aead)
    {
        for (int i = 0; i < AeadAlgorithms.All.Count; i++)
        {
            if (AeadAlgorithms.All[i] == aead)
            {
                return i;
            }
        }
        throw new ArgumentOutOfRangeException(nameof(aead), aead, "not an AEAD this server speaks");
    }
}
