using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Timestamping;
using Microsoft.Win32.SafeHandles;

namespace Appliance.Server.Nts;

/// <summary>
/// Builds and keeps the NTS master-key ring (RFC 8915 §6). Key ids are rotation-period numbers
/// (floor(unix time / rotation)) plus an advance: the ring holds the current key, the <c>keep</c>
/// before it (cookies issued under them still open) and the next one (ready before it is needed).
/// The advance (0 until then, persisted with the keys) is what a forced rotation adds one to, and
/// what a live change of the rotation period sets so that the current id stays: ids only grow, so
/// an id never names two keys, and the schedule stays on the period boundaries.
/// Random keys are persisted to a 0600 file, replaced atomically and durably, so a restart
/// invalidates no cookie; with a fleet secret every key is derived (HKDF) and nothing needs storing.
/// </summary>
public sealed partial class KeyRingStore(NtsKeysConfig config)
{
    private NtsKeysConfig _config = config;
    private long _advance;

    /// <summary>Far more than a ring can fill: keep (at most 1000) + 2 keys of about 70 bytes of JSON each.</summary>
    private const int MaxFileBytes = 1 << 20;

    /// <summary>Far more than a secret needs (32 bytes), and a bound on what is read (a device never ends).</summary>
    private const int MaxSecretBytes = 4096;

    /// <summary>The key file is the appliance's own (it writes it 0600): nobody else may have any access.</summary>
    private static readonly UnixFileMode s_othersMask = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>
    /// The fleet secret is provisioned by the operator, often owned by root and readable by the
    /// service's group (0640, as chrony's keys): group read is allowed, others nothing, writing only the owner.
    /// </summary>
    private static readonly UnixFileMode s_secretMask = UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private readonly Dictionary<uint, CookieKey> _keys = [];
    private readonly byte[]? _fleetSecret = config.FleetSecret is { } path ? ReadSecret(path) : null;

    public bool FleetMode => _fleetSecret is not null;

    private long RotationSeconds => (long)_config.Rotation.TotalSeconds;

    public uint PeriodOf(DateTimeOffset time) => (uint)(time.ToUnixTimeSeconds() / RotationSeconds);

    /// <summary>The id of the key that seals at <paramref name="time"/>: its period plus the advance.</summary>
    public uint CurrentId(DateTimeOffset time) => (uint)(PeriodOf(time) + _advance);

    /// <summary>
    /// When the key <paramref name="id"/> became current by the schedule: the start of its period. A key
    /// made current by a forced rotation is dated to the start of the period it was forced in, and the
    /// keys before it one period earlier each: an age is right to within one rotation interval.
    /// </summary>
    public DateTimeOffset StartOf(uint id) => DateTimeOffset.FromUnixTimeSeconds(((long)id - _advance) * RotationSeconds);

    /// <summary>
    /// How long the key <paramref name="id"/> has been current (or was, for an older key) at
    /// <paramref name="now"/>, from <see cref="StartOf"/>; never negative. What <c>appliance keys</c>
    /// shows per key and <c>appliance_nts_key_age_seconds</c> for the key that seals.
    /// </summary>
    public double AgeSeconds(uint id, DateTimeOffset now) => Math.Max(0, (now - StartOf(id)).TotalSeconds);

    /// <summary>The configuration in force (a reload may change rotation and keep).</summary>
    public NtsKeysConfig Config => _config;

    /// <summary>When the period after <paramref name="time"/>'s starts.</summary>
    public DateTimeOffset NextRotation(DateTimeOffset time) =>
        DateTimeOffset.FromUnixTimeSeconds(((long)PeriodOf(time) + 1) * RotationSeconds);

    /// <summary>
    /// Why the stored keys were not taken (they count periods of another rotation), for the start-up
    /// log; null when they were, or when there were none.
    /// </summary>
    public string? Discarded { get; private set; }

