using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
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
/// Every save writes the ring twice, to the key file and then to its copy (<see cref="CopyPath"/>):
/// a key file found corrupted or truncated at start is recovered from the copy (the same keys, so the
/// cookies out there still open), and only when neither is good does the start stop, saying what to do.
/// </summary>
public sealed partial class KeyRingStore(NtsKeysConfig config)
{
    private NtsKeysConfig _config = config;
    private long _advance;

    /// <summary>Far more than a ring can fill: keep (at most 1000) + 2 keys of about 70 bytes of JSON each.</summary>
    private const int MaxFileBytes = 1 << 20;

    /// <summary>Far more than a secret needs (32 bytes), and a bound on what is read (a device never ends).</summary>
    private const int MaxSecretBytes = 4096;

    /// <summary>
    /// The fleet secret is provisioned by the operator, often owned by root and readable by the
    /// service's group (0640, as chrony's keys): group read is allowed, others nothing, writing only the owner.
    /// </summary>
    private static readonly UnixFileMode s_secretMask = UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    private readonly Dictionary<uint, CookieKey> _keys = [];
    private readonly byte[]? _fleetSecret = config.FleetSecret is { } path ? ReadSecret(path) : null;

    public bool FleetMode => _fleetSecret is not null;

    /// <summary>
    /// The copy of the key file that every save writes after it: the previous good copy a start falls
    /// back on when the key file is corrupted, truncated or missing. It holds the ring of the last
    /// save that finished, or, when a save was cut off between the two files, of the one before.
    /// </summary>
    public string CopyPath => _config.Storage + ".prev";

    /// <summary>Where a recovery sets a bad key file aside, for a look (it may show tampering).</summary>
    public string SetAsidePath => _config.Storage + ".corrupt";

    /// <summary>
    /// True while the ring in memory has changes no save has put on disk yet (a rotation while the
    /// disk is full or read-only): a restart now would lose the keys made since, and NAK their cookies.
    /// </summary>
    public bool Unsaved { get; private set; }

    /// <summary>Whether <see cref="Load"/> found a ring on disk (the key file or its copy): false on a first start.</summary>
    public bool LoadedFromDisk { get; private set; }

    /// <summary>
    /// What <see cref="Load"/> recovered from, for one line of the start-up log: the key file was
    /// missing, corrupted or truncated and the ring came from <see cref="CopyPath"/>; null otherwise.
    /// </summary>
    public string? Recovered { get; private set; }

