using System.Security.Cryptography;
using System.Text.Json;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;

namespace Appliance.Server.Nts;

/// <summary>
/// Builds and keeps the NTS master-key ring (RFC 8915 §6). Key ids are rotation-period numbers
/// (floor(unix time / rotation)): the ring holds the current period's key, the <c>keep</c> before it
/// (cookies issued under them still open) and the next one (ready before it is needed).
/// Random keys are persisted to a 0600 file, replaced atomically, so a restart invalidates no
/// cookie; with a fleet secret every key is derived (HKDF) and nothing needs storing.
/// </summary>
public sealed class KeyRingStore(NtsKeysConfig config)
{
    private readonly Dictionary<uint, CookieKey> _keys = [];
    private readonly byte[]? _fleetSecret = config.FleetSecret is { } path ? ReadSecret(path) : null;

    public bool FleetMode => _fleetSecret is not null;

    public uint PeriodOf(DateTimeOffset time) => (uint)(time.ToUnixTimeSeconds() / (long)config.Rotation.TotalSeconds);

    /// <summary>When the period after <paramref name="time"/>'s starts.</summary>
    public DateTimeOffset NextRotation(DateTimeOffset time) =>
        DateTimeOffset.FromUnixTimeSeconds(((long)PeriodOf(time) + 1) * (long)config.Rotation.TotalSeconds);

    /// <summary>Loads persisted keys (random mode). A missing file is a first start, not an error.</summary>
    public void Load()
    {
        if (FleetMode || !File.Exists(config.Storage))
        {
            return;
        }
        using FileStream stream = File.OpenRead(config.Storage);
        StoredRing stored = JsonSerializer.Deserialize<StoredRing>(stream)
            ?? throw new InvalidDataException($"{config.Storage}: empty key file");
        if (stored.Version != 1)
        {
            throw new InvalidDataException($"{config.Storage}: unknown key file version {stored.Version}");
        }
        foreach (StoredKey key in stored.Keys)
        {
            _keys[key.Id] = new CookieKey(key.Id, Convert.FromBase64String(key.Key));
        }
    }

    /// <summary>
    /// Makes the ring right for <paramref name="now"/>: derives or generates the keys of periods
    /// current − keep … current + 1 and forgets older ones. Returns true when the key set changed.
    /// </summary>
    public bool Update(DateTimeOffset now, out CookieKeyRing ring)
    {
        uint current = PeriodOf(now);
        uint oldest = current >= (uint)config.Keep ? current - (uint)config.Keep : 0;
        bool changed = false;
        foreach (uint stale in _keys.Keys.Where(id => id < oldest || id > current + 1).ToList())
        {
            _keys.Remove(stale);
            changed = true;
        }
        for (uint period = oldest; period <= current + 1; period++)
        {
            if (_keys.ContainsKey(period))
            {
                continue;
            }
            // Random mode only makes keys for the current period and the next: past periods that were
            // never used (the appliance was off) hold no cookies anyone could present.
            if (_fleetSecret is not null)
            {
                _keys[period] = CookieKey.Derive(_fleetSecret, period);
                changed = true;
            }
            else if (period >= current)
            {
                _keys[period] = new CookieKey(period, RandomNumberGenerator.GetBytes(CookieKey.KeyLength));
                changed = true;
            }
        }
        ring = new CookieKeyRing(_keys[current], _keys.Values.OrderByDescending(k => k.Id));
        return changed;
    }

    /// <summary>Writes the ring to its file: 0600, via a temporary file and rename, so a crash leaves the old or the new file, never half of one.</summary>
    public void Save()
    {
        if (FleetMode)
        {
            return;
        }
        string directory = Path.GetDirectoryName(Path.GetFullPath(config.Storage))!;
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string temporary = Path.Combine(directory, $".{Path.GetFileName(config.Storage)}.{Environment.ProcessId}.tmp");
        var stored = new StoredRing(1, (long)config.Rotation.TotalSeconds,
            _keys.Values.OrderBy(k => k.Id).Select(k => new StoredKey(k.Id, Convert.ToBase64String(k.Key))).ToList());
        using (FileStream stream = new(temporary, new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            JsonSerializer.Serialize(stream, stored);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temporary, config.Storage, overwrite: true);
    }

    private static byte[] ReadSecret(string path)
    {
        byte[] secret = File.ReadAllBytes(path);
        if (secret.Length < 32)
        {
            throw new InvalidDataException($"{path}: a fleet secret needs at least 32 bytes (it has {secret.Length}); make one with: head -c 32 /dev/urandom > {path}");
        }
        return secret;
    }

    private sealed record StoredKey(uint Id, string Key);

    private sealed record StoredRing(int Version, long RotationSeconds, List<StoredKey> Keys);
}