    /// <summary>
    /// Loads persisted keys (random mode). A missing file is a first start, not an error. Anything
    /// else that is not a key file as <see cref="Save"/> writes it (readable by others, too large,
    /// not JSON, no keys, a key of the wrong length, …) throws <see cref="InvalidDataException"/>
    /// naming the file and the problem: start-up stops with that line rather than start a new ring
    /// in silence, which would turn every cookie out there into a NAK and could hide tampering.
    /// </summary>
    public void Load()
    {
        if (FleetMode)
        {
            return;
        }
        string path = _config.Storage;
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return;
        }
        RemoveStaleTemporaryFiles(path);
        byte[] bytes;
        using (handle)
        {
            bytes = ReadPrivate(handle, path, s_othersMask, MaxFileBytes, "a key file",
                $"master keys must be 0600: whoever could read them can open every cookie and forge the time their clients get. "
                + $"Remove the file to start a new ring (every client makes a new key exchange), or, if nobody else can have read or "
                + $"written it, keep it with: chmod 600 {path}");
        }
        List<CookieKey> keys = Parse(bytes, out long rotationSeconds, out long advance);
        if (rotationSeconds != RotationSeconds)
        {
            // Key ids are numbers of rotation periods: under another period length the same id is
            // another time, so the stored keys would seal and open cookies for the wrong periods.
            Discarded = $"{path} holds keys of {rotationSeconds}s rotation periods but the rotation is now {RotationSeconds}s: "
                + "they are dropped and a new ring starts; clients whose cookies they sealed get an NTS NAK and make a new key exchange";
            return;
        }
        foreach (CookieKey key in keys)
        {
            _keys[key.Id] = key;
        }
        _advance = advance;
    }

    /// <summary>
    /// Reads a secret file, as <see cref="InvalidDataException"/> if its mode has any of the
    /// <paramref name="forbidden"/> bits or it is longer than <paramref name="maxBytes"/>. The mode is
    /// that of the file opened, not of the path: the check and the read see one file.
    /// </summary>
    private static byte[] ReadPrivate(SafeFileHandle handle, string path, UnixFileMode forbidden, int maxBytes, string what, string whyPrivate)
    {
        UnixFileMode mode = File.GetUnixFileMode(handle);
        if ((mode & forbidden) != 0)
        {
            throw new InvalidDataException($"{path} is open to others (mode {ModeText(mode)}), but {whyPrivate}");
        }
        long length = RandomAccess.GetLength(handle);
        if (length > maxBytes)
        {
            throw new InvalidDataException($"{path} is {length} bytes, more than {what} can be ({maxBytes})");
        }
        var bytes = new byte[length];
        int read = 0;
        while (read < bytes.Length && RandomAccess.Read(handle, bytes.AsSpan(read), read) is int n and > 0)
        {
            read += n;
        }
        return read == bytes.Length ? bytes : bytes[..read];
    }

    /// <summary>
    /// Removes the temporary files of saves that never finished (a crash, any process id): they may
    /// hold keys, and one written before the temporary file was made with O_EXCL may be readable by others.
    /// </summary>
    private static void RemoveStaleTemporaryFiles(string path)
    {
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        foreach (string stale in Directory.EnumerateFiles(directory, $".{Path.GetFileName(path)}.*.tmp"))
        {
            File.Delete(stale);
        }
    }

    /// <summary>The stored keys, checked down to every key, or <see cref="InvalidDataException"/> saying what is wrong.</summary>
    private List<CookieKey> Parse(ReadOnlySpan<byte> json, out long rotationSeconds, out long advance)
    {
        StoredRing? stored;
        try
        {
            stored = JsonSerializer.Deserialize(json, StoredRingJson.Default.StoredRing);
        }
        catch (JsonException e)
        {
            throw Corrupt($"is not a key file (JSON: {e.Message})");
        }
        if (stored is null)
        {
            throw Corrupt("is not a key file (it holds null)");
        }
        if (stored.Version != 1)
        {
            throw Corrupt($"has key file version {stored.Version}; this appliance reads version 1");
        }
        if (stored.RotationSeconds <= 0)
        {
            throw Corrupt("names no rotation period");
        }
        if (stored.Keys is not { Count: > 0 } keys)
        {
            throw Corrupt("holds no keys");
        }
        var seen = new HashSet<uint>();
        var parsed = new List<CookieKey>(keys.Count);
        Span<byte> material = stackalloc byte[CookieKey.KeyLength + 3];
        foreach (StoredKey? key in keys)
        {
            if (key?.Key is null)
            {
                throw Corrupt("has a key entry without a key");
            }
            if (!Convert.TryFromBase64String(key.Key, material, out int length) || length != CookieKey.KeyLength)
            {
                throw Corrupt($"has a key (id {key.Id}) that is not {CookieKey.KeyLength} bytes of base64");
            }
            if (!seen.Add(key.Id))
            {
                throw Corrupt($"has key id {key.Id} twice");
            }
            parsed.Add(new CookieKey(key.Id, material[..length].ToArray()));
        }
        rotationSeconds = stored.RotationSeconds;
        advance = stored.Advance;
        return parsed;
    }

    private InvalidDataException Corrupt(string problem) => new($"{_config.Storage} {problem}");

    private static string ModeText(UnixFileMode mode) => Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0');

    /// <summary>
    /// Makes the ring right for <paramref name="now"/>: derives or generates the keys of periods
    /// current − keep … current + 1 and forgets older ones. Returns true when the key set changed.
    /// </summary>
    public bool Update(DateTimeOffset now, out CookieKeyRing ring)
    {
        uint current = CurrentId(now);
        uint oldest = current >= (uint)_config.Keep ? current - (uint)_config.Keep : 0;
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
                _keys[period] = CookieKey.Derive(_fleetSecret, period); // the advance is always 0 in fleet mode
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

    /// <summary>
    /// A forced rotation, now (random keys only): the advance grows by one and the new current key is
    /// made afresh (not the "next" key, which was on disk and may have leaked with the rest); the
    /// keys before it stay, <c>keep</c> of them, so every cookie they sealed still opens. The schedule
    /// is unchanged: the next rotation is at the current period's end, so the new key seals for the
    /// rest of this period.
    /// </summary>
    public CookieKeyRing ForceRotate(DateTimeOffset now)
    {
        if (FleetMode)
        {
            throw new InvalidOperationException("fleet keys are derived from the secret and the time; they cannot be rotated here alone");
        }
        _advance++;
        uint current = CurrentId(now);
        _keys.Remove(current + 1);
        _keys[current] = new CookieKey(current, RandomNumberGenerator.GetBytes(CookieKey.KeyLength));
        Update(now, out CookieKeyRing ring);
        return ring;
    }

    /// <summary>
    /// Takes a reload's <c>rotation</c> and <c>keep</c> (storage and fleet secret need a restart).
    /// With random keys a new period length moves the advance so that the key current now stays
    /// current until the new period's boundary: ids keep growing and every kept key still opens its
    /// cookies. Fleet keys follow the new periods at once, as every appliance of the fleet does with
    /// the same setting (cookies under the old periods' keys get a NAK and a new key exchange, as
    /// after a restart). Returns the updated ring.
    /// </summary>
    public CookieKeyRing Reconfigure(NtsKeysConfig reloaded, DateTimeOffset now)
    {
        uint current = CurrentId(now);
        _config = _config with { Rotation = reloaded.Rotation, Keep = reloaded.Keep };
        _advance = FleetMode ? 0 : current - (long)PeriodOf(now);
        Update(now, out CookieKeyRing ring);
        return ring;
    }

    /// <summary>
    /// Writes the ring to its file: 0600, via a temporary file and rename, then the directory is
    /// flushed, so a crash leaves the old or the new file, never half of one, and a save that
    /// returned survives a power cut.
    /// </summary>
    public void Save()
    {
        if (FleetMode)
        {
            return;
        }
        string path = Path.GetFullPath(_config.Storage);
        string directory = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string temporary = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        // A temporary file left by a crash (by a process of the same id, before a reboot) is removed,
        // never reused: opened as it is, it would keep its old mode and owner (a link, its target's),
        // and the keys would land in it. CreateNew (O_EXCL) then makes a new file or fails.
        File.Delete(temporary);
        var stored = new StoredRing(1, RotationSeconds,
            _keys.Values.OrderBy(k => k.Id).Select(k => (StoredKey?)new StoredKey(k.Id, Convert.ToBase64String(k.Key))).ToList(), _advance);
        using (FileStream stream = new(temporary, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        {
            JsonSerializer.Serialize(stream, stored, StoredRingJson.Default.StoredRing);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temporary, path, overwrite: true);
        // rename(2) is in the directory: until the directory is on disk, a crash may bring back the
        // old file (keys that sealed cookies since would be lost) or leave no file at all.
        DirectorySync.Flush(directory);
    }

    private static byte[] ReadSecret(string path)
    {
        byte[] secret;
        using (SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read))
        {
            secret = ReadPrivate(handle, path, s_secretMask, MaxSecretBytes, "a fleet secret",
                $"a fleet secret must be 0600 (or 0640, for the service's group): whoever could read it can derive every key of the fleet. "
                + $"Make a new secret for every appliance of the fleet if someone else may have read it, else keep it with: chmod 600 {path}");
        }
        if (secret.Length < 32)
        {
            throw new InvalidDataException($"{path}: a fleet secret needs at least 32 bytes (it has {secret.Length}); make one with: head -c 32 /dev/urandom > {path}");
        }
        return secret;
    }

    private sealed record StoredKey(uint Id, string? Key);

    /// <param name="Advance">Added to the period number to make the current id (forced rotations); absent in older files: 0.</param>
    private sealed record StoredRing(int Version, long RotationSeconds, List<StoredKey?>? Keys, long Advance = 0);

    /// <summary>The key file's JSON, generated at build time: Native AOT has no reflection-based serializer.</summary>
    [JsonSerializable(typeof(StoredRing))]
    private sealed partial class StoredRingJson : JsonSerializerContext;
}
