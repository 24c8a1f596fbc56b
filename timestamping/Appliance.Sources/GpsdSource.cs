using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Microsoft.Extensions.Logging;

namespace Appliance.Sources;

/// <summary>A gpsd to take GPS time (and PPS edges, when gpsd has them) from.</summary>
public sealed record GpsdOptions
{
    public required string Host { get; init; }

    public int Port { get; init; } = 2947;

    /// <summary>
    /// The uncertainty window of serial (NMEA) time, seconds: the sample's delay. Serial time is late
    /// by tens of milliseconds and jitters; a wide window keeps it from outvoting better sources
    /// (chrony's refclock <c>delay 0.2</c>).
    /// </summary>
    public double SerialDelay { get; init; } = 0.2;

    /// <summary>Added to serial time: the receiver's known lateness (chrony's refclock <c>offset</c>).</summary>
    public double SerialOffset { get; init; }

    /// <summary>Use gpsd's PPS messages (edges from the kernel's PPS device) when it sends them.</summary>
    public bool Pps { get; init; } = true;

    /// <summary>A fix must use at least this many satellites, when gpsd reports them.</summary>
    public int MinSatellites { get; init; } = 4;

    public string Name => $"{Host}:{Port}";
}

/// <summary>
/// gpsd's JSON protocol over TCP: <c>?WATCH={"enable":true,"json":true,"pps":true}</c>, then TPV (the
/// fix: mode, ept), SKY (satellites used), TOFF (the serial message's GPS second against the system
/// time it arrived) and PPS (a PPS edge against the system time of the edge). Each TOFF or PPS with a
/// usable fix becomes a stratum-0 measurement (refid GPS, or PPS for edges). gpsd going away is
/// survived: reconnect with back-off (1 s doubling to 64 s); nothing here ever blocks the clock core.
/// </summary>
public sealed class GpsdSource(GpsdOptions options, ILogger logger) : ITimeSource
{
    /// <summary>1024 weeks: the GPS week number's range (IS-GPS-200 §20.3.3.3.1.1).</summary>
    public const long WeekRolloverSeconds = 1024L * 7 * 86400;

    /// <summary>No GPS time can be earlier than this build (2026-01-01): earlier means an unhandled week rollover.</summary>
    public static readonly long EarliestPlausibleUnixSeconds = 1_767_225_600;

    /// <summary>Serial samples pass a median of this many (chrony's refclock filter does the same, wider).</summary>
    public const int MedianWindow = 5;

    private static readonly byte[] s_watch = "?WATCH={\"enable\":true,\"json\":true,\"pps\":true};\n"u8.ToArray();

    private readonly List<Measurement> _serial = new(MedianWindow);

    private int _mode;
    private double _ept;
    private int? _satellitesUsed;
    private bool _connected;
    private bool _everConnected;
    private long _lastSampleMonotonic;
    private bool _lastWasPps;
    private bool _warnedRollover;

    public GpsdOptions Options { get; } = options;

    public string Name => Options.Name;

    public string Kind => "gpsd";

    public uint ReferenceId => _lastWasPps ? ReferenceIds.Pps : ReferenceIds.Gps;

    public SourceState State =>
        !_everConnected ? SourceState.Starting
        : !_connected ? SourceState.Unreachable
        : !FixUsable ? SourceState.NoFix
        : SourceState.Reachable;

    public byte Reach { get; private set; }

    public double PollSeconds => 1;

    public SourceCounters Counters { get; } = new();

    private bool FixUsable => _mode >= 2 && (_satellitesUsed is not { } used || used >= Options.MinSatellites);

