using System.Globalization;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Clock;
using Appliance.Server.Hosting;
using Appliance.Server.Nts;
using Appliance.Timestamping;
using Prometheus;

namespace Appliance.Server.Metrics;

/// <summary>
/// The /metrics exposition. Workers only increment their own counters (DESIGN.md boundary 5); this
/// sums them when Prometheus scrapes.
/// </summary>
public sealed class ApplianceMetrics
{

    private readonly NtpEngine _engine;
    private readonly ServerStateCell _state;
    private readonly Counter _requests;
    private readonly Counter _workerRequests;
    private readonly Counter _responses;
    private readonly Counter _drops;
    private readonly Counter _sendErrors;
    private readonly Counter _receiveErrors;
    private readonly Counter _restarts;
    private readonly Counter _timestamps;
    private readonly Counter _transmitTimestamps;
    private readonly Counter _rateTableEvictions;
    private readonly Gauge _rateTableEntries;
    private readonly Gauge _rateTableCapacity;
    private readonly Counter _allocated;
    private readonly Counter _workerAllocated;
    private readonly Gauge _stratum;
    private readonly Gauge _leap;
    private readonly Gauge _synchronised;
    private readonly Gauge _rootDelay;
    private readonly Gauge _rootDispersion;
    private readonly NtsMetrics _nts;
    private readonly NtsKeServer? _ntsKe;
    private readonly Counter _ntsRequests;
    private readonly Counter _cookies;
    private readonly Counter _handshakes;
    private readonly Counter _aeads;
    private readonly Gauge _ntsKeConnections;
    private readonly Counter _certificateReloads;
    private readonly Counter _rotations;
    private readonly Counter _keyPersistFailures;
    private readonly Gauge _uptime;
    private readonly Gauge? _certificateRemaining;
    private readonly KeyRingStore? _keyStore;
    private readonly CookieKeyRingCell _keyCell;
    private readonly Gauge? _keyAge;
    private readonly Gauge? _keyNextRotation;
    private readonly long _startedAt;

    private ClockMetrics? _clock;
    private readonly Counter _interleaved;
    private readonly Gauge _interleavedHeld;
    private readonly Counter _interleavedEvictions;
    private readonly Counter _kernelTransmit;
    private readonly Counter _kernelTransmitUnreadable;

