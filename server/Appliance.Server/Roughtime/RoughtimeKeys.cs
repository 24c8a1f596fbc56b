using System.Globalization;
using System.Security.Cryptography;
using Appliance.Protocol.Roughtime;
using Appliance.Server.Hosting;
using Microsoft.Win32.SafeHandles;
using NSec.Cryptography;

namespace Appliance.Server.Roughtime;

/// <summary>
/// The Roughtime server's keys (RFC 10049 §5.2.6, §6.2): the long-term Ed25519 key, its 32-byte seed
/// kept in a 0600 file (hex, one line) that the first start makes and every later start reads, and
/// the online keys it delegates to, made in memory only. A client trusts the long-term public key
/// alone, so the file is never replaced: a file that cannot be read stops the start, saying what to do.
/// </summary>
public sealed class RoughtimeKeys
{
    /// <summary>An online key's MINT lies this far before the MIDP it was made for: a served time a little behind still falls inside.</summary>
    public const ulong MintLeewaySeconds = 60;

    private const int SeedLength = 32;

    /// <summary>Far more than a seed in hex and a newline; a bound on what is read (a device never ends).</summary>
    private const int MaxFileBytes = 4096;

    private readonly Key _longTerm;
    private readonly ulong _lifetimeSeconds;
    private readonly Lock _lock = new();
    private RoughtimeDelegation? _current;
    private long _delegations;

    private RoughtimeKeys(Key longTerm, string path, bool created, TimeSpan onlineKeyLifetime)
    {
        _longTerm = longTerm;
        Path = path;
        Created = created;
        PublicKey = longTerm.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        _lifetimeSeconds = (ulong)Math.Max(2, onlineKeyLifetime.TotalSeconds);
    }

    /// <summary>The file the long-term key is kept in.</summary>
    public string Path { get; }

    /// <summary>True when this start made the long-term key (there was no file).</summary>
    public bool Created { get; }

    /// <summary>The long-term public key (32 bytes), what clients are given.</summary>
    public byte[] PublicKey { get; }

    /// <summary>The public key as clients' server lists write it (RFC 10049 §7: base64).</summary>
    public string PublicKeyBase64 => Convert.ToBase64String(PublicKey);

    /// <summary>Online keys delegated since the start.</summary>
    public long Delegations => Interlocked.Read(ref _delegations);

    /// <summary>The online key's delegation now, or null before the first batch was signed.</summary>
    public RoughtimeDelegation? Current => Volatile.Read(ref _current);

    /// <summary>
    /// Reads the long-term key from <paramref name="path"/>, or makes one and writes it there (durably,
    /// 0600) when there is no such file. Throws <see cref="InvalidDataException"/> for a file open to
    /// others or not a key, <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/> when
    /// it cannot be read or written; each message names the file and the fix.
    /// </summary>
    public static RoughtimeKeys Load(string path, TimeSpan onlineKeyLifetime)
    {
        string full = System.IO.Path.GetFullPath(path);
        SecretFile.RemoveStaleTemporaryFiles(full);
        byte[]? seed = TryRead(full);
        bool created = seed is null;
        if (seed is null)
        {
            seed = RandomNumberGenerator.GetBytes(SeedLength);
            string directory = System.IO.Path.GetDirectoryName(full)!;
            bool made = !Directory.Exists(directory);
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (made)
            {
                // A new directory is an entry in its parent: on disk before the key is, or a power cut
                // could lose both, and the next start would make another identity in silence.
                Timestamping.DirectorySync.Flush(System.IO.Path.GetDirectoryName(directory)!);
            }
            // Never over a key file made meanwhile (another instance, a restore): the key is never replaced.
            SecretFile.WriteDurably(full, directory, System.Text.Encoding.ASCII.GetBytes(Convert.ToHexStringLower(seed) + "\n"), replace: false);
        }
        try
        {
            Key key = Key.Import(SignatureAlgorithm.Ed25519, seed, KeyBlobFormat.RawPrivateKey,
                new KeyCreationParameters { ExportPolicy = KeyExportPolicies.None });
            return new RoughtimeKeys(key, full, created, onlineKeyLifetime);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(seed);
        }
    }

    /// <summary>The seed in the file, or null when there is no file.</summary>
    private static byte[]? TryRead(string path)
    {
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        byte[] bytes;
        using (handle)
        {
            SecretFile.CheckPrivate(handle, path, SecretFile.OthersMask,
                "the Roughtime long-term key must be 0600: whoever could read it can sign any time as this server. If someone else may "
                + $"have read it, remove it to make a new key (and give every client the new public key); else keep it with: chmod 600 {path}");
            bytes = SecretFile.ReadBounded(handle, path, MaxFileBytes, "a Roughtime key file");
        }
        string text = System.Text.Encoding.ASCII.GetString(bytes).Trim();
        CryptographicOperations.ZeroMemory(bytes);
        if (text.Length != 2 * SeedLength || !text.All(Uri.IsHexDigit))
        {
            throw new InvalidDataException($"{path} is not a Roughtime key file (it must hold a 32-byte Ed25519 seed as 64 hex digits): "
                + "restore it from a backup; removing it makes a new key, and every client must then be given the new public key");
        }
        return Convert.FromHexString(text);
    }

    /// <summary>
    /// The delegation to sign a batch whose MIDP is <paramref name="midpointSeconds"/> with: the current
    /// one, or a new online key when the current one covers less than half its lifetime ahead of MIDP,
    /// or does not cover MIDP at all (the served time stepped). Signing a delegation costs one Ed25519
    /// signature, so it happens inline, on the rare batch that needs it. Thread-safe.
    /// </summary>
    public RoughtimeDelegation For(ulong midpointSeconds)
    {
        RoughtimeDelegation? current = Volatile.Read(ref _current);
        if (current is not null && Fresh(current, midpointSeconds))
        {
            return current;
        }
        lock (_lock)
        {
            current = _current;
            if (current is not null && Fresh(current, midpointSeconds))
            {
                return current;
            }
            ulong mint = midpointSeconds > MintLeewaySeconds ? midpointSeconds - MintLeewaySeconds : 0;
            // The delegation it replaces is not disposed: a batch on another thread may be signing with
            // it now. Its key is freed by its finaliser; there are a few a day.
            var next = RoughtimeDelegation.Create(_longTerm, new Key(SignatureAlgorithm.Ed25519), mint, midpointSeconds + _lifetimeSeconds);
            Volatile.Write(ref _current, next);
            Interlocked.Increment(ref _delegations);
            return next;
        }
    }

    private bool Fresh(RoughtimeDelegation delegation, ulong midpointSeconds) =>
        delegation.Covers(midpointSeconds) && delegation.Maxt - midpointSeconds >= _lifetimeSeconds / 2;

    /// <summary>A line for the log: where the key is and what to publish.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"long-term public key {PublicKeyBase64} (ed25519, base64; {(Created ? "made now and saved in" : "from")} {Path})");
}
