using Appliance.Discipline;
using Appliance.Protocol.Client;
using Appliance.Server.Clock;
using Appliance.Sources;
using Appliance.Timestamping;
using Prometheus;

namespace Appliance.Server.Metrics;

/// <summary>
/// The clock core and its sources in /metrics: per source (label <c>source</c> = host:port as
/// configured) its state, what the selection made of it, reach, poll, offset, delay, jitter and
/// counters; for the system the core's status, offset still to slew, and frequency with its
/// uncertainty. State-like series carry every possible value with 1 on the current one, so
/// PromQL can alert on <c>appliance_source_selection{selection="falseticker"} == 1</c>.
/// </summary>
internal sealed class ClockMetrics
{
    private static readonly SourceState[] s_states = Enum.GetValues<SourceState>();
    private static readonly PeerStatus[] s_selections = Enum.GetValues<PeerStatus>();
    private static readonly ClockCoreStatus[] s_statuses = Enum.GetValues<ClockCoreStatus>();

    private readonly ClockService _clock;
    private readonly Gauge _sourceState;
    private readonly Gauge _selection;
    private readonly Gauge _reach;
    private readonly Gauge _poll;
    private readonly Gauge _offset;
    private readonly Gauge _delay;
    private readonly Gauge _jitter;
    private readonly Gauge _stratum;
    private readonly Counter _requests;
    private readonly Counter _answers;
    private readonly Counter _invalid;
    private readonly Counter _kod;
    private readonly Counter _naks;
    private readonly Counter _keyExchanges;
    private readonly Gauge _status;
    private readonly Gauge _systemOffset;
    private readonly Gauge _frequency;
    private readonly Gauge _frequencyUncertainty;
    private readonly Gauge _offsetUncertainty;
    private readonly Gauge _correction;
    private readonly Gauge? _leapFileRemaining;
    private readonly Gauge? _smearOffset;
    private HashSet<string> _shown = [];

    public ClockMetrics(MetricFactory factory, ClockService clock)
    {
        _clock = clock;
        _sourceState = factory.CreateGauge("appliance_source_state", "Upstream source state (1 on the current one).", "source", "state");
        _selection = factory.CreateGauge("appliance_source_selection",
            "What source selection made of the source (RFC 5905 §11.2; 1 on the current one).", "source", "selection");
        _reach = factory.CreateGauge("appliance_source_reach", "Reachability register (RFC 5905 §9.2), 0-255.", "source");
        _poll = factory.CreateGauge("appliance_source_poll_seconds", "Seconds between polls.", "source");
        _offset = factory.CreateGauge("appliance_source_offset_seconds", "Offset of the source's chosen sample (source − local clock).", "source");
        _delay = factory.CreateGauge("appliance_source_delay_seconds", "Round-trip delay of the source's chosen sample.", "source");
        _jitter = factory.CreateGauge("appliance_source_jitter_seconds", "The source's jitter (RFC 5905 §10).", "source");
        _stratum = factory.CreateGauge("appliance_source_stratum", "Stratum the source reports.", "source");
        _requests = factory.CreateCounter("appliance_source_requests_total", "Requests sent to the source.", "source");
        _answers = factory.CreateCounter("appliance_source_answers_total", "Valid answers from the source.", "source");
        _invalid = factory.CreateCounter("appliance_source_invalid_total",
            "Answers or messages that failed the checks (NTP: mode, version, timestamps, NTS authenticator; PTP: refused messages, Delay_Req without a kernel transmit timestamp; gpsd: bad lines).", "source");
        _kod = factory.CreateCounter("appliance_source_kod_total", "Kiss-o'-Death packets from the source.", "source");
        _naks = factory.CreateCounter("appliance_source_nts_naks_total", "NTS NAKs from the source.", "source");
        _keyExchanges = factory.CreateCounter("appliance_source_nts_key_exchanges_total", "NTS key exchanges done with the source.", "source");
        _status = factory.CreateGauge("appliance_clock_status", "Clock core status (1 on the current one).", "status");
        _systemOffset = factory.CreateGauge("appliance_clock_offset_seconds", "Estimated offset of the served clock still to be slewed away.");
        _frequency = factory.CreateGauge("appliance_clock_frequency_ppm", "Estimated frequency error of the local oscillator, ppm.");
        _frequencyUncertainty = factory.CreateGauge("appliance_clock_frequency_uncertainty_ppm", "Standard deviation of the frequency estimate, ppm.");
        _offsetUncertainty = factory.CreateGauge("appliance_clock_offset_uncertainty_seconds", "Standard deviation of the offset estimate.");
        _correction = factory.CreateGauge("appliance_clock_correction_seconds",
            "Software mode: served time minus the untouched system clock (0 in kernel mode).");
        if (clock.SmearOffset is not null)
        {
            _smearOffset = factory.CreateGauge("appliance_ntp_smear_offset_seconds",
                "The smear listener's time minus the main listeners' now (ntp.smear; 0 outside a leap smear's 24 hours).");
        }
        if (clock.LeapSeconds is not null)
        {
            _leapFileRemaining = factory.CreateGauge("appliance_leap_seconds_file_remaining_seconds",
                "Seconds until the leap-seconds file expires (its #@ line; negative once expired: a leap second announced after it would be missed).");
        }
    }