    public async Task RunAsync(MeasurementSink sink, CancellationToken cancellationToken)
    {
        int failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await SessionAsync(sink, cancellationToken).ConfigureAwait(false);
                failures = 0;
            }
            catch (Exception e) when (e is SocketException or IOException or JsonException or TimeoutException
                or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                logger.LogWarning("source gpsd {Source}: {Error}", Name, e is OperationCanceledException ? "no data" : e.Message);
            }
            if (_connected)
            {
                logger.LogWarning("source gpsd {Source}: connection lost; reconnecting", Name);
            }
            _connected = false;
            _mode = 0;
            _serial.Clear();
            failures++;
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(Math.Min(64, 1 << Math.Min(failures - 1, 6))), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    private async Task SessionAsync(MeasurementSink sink, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        using (var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            connect.CancelAfter(TimeSpan.FromSeconds(5));
            await client.ConnectAsync(Options.Host, Options.Port, connect.Token).ConfigureAwait(false);
        }
        NetworkStream stream = client.GetStream();
        await stream.WriteAsync(s_watch, cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        _connected = _everConnected = true;
        logger.LogInformation("source gpsd {Source}: connected, watching", Name);
        while (true)
        {
            string? line;
            using (var quiet = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                // gpsd sends at least a TPV a second while a receiver is attached; 10 s of silence is a dead session.
                quiet.CancelAfter(TimeSpan.FromSeconds(10));
                line = await reader.ReadLineAsync(quiet.Token).ConfigureAwait(false);
            }
            if (line is null)
            {
                return; // gpsd closed the connection
            }
            if (Handle(line) is { } measurement)
            {
                long now = Environment.TickCount64;
                int missed = _lastSampleMonotonic == 0 ? 0 : (int)Math.Clamp(((now - _lastSampleMonotonic) / 1000) - 1, 0, 8);
                Reach = (byte)((Reach << (missed + 1)) | 1);
                _lastSampleMonotonic = now;
                Counters.Answers++;
                sink(this, measurement);
            }
        }
    }

    /// <summary>One line of gpsd JSON; a measurement when it was a usable TOFF or PPS report.</summary>
    internal Measurement? Handle(string line)
    {
        using JsonDocument document = JsonDocument.Parse(line);
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("class", out JsonElement kind))
        {
            return null;
        }
        switch (kind.GetString())
        {
            case "TPV":
                _mode = root.TryGetProperty("mode", out JsonElement mode) ? mode.GetInt32() : 0;
                _ept = root.TryGetProperty("ept", out JsonElement ept) ? ept.GetDouble() : 0.005;
                return null;
            case "SKY":
                if (root.TryGetProperty("uSat", out JsonElement uSat))
                {
                    _satellitesUsed = uSat.GetInt32();
                }
                else if (root.TryGetProperty("satellites", out JsonElement satellites) && satellites.ValueKind == JsonValueKind.Array)
                {
                    _satellitesUsed = satellites.EnumerateArray().Count(s => s.TryGetProperty("used", out JsonElement u) && u.GetBoolean());
                }
                return null;
            case "TOFF":
                return Sample(root, pps: false);
            case "PPS" when Options.Pps:
                return Sample(root, pps: true);
            default:
                return null;
        }
    }

    private Measurement? Sample(JsonElement root, bool pps)
    {
        if (!FixUsable)
        {
            return null; // no fix, no time: the receiver's clock may be free-running or plain wrong
        }
        long realSeconds = root.GetProperty("real_sec").GetInt64();
        long reference = (Rollover(realSeconds) * 1_000_000_000L) + root.GetProperty("real_nsec").GetInt64();
        long system = (root.GetProperty("clock_sec").GetInt64() * 1_000_000_000L) + root.GetProperty("clock_nsec").GetInt64();
        _lastWasPps = pps;
        if (pps)
        {
            double precision = root.TryGetProperty("precision", out JsonElement p) ? Math.ScaleB(1.0, p.GetInt32()) : 1e-6;
            return Measurement.FromReferenceClock(system, reference, 0, precision, ReferenceIds.Pps);
        }
        reference += (long)(Options.SerialOffset * 1e9);
        return Median(Measurement.FromReferenceClock(system, reference, Options.SerialDelay, Math.Max(_ept, 1e-3), ReferenceIds.Gps));
    }

    /// <summary>
    /// The median (by offset) of the last <see cref="MedianWindow"/> serial samples, once there are
    /// that many: a serial report delayed by the receiver or by gpsd (the first cycle after gpsd
    /// starts came 0.4–0.6 s late in tests) must not set the clock.
    /// </summary>
    private Measurement? Median(Measurement latest)
    {
        if (_serial.Count == MedianWindow)
        {
            _serial.RemoveAt(0);
        }
        _serial.Add(latest);
        if (_serial.Count < MedianWindow)
        {
            return null;
        }
        static long Offset(Measurement m) => m.T2 - ((m.T1 / 2) + (m.T4 / 2));
        return _serial.OrderBy(Offset).ElementAt(MedianWindow / 2);
    }

    /// <summary>
    /// A receiver whose firmware predates the last GPS week rollover reports a date 1024 weeks (19.6
    /// years) early. gpsd corrects most; what still arrives before this build's date is moved
    /// forward by whole rollovers, and said once in the log.
    /// </summary>
    private long Rollover(long unixSeconds)
    {
        long corrected = unixSeconds;
        while (corrected < EarliestPlausibleUnixSeconds)
        {
            corrected += WeekRolloverSeconds;
        }
        if (corrected != unixSeconds && !_warnedRollover)
        {
            _warnedRollover = true;
            logger.LogWarning("source gpsd {Source}: the receiver reports {Reported:yyyy-MM-dd}, before this build: GPS week rollover, corrected by {Weeks} weeks",
                Name, DateTimeOffset.FromUnixTimeSeconds(unixSeconds), (corrected - unixSeconds) / (7 * 86400));
        }
        return corrected;
    }

    public void Dispose()
    {
    }
}
