using System.Runtime.InteropServices;
using Appliance.Protocol;
using Appliance.Server.Clock;
using Appliance.Server.Configuration;
using Appliance.Server.Ntp;
using Appliance.Server.Nts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Hosting;

/// <summary>
/// Live reload (SIGHUP, <see cref="ReloadAsync"/>) and forced key rotation (<see cref="RotateKeysAsync"/>).
/// A reload reads and validates the file the server started from; an invalid file changes nothing.
/// Otherwise every changed key is applied now if the table (<see cref="ConfigKeys"/>) says Live,
/// and reported as needing a restart if it says Restart (its old value stays in force). Reloads run
/// one at a time, and each is compared with what is in force, not with the file of the last one.
/// </summary>
public sealed partial class ApplianceServer
{
    private readonly SemaphoreSlim _reloading = new(1, 1);
    private ApplianceConfig _inForce = null!;
    private string? _configPath;
    private LogLevelSwitch _levels = null!;
    private PosixSignalRegistration? _sighup;
    private ILogger _reloadLog = null!;
    private int? _tableClients;

    /// <summary>The configuration in force: the start's, with what reloads applied live.</summary>
    public ApplianceConfig Config => Volatile.Read(ref _inForce);

    /// <summary>The least severe log level written now (<c>log.level</c>).</summary>
    public LogLevel LogLevel => _levels.Level;

    /// <summary>The NTS master-key ring's store, when NTS is configured.</summary>
    public KeyRingStore? NtsKeys => _host.Services.GetService<KeyRingStore>();

    /// <summary>When the current NTS key stops sealing new cookies, when NTS is configured.</summary>
    public DateTimeOffset? NextKeyRotation => _host.Services.GetService<KeyRingService>()?.NextRotation;