    /// <summary>
    /// What <see cref="Load"/> found wrong with the copy beside a good key file (missing, damaged,
    /// older), for one line of the start-up log; the start-up save writes it again. Null otherwise.
    /// </summary>
    public string? CopyProblem { get; private set; }

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
    /// Loads persisted keys (random mode). Neither the key file nor its copy there: a first start, not an
    /// error. A key file that is not as <see cref="Save"/> writes it (not JSON, no keys, a key of the
    /// wrong length, truncated, too large, unreadable: EIO), or missing while its copy is there, is
    /// replaced by the copy when the copy is good: the same keys, so every cookie still opens, and
    /// <see cref="Recovered"/> says so (the bad file is set aside as <see cref="SetAsidePath"/>).
    /// When neither is good this throws <see cref="InvalidDataException"/> naming the files, the
    /// problems and what to do: start-up stops with that line rather than start a new ring in silence,
    /// which would turn every cookie out there into a NAK and could hide tampering. A file open to
    /// others is refused whatever the copy holds: the copy has the same keys, exposed alike.
    /// </summary>
    public void Load()
    {
        if (FleetMode)
        {
            return;
        }
        string path = _config.Storage;
        SecretFile.RemoveStaleTemporaryFiles(path);
        StoredRing? ring = TryRead(path, out string? problem);
        string? source = null;
        if (ring is null)
        {
            StoredRing? copy = TryRead(CopyPath, out string? copyProblem);
            if (copy is null && problem is null && copyProblem is null)
            {
                return; // a first start: nothing was ever saved here
            }
            if (copy is null)
            {
                string what = problem is null ? $"{path} is missing" : $"{path} {problem}";
                string copyState = copyProblem is null ? $"there is no previous copy ({CopyPath})" : $"its previous copy {CopyPath} {copyProblem}";
                throw new InvalidDataException($"{what}, and {copyState}: restore the files from a backup, or remove {path} and "
                    + $"{CopyPath} to start a new ring (every client's cookies then get an NTS NAK and it makes a new key exchange, RFC 8915 §5.7)");
            }
            if (problem is null)
            {
                // Removed, not damaged: perhaps on purpose, to start a new ring after the keys leaked
                // (what the refusal above tells an operator to do). Bringing the same keys back from the
                // copy would undo that in silence, so the operator says which was meant.
                throw new InvalidDataException($"{path} is missing, but its previous copy {CopyPath} holds a ring of {copy.Keys!.Count} keys: "
                    + $"to keep them (the cookies out there stay valid), mv {CopyPath} {path}; to start a new ring (every client's cookies "
                    + $"then get an NTS NAK and it makes a new key exchange, RFC 8915 §5.7), remove {CopyPath} too");
            }
            ring = copy;
            source = $"{path} {problem}";
            if (SetAside(path))
            {
                source += $" (set aside as {SetAsidePath})";
            }
        }
        else if (CopyState(ring) is { } copyState)
        {
            // The key file is good, but the copy that would stand in for it is not (or not there yet:
            // a ring saved before copies were kept): the start-up save writes both.
            CopyProblem = $"{copyState}: it is written again from {path}";
            Unsaved = true;
        }
        LoadedFromDisk = true;
        if (source is not null)
        {
            // The ring in memory is not in the key file: the start-up save writes it back.
            Recovered = $"{source}; the ring was recovered from its previous copy {CopyPath} ({ring.Keys!.Count} keys)";
            Unsaved = true;
        }
        List<CookieKey> keys = ToKeys(ring);
        if (ring.RotationSeconds != RotationSeconds)
        {
            // Key ids are numbers of rotation periods: under another period length the same id is
            // another time, so the stored keys would seal and open cookies for the wrong periods.
            Discarded = $"{(source is null ? path : CopyPath)} holds keys of {ring.RotationSeconds}s rotation periods but the rotation is now {RotationSeconds}s: "
                + "they are dropped and a new ring starts; clients whose cookies they sealed get an NTS NAK and make a new key exchange";
            return;
        }
        foreach (CookieKey key in keys)
        {
            _keys[key.Id] = key;
        }
        _advance = ring.Advance;
    }

    /// <summary>
    /// Why the copy beside a good key file is no copy of <paramref name="ring"/> (missing, damaged, or
    /// an older ring: a save cut off between the two files), or null when it is one.
    /// </summary>
    private string? CopyState(StoredRing ring)
    {
        StoredRing? copy = TryRead(CopyPath, out string? problem);
        if (copy is null)
        {
            return problem is null ? $"{CopyPath} is missing" : $"{CopyPath} {problem}";
        }
        bool same = JsonSerializer.SerializeToUtf8Bytes(copy, StoredRingJson.Default.StoredRing)
            .AsSpan().SequenceEqual(JsonSerializer.SerializeToUtf8Bytes(ring, StoredRingJson.Default.StoredRing));
        return same ? null : $"{CopyPath} holds an older ring than {_config.Storage}";
    }

    /// <summary>
    /// The ring in <paramref name="path"/>, checked down to every key; null with a null
    /// <paramref name="problem"/> when there is no such file, null with the problem when its content is
    /// no good (what a copy can make up for). A file open to others, or one the appliance may not open,
    /// throws: no copy makes up for that.
    /// </summary>
    private StoredRing? TryRead(string path, out string? problem)
    {
        problem = null;
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        using (handle)
        {
            SecretFile.CheckPrivate(handle, path, SecretFile.OthersMask,
                $"master keys must be 0600: whoever could read them can open every cookie and forge the time their clients get. "
                + $"Remove it and {CopyPath} to start a new ring (every client makes a new key exchange), or, if nobody else can have read or "
                + $"written it, keep it with: chmod 600 {path}");
            try
            {
                return Parse(SecretFile.ReadBounded(handle, path, MaxFileBytes, "a key file"));
            }
            catch (InvalidDataException e)
            {
                problem = e.Message.StartsWith(path + " ", StringComparison.Ordinal) ? e.Message[(path.Length + 1)..] : e.Message;
            }
            catch (IOException e)
            {
                problem = $"cannot be read ({e.Message})"; // EIO: a bad sector is no key file either
            }
        }
        return null;
    }

