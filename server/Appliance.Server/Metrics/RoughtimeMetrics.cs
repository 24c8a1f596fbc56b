using Appliance.Server.Roughtime;
using Prometheus;

namespace Appliance.Server.Metrics;

/// <summary>The Roughtime listener's series (docs/metrics.md), brought up to its counters at each scrape.</summary>
internal sealed class RoughtimeMetrics
{
    private static readonly string[] s_transports = ["udp", "tcp"];

    private readonly RoughtimeServer _server;
    private readonly Counter _requests;
    private readonly Counter _responses;
    private readonly Counter _drops;
    private readonly Counter _signatures;
    private readonly Counter _batches;
    private readonly Counter _delegations;
    private readonly Gauge _onlineKeyRemaining;
    private readonly Gauge _connections;

    public RoughtimeMetrics(MetricFactory factory, RoughtimeServer server)
    {
        _server = server;
        _requests = factory.CreateCounter("appliance_roughtime_requests_total", "Roughtime requests received, by transport (udp, tcp).", "transport");
        _responses = factory.CreateCounter("appliance_roughtime_responses_total", "Roughtime responses sent, by transport.", "transport");
        _drops = factory.CreateCounter("appliance_roughtime_drops_total",
            "Roughtime requests that got no answer, by transport and reason (RFC 10049 §5.2 sends no error).", "transport", "reason");
        _signatures = factory.CreateCounter("appliance_roughtime_signatures_total",
            "SREPs signed with the online key: one per version per batch, however many requests the batch answered (RFC 10049 §5.3).");
        _batches = factory.CreateCounter("appliance_roughtime_batches_total", "Batches of Roughtime requests signed (a recvmmsg's worth on UDP, one request on TCP).");
        _delegations = factory.CreateCounter("appliance_roughtime_delegations_total", "Online keys the long-term key delegated to since the start.");
        _onlineKeyRemaining = factory.CreateGauge("appliance_roughtime_online_key_remaining_seconds",
            "Seconds until the online key's MAXT, by the system clock (absent before the first signed batch).",
            new GaugeConfiguration { SuppressInitialValue = true });
        _connections = factory.CreateGauge("appliance_roughtime_tcp_connections", "Roughtime TCP connections open now.");
    }

    public void Update()
    {
        RoughtimeCounters counters = _server.Counters;
        for (int t = 0; t < s_transports.Length; t++)
        {
            _requests.WithLabels(s_transports[t]).IncTo(counters.Received(t));
            _responses.WithLabels(s_transports[t]).IncTo(counters.Answered(t));
            foreach ((int reason, string label) in RoughtimeCounters.Reasons)
            {
                if (counters.Dropped(t, reason) is long n and > 0)
                {
                    _drops.WithLabels(s_transports[t], label).IncTo(n);
                }
            }
        }
        _signatures.IncTo(counters.Signatures);
        _batches.IncTo(counters.Batches);
        _delegations.IncTo(_server.Keys.Delegations);
        if (_server.Keys.Current is { } delegation)
        {
            _onlineKeyRemaining.Set((double)delegation.Maxt - DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        }
        _connections.Set(_server.TcpConnections);
    }
}
