using System.Net.Security;
using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Nts;

/// <summary>
/// The NTS-KE certificate and key, reloaded when their files change or on SIGHUP. A new handshake
/// takes whatever context is current; established connections keep theirs. A reload that fails,
/// for whatever reason, is logged and counted, and the old certificate stays in service.
/// </summary>
public sealed class CertificateStore : IDisposable
{
    private readonly string _certificatePath;
    private readonly string _keyPath;
    private readonly ILogger _logger;
    private readonly FileSystemWatcher? _watcher;
    private readonly PosixSignalRegistration? _sighup;
    private readonly Timer _debounce;
    private SslStreamCertificateContext _current;
    private int _reloads;
    private int _reloadFailures;

    public CertificateStore(string certificatePath, string keyPath, ILogger logger, bool watch = true)
    {
        _certificatePath = Path.GetFullPath(certificatePath);
        _keyPath = Path.GetFullPath(keyPath);
        _logger = logger;
        _current = Load(_certificatePath, _keyPath);
        _debounce = new Timer(_ => Reload("files changed"));
        if (watch)
        {
            _watcher = new FileSystemWatcher(Path.GetDirectoryName(_certificatePath)!) { NotifyFilter = NotifyFilters.LastWrite | NotifyFilters.FileName | NotifyFilters.CreationTime };
            _watcher.Changed += OnFileEvent;
            _watcher.Created += OnFileEvent;
            _watcher.Renamed += OnFileEvent;
            _watcher.EnableRaisingEvents = true;
            _sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
            {
                context.Cancel = true; // SIGHUP means "reload", not "stop"
                Reload("SIGHUP");
            });
        }
    }

    public SslStreamCertificateContext Current => Volatile.Read(ref _current);

    /// <summary>Subject and expiry of the certificate in service, for the log.</summary>
    public string Describe() => $"{Current.TargetCertificate.Subject}, valid until {NotAfter.UtcDateTime:yyyy-MM-dd HH:mm}Z";

    /// <summary>When the certificate in service now expires (a reload moves it): the log line and <c>appliance_ntske_certificate_remaining_seconds</c>.</summary>
    public DateTimeOffset NotAfter => new(Current.TargetCertificate.NotAfter);

    /// <summary>Reloads that put new files in service.</summary>
    public int Reloads => Volatile.Read(ref _reloads);

    /// <summary>Reloads that failed and kept the old certificate.</summary>
    public int ReloadFailures => Volatile.Read(ref _reloadFailures);

    private void OnFileEvent(object sender, FileSystemEventArgs e)
    {
        string path = Path.GetFullPath(e.FullPath);
        if (path == _certificatePath || path == _keyPath)
        {
            // Certificate renewals write two files: wait for both before reloading.
            _debounce.Change(TimeSpan.FromMilliseconds(500), Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Reloads now; returns false (and keeps the old certificate) when the new files do not load.</summary>
    public bool Reload(string why)
    {
        SslStreamCertificateContext next;
        try
        {
            next = Load(_certificatePath, _keyPath);
        }
        catch (Exception e)
        {
            // A supervision boundary: the debounce timer and the SIGHUP handler call this, and an
            // exception escaping either ends the process. Whatever the new files do (an unreadable key
            // is an UnauthorizedAccessException, a half-written one a CryptographicException), serving goes on.
            Interlocked.Increment(ref _reloadFailures);
            _logger.LogError("NTS-KE certificate reload ({Why}) failed, keeping the one in service ({Certificate}): {Error}: {Message}",
                why, Describe(), e.GetType().Name, e.Message);
            return false;
        }
        Volatile.Write(ref _current, next);
        Interlocked.Increment(ref _reloads);
        _logger.LogInformation("NTS-KE certificate reloaded ({Why}): {Certificate}", why, Describe());
        return true;
    }

    /// <summary>Loads a PEM chain (leaf first) and its PEM key into a handshake-ready context.</summary>
    public static SslStreamCertificateContext Load(string certificatePath, string keyPath)
    {
        using X509Certificate2 pem = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        // Re-import so the key lives in a form OpenSSL can use for every handshake.
        X509Certificate2 leaf = X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        var chain = new X509Certificate2Collection();
        chain.ImportFromPemFile(certificatePath);
        var intermediates = new X509Certificate2Collection();
        foreach (X509Certificate2 certificate in chain)
        {
            if (certificate.Thumbprint != leaf.Thumbprint)
            {
                intermediates.Add(certificate);
            }
        }
        // offline: never fetch intermediates or OCSP on the handshake path (and ~1.5x the handshake rate).
        return SslStreamCertificateContext.Create(leaf, intermediates, offline: true);
    }

    public void Dispose()
    {
        _watcher?.Dispose();
        _sighup?.Dispose();
        _debounce.Dispose();
    }
}