    public void Update()
    {
        ClockSnapshot snapshot = _clock.Snapshot;
        foreach (ClockCoreStatus status in s_statuses)
        {
            _status.WithLabels(Name(status)).Set(status == snapshot.Status ? 1 : 0);
        }
        _systemOffset.Set(snapshot.Offset);
        _frequency.Set(snapshot.Frequency * 1e6);
        _frequencyUncertainty.Set(snapshot.FrequencyStdDev * 1e6);
        _offsetUncertainty.Set(snapshot.OffsetStdDev);
        _correction.Set(snapshot.Correction);
        if (_clock.SmearOffset is { } smear)
        {
            _smearOffset?.Set(smear);
        }
        if (_clock.LeapSeconds is { } leap)
        {
            _leapFileRemaining?.Set(leap.Expires - (SystemClock.RealtimeNanoseconds() / 1e9));
        }
        ForgetRemoved(snapshot.Sources);
        foreach (SourceSnapshot source in snapshot.Sources)
        {
            string name = source.Name;
            foreach (SourceState state in s_states)
            {
                _sourceState.WithLabels(name, Name(state)).Set(state == source.State ? 1 : 0);
            }
            foreach (PeerStatus selection in s_selections)
            {
                _selection.WithLabels(name, Name(selection)).Set(selection == source.Selection ? 1 : 0);
            }
            _reach.WithLabels(name).Set(source.Reach);
            _poll.WithLabels(name).Set(source.PollSeconds);
            _offset.WithLabels(name).Set(source.Offset ?? double.NaN);
            _delay.WithLabels(name).Set(source.Delay ?? double.NaN);
            _jitter.WithLabels(name).Set(source.Jitter);
            _stratum.WithLabels(name).Set(source.Stratum);
            SourceCounters counters = source.Counters;
            _requests.WithLabels(name).IncTo(counters.Requests);
            _answers.WithLabels(name).IncTo(counters.Answers);
            _invalid.WithLabels(name).IncTo(counters.Invalid);
            _kod.WithLabels(name).IncTo(counters.KissOfDeath);
            _naks.WithLabels(name).IncTo(counters.NtsNaks);
            _keyExchanges.WithLabels(name).IncTo(counters.KeyExchanges);
        }
    }

    /// <summary>A source a reload removed leaves /metrics with it: no series keeps its last value as if it ran on.</summary>
    private void ForgetRemoved(IReadOnlyList<SourceSnapshot> sources)
    {
        var now = sources.Select(s => s.Name).ToHashSet(StringComparer.Ordinal);
        foreach (string gone in _shown.Where(name => !now.Contains(name)))
        {
            foreach (SourceState state in s_states)
            {
                _sourceState.RemoveLabelled(gone, Name(state));
            }
            foreach (PeerStatus selection in s_selections)
            {
                _selection.RemoveLabelled(gone, Name(selection));
            }
            foreach (Collector<Gauge.Child> gauge in new Collector<Gauge.Child>[] { _reach, _poll, _offset, _delay, _jitter, _stratum })
            {
                gauge.RemoveLabelled(gone);
            }
            foreach (Collector<Counter.Child> counter in new Collector<Counter.Child>[] { _requests, _answers, _invalid, _kod, _naks, _keyExchanges })
            {
                counter.RemoveLabelled(gone);
            }
        }
        _shown = now;
    }

    /// <summary>Enum names as Prometheus label values: snake_case ("SystemPeer" → "system_peer").</summary>
    internal static string Name<T>(T value) where T : struct, Enum
    {
        string text = value.ToString();
        var builder = new System.Text.StringBuilder(text.Length + 4);
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsUpper(text[i]) && i > 0)
            {
                builder.Append('_');
            }
            builder.Append(char.ToLowerInvariant(text[i]));
        }
        return builder.ToString();
    }
}