    /// <param name="keyStore">The NTS key ring's store (null without NTS-KE): the key age and the next rotation, as <c>appliance keys</c> reports them.</param>
    /// <param name="keyCell">The ring the workers and NTS-KE seal with now.</param>
    /// <param name="startedAt">When the server started, on the monotonic clock (nanoseconds), as <c>appliance status</c> counts its uptime.</param>
    public ApplianceMetrics(NtpEngine engine, ServerStateCell state, NtsMetrics nts, NtsKeServer? ntsKe, KeyRingStore? keyStore,
        CookieKeyRingCell keyCell, long startedAt)
    {
        _engine = engine;
        _state = state;
        _nts = nts;
        _ntsKe = ntsKe;
        _keyStore = keyStore;
        _keyCell = keyCell;
        _startedAt = startedAt;
        Registry = Prometheus.Metrics.NewCustomRegistry();
        MetricFactory factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        _requests = factory.CreateCounter("appliance_ntp_requests_total", "NTP datagrams received.");
        _workerRequests = factory.CreateCounter("appliance_ntp_worker_requests_total", "NTP datagrams received, by worker.", "worker");
        _responses = factory.CreateCounter("appliance_ntp_responses_total",
            "NTP responses sent, by kind (respond, kod) and reason.", "kind", "reason");
        _drops = factory.CreateCounter("appliance_ntp_drops_total", "NTP datagrams dropped without a response, by reason.", "reason");
        _sendErrors = factory.CreateCounter("appliance_ntp_send_errors_total", "Responses the kernel refused to send.");
        _receiveErrors = factory.CreateCounter("appliance_ntp_receive_errors_total", "Failed receive calls (other than timeouts).");
        _restarts = factory.CreateCounter("appliance_ntp_worker_restarts_total", "Times a worker failed and was restarted.");
        _timestamps = factory.CreateCounter("appliance_ntp_receive_timestamps_total",
            "Requests by where their receive timestamp came from (hardware, kernel_software, user_space).", "source");
        _transmitTimestamps = factory.CreateCounter("appliance_ntp_transmit_timestamps_total",
            "Time responses by where their transmit timestamp came from (user_space: the daemon read the clock just before sending; kernel_software, hardware: an interleaved response carries the kernel's or the NIC's stamp of the response before it).", "source");
        _interleaved = factory.CreateCounter("appliance_ntp_interleaved_responses_total",
            "Time responses sent in interleaved mode (RFC 9769): each carries the transmit timestamp of the response before it.");
        _interleavedHeld = factory.CreateGauge("appliance_ntp_interleaved_timestamps",
            "Responses whose receive and transmit timestamps the workers hold for interleaved requests (at most 16,384 per worker).");
        _interleavedEvictions = factory.CreateCounter("appliance_ntp_interleaved_evictions_total",
            "Responses' timestamps dropped from a full set of the interleaved table before any request asked for them.");
        _kernelTransmit = factory.CreateCounter("appliance_ntp_kernel_transmit_timestamps_total",
            "Transmit timestamps of interleaved responses read back from the kernel (SO_TIMESTAMPING), by source, and whether they replaced the saved one (saved) or their response was no longer held (unmatched).", "source", "result");
        _kernelTransmitUnreadable = factory.CreateCounter("appliance_ntp_kernel_transmit_timestamps_unreadable_total",
            "Looped transmit timestamps that could not be matched to a response: no timestamp, or no UDP datagram found in what came back.");
        _rateTableEntries = factory.CreateGauge("appliance_ntp_rate_limit_clients", "Clients tracked in the rate-limit tables.");
        _rateTableCapacity = factory.CreateGauge("appliance_ntp_rate_limit_capacity", "Room in the rate-limit tables (their fixed bound).");
        _rateTableEvictions = factory.CreateCounter("appliance_ntp_rate_limit_evictions_total",
            "Clients dropped from the rate-limit tables to make room for new ones (the least recently seen of a full set).");
        _allocated = factory.CreateCounter("appliance_process_allocated_bytes_total",
            "Bytes allocated on the managed heap by the whole process (GC.GetTotalAllocatedBytes).");
        _workerAllocated = factory.CreateCounter("appliance_ntp_worker_allocated_bytes_total",
            "Bytes allocated by the NTP worker threads themselves: stays flat when the request path allocates nothing.");
        _stratum = factory.CreateGauge("appliance_stratum", "Stratum served (16 = unsynchronised).");
        _leap = factory.CreateGauge("appliance_leap_indicator", "Leap indicator served (3 = unsynchronised).");
        _synchronised = factory.CreateGauge("appliance_synchronised", "1 when clients are served synchronised time.");
        _rootDelay = factory.CreateGauge("appliance_root_delay_seconds", "Root delay served.");
        _rootDispersion = factory.CreateGauge("appliance_root_dispersion_seconds", "Root dispersion served, grown to now.");
        _ntsRequests = factory.CreateCounter("appliance_nts_requests_total",
            "NTS requests on the NTP path, by kind (respond, kod = NTS NAK, drop) and reason.", "kind", "reason");
        _cookies = factory.CreateCounter("appliance_nts_cookies_issued_total", "NTS cookies handed out, by path (ntske, ntp).", "via");
        _handshakes = factory.CreateCounter("appliance_ntske_handshakes_total",
            "NTS-KE connections by result (ok; error = the session ended without cookies; closed = dropped by admission, TLS, ALPN, a timeout, the deadline or shutdown) and reason.", "result", "reason");
        _aeads = factory.CreateCounter("appliance_ntske_aeads_total",
            "NTS-KE exchanges that sent cookies, by the AEAD agreed and the exporter context of its keys (rfc8915, or aead15: chrony 4.4 to 4.6.0's for AES-128-GCM-SIV).", "aead", "context");
        _ntsKeConnections = factory.CreateGauge("appliance_ntske_connections", "NTS-KE connections open now.");
        _certificateReloads = factory.CreateCounter("appliance_ntske_certificate_reloads_total",
            "NTS-KE certificate reloads (file change or SIGHUP) by result: ok, or failed (logged; the certificate in service stays).", "result");
        _rotations = factory.CreateCounter("appliance_nts_key_rotations_total", "NTS master-key rotations.");
        _keyPersistFailures = factory.CreateCounter("appliance_nts_key_persist_failures_total",
            "Saves of the NTS key ring that failed (disk full or read-only, EACCES, EIO); the ring serves from memory and the save is retried.");
        factory.CreateGauge("appliance_build_info", "Always 1: the version and the git commit (unknown outside a checkout) this appliance was built from.",
            "version", "commit").WithLabels(BuildInfo.Version, BuildInfo.Commit).Set(1);
        _uptime = factory.CreateGauge("appliance_uptime_seconds", "Seconds since the server started.");
        if (ntsKe is not null)
        {
            _certificateRemaining = factory.CreateGauge("appliance_ntske_certificate_remaining_seconds",
                "Seconds until the NTS-KE certificate in service expires (its NotAfter; negative once expired).");
        }
        if (keyStore is not null)
        {
            _keyAge = factory.CreateGauge("appliance_nts_key_age_seconds", "Age of the NTS master key that seals new cookies now.");
            _keyNextRotation = factory.CreateGauge("appliance_nts_key_next_rotation_seconds", "Seconds until the next scheduled NTS master-key rotation.");
        }
        _factory = factory;
        Prometheus.DotNetStats.Register(Registry);
        Registry.AddBeforeCollectCallback(Update);
    }

