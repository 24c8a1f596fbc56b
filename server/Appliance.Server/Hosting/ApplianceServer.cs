using System.Net;
using System.Net.Sockets;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Protocol.Nts;
using Appliance.Server.Clock;
using Appliance.Server.Configuration;
using Appliance.Server.Control;
using Appliance.Server.Metrics;
using Appliance.Server.Ntp;
using Appliance.Server.Nts;
using Appliance.Server.Roughtime;
using Appliance.Server.Status;
using Appliance.Timestamping;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Hosting;

/// <summary>
/// The running appliance: sockets bound first (a bad address fails before anything starts), then the
/// Generic Host with the NTP listeners, the time reference and the metrics endpoint.
/// </summary>
public sealed partial class ApplianceServer : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly MonitoringServer? _monitoring;
    private readonly ControlServer? _control;
    private readonly CancellationTokenSource _samplingStop = new();
    private Task _sampling = Task.CompletedTask;

    private bool _stopped;
    private readonly int _mainListeners;

    private ApplianceServer(IHost host, NtpEngine engine, NtsKeServer? ntsKe, MonitoringServer? monitoring, ServerStateCell state,
        ControlServer? control, ServerStateCell? smearState, int mainListeners, RoughtimeServer? roughtime)
    {
        _host = host;
        Roughtime = roughtime;
        SmearState = smearState;
        _mainListeners = mainListeners;
        _control = control;
        Engine = engine;
        NtsKe = ntsKe;
        _monitoring = monitoring;
        State = state;
    }

    public NtpEngine Engine { get; }

    /// <summary>The main listeners' bound addresses (ntp.listen, ephemeral ports resolved).</summary>
    public IReadOnlyList<IPEndPoint> NtpEndPoints => Engine.LocalEndPoints.Take(_mainListeners).ToList();

    /// <summary>The smear listener's bound addresses (ntp.smear.listen); none when it is off.</summary>
    public IReadOnlyList<IPEndPoint> SmearEndPoints => Engine.LocalEndPoints.Skip(_mainListeners).ToList();

    /// <summary>What the smear listener serves, or null when it is off.</summary>
    public ServerStateCell? SmearState { get; }

    /// <summary>The NTS-KE listener, when NTS is configured.</summary>
    public NtsKeServer? NtsKe { get; }

    /// <summary>The Roughtime listener, when <c>roughtime</c> is configured.</summary>
    public RoughtimeServer? Roughtime { get; }

    /// <summary>Where /metrics and the status page (/) are served, or null when metrics.listen is off.</summary>
    public IPEndPoint? MetricsEndPoint => _monitoring?.EndPoint;

    public ServerStateCell State { get; }

    /// <summary>The control socket's path, or null when there is none.</summary>
    public string? ControlSocket => _control?.Path;

    public ClockService Clock => _host.Services.GetRequiredService<ClockService>();

    /// <summary>Binds, builds and starts. Throws <see cref="BindFailedException"/> when an address cannot be bound.</summary>
    /// <param name="kernelClock">In kernel mode, the clock to steer: the real CLOCK_REALTIME when null; tests pass a simulated one.</param>
    /// <param name="configPath">The file <paramref name="config"/> was read from, which a reload reads again; null: the embedded default.</param>
    /// <param name="systemd">What systemd put in the environment (NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM…): this process's when null; tests pass their own.</param>
    /// <param name="ownsProcess">
    /// The server is the process (<c>appliance serve</c>): it may change what belongs to the whole process,
    /// every thread's priority (<c>ntp.background-nice</c>). A server hosted in another process (the tests')
    /// leaves its host's threads alone.
    /// </param>
    public static async Task<ApplianceServer> StartAsync(ApplianceConfig config, Action<ILoggingBuilder>? logging = null,
        KernelClock? kernelClock = null, string? configPath = null, SystemdEnvironment? systemd = null, bool ownsProcess = false,
        CancellationToken cancellationToken = default)
    {
        systemd ??= SystemdEnvironment.FromProcess();
        long startedAt = SystemClock.MonotonicNanoseconds();
        var levels = new LogLevelSwitch(config.Log.Level);
        var state = new ServerStateCell(ServerState.Unsynchronised(SystemClock.MeasurePrecision()));
        ServerStateCell? smearState = config.Ntp.Smear.Enabled ? new ServerStateCell(state.Current) : null;
        var ntsMetrics = new NtsMetrics();
        var keyCell = new CookieKeyRingCell();
        KeyRingStore? keyStore = null;
        CertificateStore? certificates = null;
        using ILoggerFactory startupLogs = LoggerFactory.Create(b => { b.AddApplianceConsole(systemd, timestamps: false); logging?.Invoke(b); });
        // Before the NTS files: a failure here leaves nothing to release.
        RoughtimeKeys? roughtimeKeys = config.Roughtime is { } rt ? LoadRoughtimeKeys(rt, config.User) : null;
        if (config.NtsKe is { } ntsConfig)
        {
            (keyStore, certificates) = await PrepareNtsAsync(ntsConfig, config.User, keyCell, startupLogs, cancellationToken);
        }
        NtsKeServer? ntsKe = null;
        RoughtimeServer? roughtime = null;
        NtpEngine? engine = null;
        MonitoringServer? monitoring = null;
        ControlServer? control = null;
        try
        {
            engine = BindEngine(config.Ntp, state, smearState, config.NtsKe is null ? null : keyCell);
            control = ControlServer.Bind(config.Control, startupLogs.CreateLogger<ControlServer>(), config.User);
            if (config.NtsKe is { } nts)
            {
                ntsKe = NtsKeServer.Bind(nts, certificates!, keyCell, ntsMetrics, startupLogs.CreateLogger<NtsKeServer>());
            }
            if (config.Roughtime is { } roughtimeConfig)
            {
                roughtime = RoughtimeServer.Bind(roughtimeConfig, roughtimeKeys!, state, config.Ntp.Access, startupLogs.CreateLogger<RoughtimeServer>());
            }
            var metrics = new ApplianceMetrics(engine, state, ntsMetrics, ntsKe, keyStore, keyCell, startedAt);
            if (config.Metrics.Listen is { } listen)
            {
                monitoring = MonitoringServer.Start(listen, metrics.Registry);
            }

            HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
            {
                DisableDefaults = true,
                ContentRootPath = AppContext.BaseDirectory,
            });
            builder.Logging.ClearProviders();
            builder.Logging.AddApplianceConsole(systemd);
            // log.level through a filter a reload can change; the minimum lets every level reach it.
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
            builder.Logging.AddFilter(levels.Allows);
            logging?.Invoke(builder.Logging);
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(10));
            builder.Services.AddSingleton(config);
            builder.Services.AddSingleton(state);
            builder.Services.AddSingleton(engine);
            builder.Services.AddSingleton(ntsMetrics);
            builder.Services.AddSingleton(keyCell);
            if (ntsKe is not null)
            {
                builder.Services.AddSingleton(keyStore!);
                builder.Services.AddSingleton(certificates!);
                builder.Services.AddSingleton(ntsKe);
                builder.Services.AddSingleton<KeyRingService>();
                builder.Services.AddHostedService(sp => sp.GetRequiredService<KeyRingService>());
                builder.Services.AddHostedService<NtsKeService>();
            }
            if (roughtime is not null)
            {
                builder.Services.AddSingleton(roughtime);
                builder.Services.AddHostedService<RoughtimeService>();
            }
            builder.Services.AddSingleton(metrics);
            // The clock first: it publishes the first ServerState before the listeners answer anyone.
            builder.Services.AddSingleton(sp => new ClockService(config, state, sp.GetRequiredService<ILoggerFactory>(), kernelClock, smearState));
            builder.Services.AddHostedService(sp => sp.GetRequiredService<ClockService>());
            builder.Services.AddHostedService<NtpService>();
            if (ownsProcess)
            {
                builder.Services.AddHostedService<BackgroundPriorityService>();
            }
            AddSystemd(builder.Services, systemd);
            IHost host = builder.Build();
            metrics.Attach(host.Services.GetRequiredService<ClockService>());
            if (roughtime is not null)
            {
                metrics.Attach(roughtime);
            }
            await host.StartAsync(cancellationToken);
            var server = new ApplianceServer(host, engine, ntsKe, monitoring, state, control, smearState, config.Ntp.Listen.Count, roughtime);
            server.StartReloading(config, configPath, levels);
            // One set of verbs for the control socket and the status page, sampled whether or not the socket is on.
            var verbs = new ControlVerbs(new ControlContext(engine, state, server.Clock, ntsMetrics, keyCell, keyStore, startedAt,
                server.ReloadReportAsync, server.RotateKeysReportAsync)
            { Roughtime = roughtime });
            server.StartSampling(verbs);
            if (control is not null)
            {
                control.Start(verbs);
                host.Services.GetRequiredService<ILogger<ApplianceServer>>().LogInformation("control socket {Path}", control.Path);
            }
            if (monitoring is not null)
            {
                monitoring.ServePage(new StatusSite(verbs, server.Clock, ntsKe).Render);
                host.Services.GetRequiredService<ILogger<ApplianceServer>>()
                    .LogInformation("metrics on http://{EndPoint}/metrics, status page on http://{EndPoint}/", monitoring.EndPoint, monitoring.EndPoint);
            }
            if (config.NtsKe is not null)
            {
                host.Services.GetRequiredService<ILogger<ApplianceServer>>()
                    .LogInformation("NTS on the NTP path: {AesSivPath}", NtsPacketHandler.AesSivPath);
            }
            // READY=1 only now: every socket bound (NTP, NTS-KE, metrics, control) and the clock service running.
            host.Services.GetRequiredService<SystemdService>().Ready();
            return server;
        }
        catch
        {
            if (control is not null)
            {
                await control.DisposeAsync();
            }
            if (monitoring is not null)
            {
                await monitoring.DisposeAsync();
            }
            engine?.Dispose();
            if (roughtime is not null)
            {
                await roughtime.DisposeAsync();
            }
            if (ntsKe is not null)
            {
                await ntsKe.DisposeAsync();
            }
            certificates?.Dispose();
            throw;
        }
    }

    /// <summary>Our sd_notify in place of the host's (which has no watchdog), and under systemd no console banner.</summary>
    private static void AddSystemd(IServiceCollection services, SystemdEnvironment systemd)
    {
        services.AddSingleton(_ => new SystemdNotifier(systemd));
        services.AddSingleton<SystemdService>();
        services.AddHostedService(sp => sp.GetRequiredService<SystemdService>());
        if (systemd.NotifySocket is not null || systemd.LogsToJournal)
        {
            services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        }
    }

    /// <summary>Keys first, then the certificate, then the exporter self-test: each failure is one clear line.</summary>
    /// <param name="user">The configured service user, named with the chown that fixes a file it may not read.</param>
    private static async Task<(KeyRingStore, CertificateStore)> PrepareNtsAsync(NtsKeConfig nts, string? user, CookieKeyRingCell cell, ILoggerFactory logs, CancellationToken cancellationToken)
    {
        KeyRingStore store;
        try
        {
            store = new KeyRingStore(nts.Keys);
            KeyRingService.Initialise(store, cell);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or System.Text.Json.JsonException or FormatException)
        {
            string fix = e is UnauthorizedAccessException ? ServiceUser.OwnershipFix(user, Path.GetDirectoryName(Path.GetFullPath(nts.Keys.Storage))!) : "";
            throw new StartupFailedException($"cannot load the NTS cookie keys ({nts.Keys.Storage}): {e.Message}{fix}", e);
        }
        CertificateStore certificates;
        try
        {
            certificates = new CertificateStore(nts.Certificate, nts.PrivateKey, logs.CreateLogger<CertificateStore>());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            string fix = e is UnauthorizedAccessException ? ServiceUser.OwnershipFix(user, nts.Certificate, nts.PrivateKey) : "";
            throw new StartupFailedException($"cannot load the NTS-KE certificate {nts.Certificate} with key {nts.PrivateKey}: {e.Message}{fix}", e);
        }
        try
        {
            await NtsKeServer.SelfTestAsync(certificates.Current, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            certificates.Dispose();
            throw new StartupFailedException($"NTS-KE self-test failed, refusing to serve NTS: {e.Message}", e);
        }
        return (store, certificates);
    }

    /// <summary>The Roughtime long-term key, read or made; a failure is one line naming the file and the fix.</summary>
    private static RoughtimeKeys LoadRoughtimeKeys(RoughtimeConfig roughtime, string? user)
    {
        try
        {
            return RoughtimeKeys.Load(roughtime.Key, roughtime.OnlineKeyLifetime);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException)
        {
            string fix = e is UnauthorizedAccessException ? ServiceUser.OwnershipFix(user, Path.GetDirectoryName(Path.GetFullPath(roughtime.Key))!) : "";
            throw new StartupFailedException($"cannot load the Roughtime long-term key ({roughtime.Key}): {e.Message}{fix}", e);
        }
    }

    private static NtpEngine BindEngine(NtpConfig ntp, ServerStateCell state, ServerStateCell? smearState, CookieKeyRingCell? ntsKeys)
    {
        var options = new EngineOptions
        {
            // The smear listener's addresses after the main ones: the main indices stay as they are.
            Listen = [.. ntp.Listen, .. ntp.Smear.Listen],
            Smeared = Enumerable.Range(ntp.Listen.Count, ntp.Smear.Listen.Count).ToHashSet(),
            SmearState = smearState,
            Workers = ntp.EffectiveWorkers,
            BatchSize = ntp.Batch,
            CpuAffinity = ntp.CpuAffinity,
            HardwareTimestamps = ntp.HardwareTimestamps,
            InterleavedEntries = ntp.Interleaved ? EngineOptions.DefaultInterleavedEntries : 0,
            BusyPoll = ntp.BusyPoll,
            MaxQueueDelay = ntp.MaxQueueDelay,
            Access = ntp.Access,
            DenyAction = ntp.DenyAction,
            RateLimit = ntp.RateLimit,
            NtsKeys = ntsKeys,
            RequireNts = Enumerable.Range(0, ntp.Listen.Count).Where(i => ntp.RequireNts[i])
                .Concat(ntp.Smear.RequireNts ? Enumerable.Range(ntp.Listen.Count, ntp.Smear.Listen.Count) : []).ToHashSet(),
        };
        try
        {
            return NtpEngine.Bind(options, state);
        }
        catch (EngineBindException e)
        {
            throw new BindFailedException("NTP on UDP", e.EndPoint, EngineBindException.Describe((SocketException)e.InnerException!), e);
        }
    }

    /// <summary>Once a second: the request counters for the rates, and the clock's state for the page's plots.</summary>
    private void StartSampling(ControlVerbs verbs) => _sampling = SampleAsync(verbs, _samplingStop.Token);

    private static async Task SampleAsync(ControlVerbs verbs, CancellationToken stop)
    {
        verbs.Sample();
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                verbs.Sample();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Waits until the host stops (SIGTERM, SIGINT), then releases everything.</summary>
    public async Task RunUntilShutdownAsync(CancellationToken cancellationToken = default)
    {
        await _host.WaitForShutdownAsync(cancellationToken);
        _stopped = true;
    }

    private async Task<ActionReport> ReloadReportAsync(CancellationToken cancellationToken)
    {
        ReloadResult result = await ReloadAsync(cancellationToken).ConfigureAwait(false);
        return new ActionReport(result.Ok, result.ToLines());
    }

    private async Task<ActionReport> RotateKeysReportAsync(CancellationToken cancellationToken)
    {
        RotateResult result = await RotateKeysAsync(cancellationToken).ConfigureAwait(false);
        return new ActionReport(result.Ok, [result.Message]);
    }

    public async ValueTask DisposeAsync()
    {
        StopReloading();
        await _samplingStop.CancelAsync();
        await _sampling;
        _samplingStop.Dispose();
        // The control socket and the page first: no verb runs against parts that are stopping.
        if (_control is not null)
        {
            await _control.DisposeAsync();
        }
        if (_monitoring is not null)
        {
            await _monitoring.DisposeAsync();
        }
        if (!_stopped)
        {
            await _host.StopAsync();
            _stopped = true;
        }
        _host.Dispose();
        Engine.Dispose();
    }
}