    private void StartReloading(ApplianceConfig config, string? configPath, LogLevelSwitch levels)
    {
        _inForce = config;
        _tableClients = config.Ntp.RateLimit?.Clients;
        _configPath = configPath;
        _levels = levels;
        _reloadLog = _host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Appliance.Server.Reload");
        // SIGHUP means "reload" (as for chronyd, nginx…), never "stop": the default action would end the process.
        _sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true;
            _ = Task.Run(ReloadOnSignalAsync);
        });
    }

    private void StopReloading() => _sighup?.Dispose();

    private async Task ReloadOnSignalAsync()
    {
        _reloadLog.LogInformation("SIGHUP: reloading {Source}", _configPath ?? ConfigLoader.EmbeddedDefaultName);
        try
        {
            await ReloadAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // a signal handler's task: a failure is logged, and serving goes on
        catch (Exception e)
#pragma warning restore CA1031
        {
            _reloadLog.LogError(e, "reload failed: {Error}; the configuration in force is unchanged", e.Message);
        }
    }

    /// <summary>Reads the file again and applies what changed (see the class summary); every line of the result is logged.</summary>
    public async Task<ReloadResult> ReloadAsync(CancellationToken cancellationToken = default)
    {
        await _reloading.WaitAsync(cancellationToken).ConfigureAwait(false);
        ReloadResult result;
        try
        {
            result = await ReloadLockedAsync().ConfigureAwait(false);
        }
        finally
        {
            _reloading.Release();
        }
        foreach (string line in result.Errors)
        {
            _reloadLog.LogError("reload: {Error}", line);
        }
        foreach (string key in result.Applied)
        {
            _reloadLog.LogInformation("reload: applied: {Key}", key);
        }
        foreach (string key in result.NeedsRestart)
        {
            _reloadLog.LogWarning("reload: needs a restart: {Key}", key);
        }
        if (!result.Ok)
        {
            _reloadLog.LogError("reload: {Count} error(s); serving on with the configuration in force", result.Errors.Count);
        }
        else if (result.Applied.Count == 0 && result.NeedsRestart.Count == 0)
        {
            _reloadLog.LogInformation("reload: no change");
        }
        return result;
    }

    private async Task<ReloadResult> ReloadLockedAsync()
    {
        string source = _configPath ?? ConfigLoader.EmbeddedDefaultName;
        ConfigResult read = _configPath is null ? ConfigLoader.LoadEmbeddedDefault() : ConfigLoader.LoadFile(_configPath);
        if (!read.IsValid)
        {
            return Failed(read.Errors.Select(e => e.Format(source)));
        }
        ApplianceConfig old = _inForce;
        ApplianceConfig next = read.Config!;
        IReadOnlyList<ConfigKey> changed = ConfigDiff.Changed(old, next);
        var applied = new List<string>();
        var restart = new List<string>();
        bool Live(ConfigKey key) => changed.Contains(key) && key.Reload == Reload.Live;
        foreach (ConfigKey key in changed.Where(k => k.Reload == Reload.Restart))
        {
            restart.Add(key.Path);
        }

        // Sources first: the only step that can fail (a driver that cannot be made), and it changes nothing when it does.
        IReadOnlyList<SourceConfig> sources = old.Sources;
        if (Live(K.Sources))
        {
            try
            {
                applied.AddRange(await Clock.UpdateSourcesAsync(next.Sources).ConfigureAwait(false));
                sources = next.Sources;
            }
            catch (RestartNeededException e)
            {
                restart.Add($"{K.Sources.Path} ({e.Message})");
            }
            catch (StartupFailedException e)
            {
                return Failed([$"{source}: {K.Sources.Path}: {e.Message}"]);
            }
        }

        NtpConfig ntp = ApplyPolicy(old.Ntp, next.Ntp, changed, applied, restart);
        NtsKeConfig? nts = ApplyNts(old.NtsKe, next.NtsKe, changed, applied, restart);
        if (Live(K.LogLevel))
        {
            _levels.Level = next.Log.Level;
            applied.Add(K.LogLevel.Path);
        }
        Volatile.Write(ref _inForce, old with { Ntp = ntp, NtsKe = nts, Sources = sources, Log = next.Log });
        return new ReloadResult(true, [], applied, restart);
    }

    private static ReloadResult Failed(IEnumerable<string> errors) => new(false, [.. errors], [], []);

    /// <summary>Access list, deny action and rate-limit parameters to the workers; the rest of <c>ntp</c> stays as it started.</summary>
    private NtpConfig ApplyPolicy(NtpConfig old, NtpConfig next, IReadOnlyList<ConfigKey> changed, List<string> applied, List<string> restart)
    {
        List<ConfigKey> live = changed.Where(k => k.Reload == Reload.Live && k.Path.StartsWith(K.Ntp.Path + ".", StringComparison.Ordinal)).ToList();
        if (live.Count == 0)
        {
            return old;
        }
        // The tables' size (clients) is theirs from the start; a table that was never built cannot be switched on.
        RateLimitSettings? rate = next.RateLimit is { } wanted && _tableClients is int clients ? wanted with { Clients = clients } : next.RateLimit;
        if (rate is not null && !Engine.HasRateLimitTables)
        {
            live.RemoveAll(k => k.Path.StartsWith(K.NtpRateLimit.Path, StringComparison.Ordinal));
            restart.Add($"{K.NtpRateLimit.Path} (rate limiting was off at start: the workers have no client tables)");
            rate = null;
        }
        Engine.UpdatePolicy(next.Access, next.DenyAction, rate);
        Roughtime?.UpdateAccess(next.Access); // ntp.access is Roughtime's access list too
        applied.AddRange(live.Select(k => k.Path));
        return old with { Access = next.Access, DenyAction = next.DenyAction, RateLimit = rate };
    }

    /// <summary>NTS-KE's limits and records to the listener, rotation and keep to the key ring.</summary>
    private NtsKeConfig? ApplyNts(NtsKeConfig? old, NtsKeConfig? next, IReadOnlyList<ConfigKey> changed, List<string> applied, List<string> restart)
    {
        if (old is null || next is null || NtsKe is null)
        {
            return old; // NTS on or off is "nts-ke", a restart key
        }
        List<ConfigKey> live = changed.Where(k => k.Reload == Reload.Live && k.Path.StartsWith(K.NtsKe.Path + ".", StringComparison.Ordinal)).ToList();
        // ntp.access is NTS-KE's access list too: it goes with the rest.
        if (live.Count == 0 && !changed.Any(k => k.Path.StartsWith(K.NtpAccess.Path, StringComparison.Ordinal)))
        {
            return old;
        }
        // What needs a restart keeps its old value; the rest is the new file's.
        NtsKeConfig merged = next with
        {
            Listen = old.Listen,
            Certificate = old.Certificate,
            PrivateKey = old.PrivateKey,
            Keys = old.Keys with { Rotation = next.Keys.Rotation, Keep = next.Keys.Keep },
        };
        if (live.Contains(K.NtsKeNtpServer) && changed.Contains(K.NtpListen))
        {
            // Without ntp-server the Port record follows ntp.listen, which moves only at a restart:
            // until then, tell clients where NTP is served now.
            live.Remove(K.NtsKeNtpServer);
            restart.Add($"{K.NtsKeNtpServer.Path} (it follows ntp.listen)");
            merged = merged with { NtpServer = old.NtpServer, NtpPort = old.NtpPort };
        }
        if (!NtsKe.UpdateLimits(merged))
        {
            live.Remove(K.NtsKeMaxConnections);
            restart.Add($"{K.NtsKeMaxConnections.Path} (more than half the client table built at start)");
            merged = merged with { MaxConnections = old.MaxConnections };
            NtsKe.UpdateLimits(merged);
        }
        if (live.Contains(K.NtsKeKeysRotation) || live.Contains(K.NtsKeKeysKeep))
        {
            _host.Services.GetRequiredService<KeyRingService>().Reconfigure(merged.Keys);
        }
        applied.AddRange(live.Select(k => k.Path));
        return merged;
    }

    /// <summary>
    /// A forced rotation now: a fresh current key; the earlier keys stay (<c>nts-ke.keys.keep</c>) so
    /// every cookie handed out still opens; persisted, published to the workers and NTS-KE, counted.
    /// Refused without NTS, and in fleet mode (it would split the fleet: the message says what to do).
    /// </summary>
    public async Task<RotateResult> RotateKeysAsync(CancellationToken cancellationToken = default)
    {
        if (_host.Services.GetService<KeyRingService>() is not { } keys)
        {
            return new RotateResult(false, "NTS is not configured (nts-ke)");
        }
        // One at a time with reloads: a reload may be changing the ring's rotation and keep.
        await _reloading.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            (bool ok, string message) = keys.RotateNow();
            if (!ok)
            {
                _reloadLog.LogWarning("rotate-keys: {Message}", message);
            }
            return new RotateResult(ok, message);
        }
        finally
        {
            _reloading.Release();
        }
    }
}

/// <summary>The host's minimum log level, as a filter a reload can change (<c>log.level</c>).</summary>
internal sealed class LogLevelSwitch(LogLevel level)
{
    private volatile int _level = (int)level;

    public LogLevel Level
    {
        get => (LogLevel)_level;
        set => _level = (int)value;
    }

    public bool Allows(string? provider, string? category, LogLevel level) => level >= Level && level != LogLevel.None;
}