    private readonly MetricFactory _factory;

    public CollectorRegistry Registry { get; }

    /// <summary>Adds the clock core's and the sources' series (the clock service is built with the host, after the listeners).</summary>
    public void Attach(ClockService clock) => _clock = new ClockMetrics(_factory, clock);

    /// <summary>Adds the Roughtime listener's series (only when it is configured).</summary>
    public void Attach(Roughtime.RoughtimeServer roughtime) => _roughtime = new RoughtimeMetrics(_factory, roughtime);

    private RoughtimeMetrics? _roughtime;

    private void Update()
    {
        var stats = ServerStatistics.Collect(_engine);
        for (int w = 0; w < stats.PerWorker.Length; w++)
        {
            _workerRequests.WithLabels(w.ToString(CultureInfo.InvariantCulture)).IncTo(stats.PerWorker[w]);
        }
        _requests.IncTo(stats.Received);
        _sendErrors.IncTo(stats.SendErrors);
        _receiveErrors.IncTo(stats.ReceiveErrors);
        _restarts.IncTo(stats.Restarts);
        _workerAllocated.IncTo(stats.WorkerAllocatedBytes);
        _rateTableEntries.Set(stats.TableEntries);
        _rateTableCapacity.Set(stats.TableCapacity);
        _rateTableEvictions.IncTo(stats.TableEvictions);
        _uptime.Set((SystemClock.MonotonicNanoseconds() - _startedAt) / 1e9);
        _allocated.IncTo(GC.GetTotalAllocatedBytes(precise: true));
        for (int s = 0; s < TimestampSourceNames.Count; s++)
        {
            string name = TimestampSourceNames.Name((TimestampSource)s);
            if (stats.Timestamps((TimestampSource)s) is long received and > 0)
            {
                _timestamps.WithLabels(name).IncTo(received);
            }
            if (stats.TransmitTimestamps((TimestampSource)s) is long sent and > 0)
            {
                _transmitTimestamps.WithLabels(name).IncTo(sent);
            }
        }
        for (int r = 0; r < OutcomeNames.ReasonCount; r++)
        {
            var reason = (ResponseReason)r;
            string name = OutcomeNames.Reason(reason);
            if (stats.Outcome(ResponseAction.Drop, reason) is long dropped and > 0)
            {
                _drops.WithLabels(name).IncTo(dropped);
            }
            foreach (ResponseAction kind in (ReadOnlySpan<ResponseAction>)[ResponseAction.Respond, ResponseAction.KissOfDeath])
            {
                if (stats.Outcome(kind, reason) is long count and > 0)
                {
                    _responses.WithLabels(OutcomeNames.Action(kind), name).IncTo(count);
                }
            }
        }

        for (int a = 0; a < OutcomeNames.ActionCount; a++)
        {
            for (int r = 0; r < OutcomeNames.ReasonCount; r++)
            {
                if (stats.NtsOutcome((ResponseAction)a, (ResponseReason)r) is long count and > 0)
                {
                    _ntsRequests.WithLabels(OutcomeNames.Action((ResponseAction)a), OutcomeNames.Reason((ResponseReason)r)).IncTo(count);
                }
            }
        }
        _cookies.WithLabels("ntp").IncTo(stats.CookiesIssued);
        _interleaved.IncTo(_engine.Workers.Sum(w => w.Counters.Interleaved));
        _interleavedHeld.Set(_engine.Workers.Sum(w => w.Interleaved?.Count ?? 0));
        _interleavedEvictions.IncTo(_engine.Workers.Sum(w => w.Interleaved?.Evictions ?? 0));
        foreach (TimestampSource source in (ReadOnlySpan<TimestampSource>)[TimestampSource.KernelSoftware, TimestampSource.Hardware])
        {
            foreach (bool saved in (ReadOnlySpan<bool>)[true, false])
            {
                if (_engine.Workers.Sum(w => w.Counters.KernelTransmitTimestamps(source, saved)) is long count and > 0)
                {
                    _kernelTransmit.WithLabels(TimestampSourceNames.Name(source), saved ? "saved" : "unmatched").IncTo(count);
                }
            }
        }
        _kernelTransmitUnreadable.IncTo(_engine.Workers.Sum(w => w.Counters.UnreadableTransmitTimestamps));
        _cookies.WithLabels("ntske").IncTo(_nts.CookiesIssued);
        for (int r = 0; r < NtsKeOutcomeNames.Count; r++)
        {
            var reason = (NtsKeServerReason)r;
            long count = _nts.Handshakes(reason);
            if (count > 0)
            {
                _handshakes.WithLabels(NtsKeOutcomeNames.Result(reason), NtsKeOutcomeNames.Reason(reason)).IncTo(count);
            }
        }
        foreach ((AeadAlgorithm aead, string context, long count) in _nts.Agreements())
        {
            if (count > 0)
            {
                _aeads.WithLabels(AeadAlgorithms.Name(aead), context).IncTo(count);
            }
        }
        _ntsKeConnections.Set(_ntsKe?.ActiveConnections ?? 0);
        DateTimeOffset now = DateTimeOffset.UtcNow;
        if (_ntsKe is not null)
        {
            _certificateReloads.WithLabels("ok").IncTo(_ntsKe.Certificates.Reloads);
            _certificateReloads.WithLabels("failed").IncTo(_ntsKe.Certificates.ReloadFailures);
            _certificateRemaining?.Set((_ntsKe.Certificates.NotAfter - now).TotalSeconds);
        }
        _rotations.IncTo(_nts.Rotations);
        _keyPersistFailures.IncTo(_nts.KeyPersistFailures);
        if (_keyStore is not null && _keyCell.Current is { } ring)
        {
            _keyAge!.Set(_keyStore.AgeSeconds(ring.Current.Id, now));
            _keyNextRotation!.Set((_keyStore.NextRotation(now) - now).TotalSeconds);
        }

        ServerState state = _state.Current;
        _stratum.Set(state.IsSynchronised ? state.Stratum : ServerState.UnsynchronisedStratum);
        _leap.Set(state.IsSynchronised ? (int)state.Leap : (int)LeapIndicator.Unsynchronised);
        _synchronised.Set(state.IsSynchronised ? 1 : 0);
        _rootDelay.Set(state.RootDelay);
        _rootDispersion.Set(state.RootDispersionAt(SystemClock.RealtimeNanoseconds()));
        _clock?.Update();
        _roughtime?.Update();
    }
}