    /// <summary>Renames a bad key file aside (best effort: on a read-only disk it stays, and the next start recovers again).</summary>
    private bool SetAside(string path)
    {
        try
        {
            File.Move(path, SetAsidePath, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The stored ring, checked down to every key, or <see cref="InvalidDataException"/> saying what is wrong.</summary>
    private static StoredRing Parse(ReadOnlySpan<byte> json)
    {
        if (json.IsEmpty)
        {
            throw Corrupt("is not a key file (it is empty: truncated)");
        }
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
        if (stored.Keys is not { Count: > 0 })
        {
            throw Corrupt("holds no keys");
        }
        ToKeys(stored);
        return stored;
    }

    /// <summary>The keys of a parsed ring, each checked, or <see cref="InvalidDataException"/> saying which is wrong.</summary>
    private static List<CookieKey> ToKeys(StoredRing stored)
    {
        var seen = new HashSet<uint>();
        var parsed = new List<CookieKey>(stored.Keys!.Count);
        Span<byte> material = stackalloc byte[CookieKey.KeyLength + 3];
        foreach (StoredKey? key in stored.Keys)
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
        return parsed;
    }

    /// <summary>A problem of the file being read; <see cref="TryRead"/> says which file.</summary>
    private static InvalidDataException Corrupt(string problem) => new(problem);

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
        Unsaved |= changed && !FleetMode; // fleet keys are derived again at every start: nothing to save
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
        Unsaved = true;
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
        long advance = FleetMode ? 0 : current - (long)PeriodOf(now);
        Unsaved |= advance != _advance && !FleetMode;
        _advance = advance;
        Update(now, out CookieKeyRing ring);
        return ring;
    }

    /// <summary>
    /// Writes the ring to its file and then to its copy (<see cref="CopyPath"/>), each the same way: a
    /// new 0600 temporary file in the same directory, written and fsync'ed, renamed over the file, and
    /// the directory fsync'ed after the rename. A kill or a crash at any point leaves each file whole,
    /// the old ring or the new, never half of one (rename(2) is atomic), and a save that returned
    /// survives a power cut. A failure (ENOSPC, EROFS, EACCES, EIO) throws <see cref="IOException"/> or
    /// <see cref="UnauthorizedAccessException"/>, removes its temporary file, and leaves
    /// <see cref="Unsaved"/> true; the files on disk stay as they were, or the key file new and the copy old.
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
        var stored = new StoredRing(1, RotationSeconds,
            _keys.Values.OrderBy(k => k.Id).Select(k => (StoredKey?)new StoredKey(k.Id, Convert.ToBase64String(k.Key))).ToList(), _advance);
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(stored, StoredRingJson.Default.StoredRing);
        // The key file first: a save cut off between the two leaves the key file new and the copy one
        // save older, both whole, and a start reads the key file.
        SecretFile.WriteDurably(path, directory, json);
        SecretFile.WriteDurably(Path.GetFullPath(CopyPath), directory, json);
        Unsaved = false;
    }

    private static byte[] ReadSecret(string path)
    {
        byte[] secret;
        using (SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read))
        {
            SecretFile.CheckPrivate(handle, path, s_secretMask,
                $"a fleet secret must be 0600 (or 0640, for the service's group): whoever could read it can derive every key of the fleet. "
                + $"Make a new secret for every appliance of the fleet if someone else may have read it, else keep it with: chmod 600 {path}");
            secret = SecretFile.ReadBounded(handle, path, MaxSecretBytes, "a fleet secret");
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
