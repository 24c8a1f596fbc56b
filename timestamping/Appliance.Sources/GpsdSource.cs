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
/// What arrives is bounded before it is parsed (DESIGN.md boundary 6): lines of at most
/// <see cref="MaxLineBytes"/>, and a session that delivers no complete line for 10 s is dropped. A
/// line that is not what gpsd sends — too long, not JSON, a field of the wrong type or out of range —
/// is one bad line: counted (<see cref="SourceCounters.Invalid"/>), said once per session, and it
/// changes nothing.
/// </summary>
public sealed class GpsdSource(GpsdOptions options, ILogger logger) : ITimeSource
{
    /// <summary>1024 weeks: the GPS week number's range (IS-GPS-200 §20.3.3.3.1.1).</summary>
    public const long WeekRolloverSeconds = 1024L * 7 * 86400;

    /// <summary>No GPS time can be earlier than this build (2026-01-01): earlier means an unhandled week rollover.</summary>
    public static readonly long EarliestPlausibleUnixSeconds = 1_767_225_600;

    /// <summary>Serial samples pass a median of this many (chrony's refclock filter does the same, wider).</summary>
    public const int MedianWindow = 5;

    /// <summary>
    /// The longest line taken, bytes, its line end included: gpsd's own limit on a JSON report is 10240 (GPS_JSON_RESPONSE_MAX
    /// since 3.20, for u-blox RAW reports; this watch asks for none of those).
    /// </summary>
    public const int MaxLineBytes = 16 * 1024;

    /// <summary>The latest second whose Unix nanoseconds (plus a second of serial offset) still fit a long.</summary>
    private const long MaxUnixSeconds = (long.MaxValue / 1_000_000_000) - 2;

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
    private bool _badLineSaid;

    public GpsdOptions Options { get; } = options;

    public string Name => Options.Name;

    public string Kind => "gpsd";

    public uint ReferenceId => _lastWasPps ? ReferenceIds.Pps : ReferenceIds.Gps;

    /// <summary>
    /// Reachable only while samples come: a gpsd that stays connected but stalls, or sends nothing
    /// usable (garbage, reports without TOFF), is unreachable once its reach register has emptied,
    /// as an NTP server that stops answering is (RFC 5905 §9.2), not "reachable" for as long as the
    /// connection stays up.
    /// </summary>
    public SourceState State =>
        !_everConnected ? SourceState.Starting
        : !_connected ? SourceState.Unreachable
        : !FixUsable ? SourceState.NoFix
        : Reach != 0 ? SourceState.Reachable
        : _lastSampleMonotonic == 0 ? SourceState.Starting
        : SourceState.Unreachable;

    /// <summary>
    /// The reach register (RFC 5905 §9.2), one bit per second: a sample expected every second that
    /// did not come shifts in a zero when it is read, not only when the next sample arrives, so a
    /// stalled source shows 0 after eight seconds.
    /// </summary>
    public byte Reach => (byte)(_reach << Missed(Environment.TickCount64));

    private byte _reach;

    /// <summary>Whole seconds without the sample expected each second, at most eight, up to <paramref name="now"/> (monotonic ms).</summary>
    private int Missed(long now) => _lastSampleMonotonic == 0 ? 0 : (int)Math.Clamp(((now - _lastSampleMonotonic) / 1000) - 1, 0, 8);

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
            catch (Exception e) when (e is SocketException or IOException or TimeoutException
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
        var lines = new LineReader(stream, MaxLineBytes);
        _connected = _everConnected = true;
        _badLineSaid = false;
        logger.LogInformation("source gpsd {Source}: connected, watching", Name);
        while (true)
        {
            (LineStatus status, ReadOnlyMemory<byte> line) next;
            using (var quiet = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
            {
                // gpsd sends at least a TPV a second while a receiver is attached; 10 s without a
                // complete line is a dead session (or a peer that never ends its line).
                quiet.CancelAfter(TimeSpan.FromSeconds(10));
                next = await lines.ReadLineAsync(quiet.Token).ConfigureAwait(false);
            }
            if (next.status == LineStatus.End)
            {
                return; // gpsd closed the connection
            }
            Measurement? sample = next.status == LineStatus.Overlong ? BadLine("a line that with its line end does not fit 16 KiB") : Handle(next.line);
            if (sample is { } measurement)
            {
                long now = Environment.TickCount64;
                _reach = (byte)((_reach << (Missed(now) + 1)) | 1);
                _lastSampleMonotonic = now;
                Counters.Answers++;
                sink(this, measurement);
            }
        }
    }

    /// <summary>One line of gpsd JSON (as text, for tests).</summary>
    internal Measurement? Handle(string line) => Handle(Encoding.UTF8.GetBytes(line));

    /// <summary>
    /// One line of gpsd JSON; a measurement when it was a usable TOFF or PPS report. A bad line is
    /// counted and changes nothing; nothing here throws on what gpsd sends.
    /// </summary>
    internal Measurement? Handle(ReadOnlyMemory<byte> line)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException)
        {
            return BadLine("not JSON");
        }
        using (document)
        {
            string? problem = Read(document.RootElement, out Measurement? measurement);
            return problem is null ? measurement : BadLine(problem);
        }
    }

    private Measurement? BadLine(string problem)
    {
        Counters.Invalid++;
        if (!_badLineSaid)
        {
            _badLineSaid = true;
            logger.LogWarning("source gpsd {Source}: a bad line ({Problem}), ignored; further ones this session are counted in appliance_source_invalid_total",
                Name, problem);
        }
        return null;
    }

    /// <summary>Takes in one report; returns what was wrong with it, or null. State changes only when the whole report is good.</summary>
    private string? Read(JsonElement root, out Measurement? measurement)
    {
        measurement = null;
        if (root.ValueKind != JsonValueKind.Object)
        {
            return "not a JSON object";
        }
        if (!root.TryGetProperty("class", out JsonElement kind) || kind.ValueKind != JsonValueKind.String)
        {
            return "no class";
        }
        if (kind.ValueEquals("TPV"u8))
        {
            if (!Optional(root, "mode", 0, 0, 3, out int mode) || !Optional(root, "ept", 0.005, out double ept))
            {
                return "TPV mode or ept";
            }
            _mode = mode;
            _ept = ept;
            return null;
        }
        if (kind.ValueEquals("SKY"u8))
        {
            return Satellites(root);
        }
        if (kind.ValueEquals("TOFF"u8))
        {
            return Sample(root, pps: false, out measurement);
        }
        if (kind.ValueEquals("PPS"u8) && Options.Pps)
        {
            return Sample(root, pps: true, out measurement);
        }
        return null; // VERSION, DEVICES, WATCH and the rest: nothing to take
    }

    private string? Satellites(JsonElement root)
    {
        if (root.TryGetProperty("uSat", out _))
        {
            if (!Optional(root, "uSat", 0, 0, 255, out int used))
            {
                return "SKY uSat";
            }
            _satellitesUsed = used;
        }
        else if (root.TryGetProperty("satellites", out JsonElement satellites))
        {
            if (satellites.ValueKind != JsonValueKind.Array)
            {
                return "SKY satellites";
            }
            int used = 0;
            foreach (JsonElement satellite in satellites.EnumerateArray())
            {
                if (satellite.ValueKind != JsonValueKind.Object)
                {
                    return "SKY satellites";
                }
                if (satellite.TryGetProperty("used", out JsonElement u))
                {
                    if (u.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
                    {
                        return "SKY satellites";
                    }
                    used += u.ValueKind == JsonValueKind.True ? 1 : 0;
                }
            }
            _satellitesUsed = used;
        }
        return null;
    }

    private string? Sample(JsonElement root, bool pps, out Measurement? measurement)
    {
        measurement = null;
        if (!Required(root, "real_sec", 0, MaxUnixSeconds, out long realSeconds) || !Required(root, "real_nsec", 0, 999_999_999, out long realNanoseconds)
            || !Required(root, "clock_sec", 0, MaxUnixSeconds, out long clockSeconds) || !Required(root, "clock_nsec", 0, 999_999_999, out long clockNanoseconds))
        {
            return pps ? "PPS times" : "TOFF times";
        }
        double edgeDispersion = 1e-6;
        if (pps && root.TryGetProperty("precision", out _))
        {
            if (!Optional(root, "precision", 0, -64, 0, out int precision))
            {
                return "PPS precision";
            }
            edgeDispersion = Math.ScaleB(1.0, precision);
        }
        if (!FixUsable)
        {
            return null; // no fix, no time: the receiver's clock may be free-running or plain wrong
        }
        long reference = (Rollover(realSeconds) * 1_000_000_000L) + realNanoseconds;
        long system = (clockSeconds * 1_000_000_000L) + clockNanoseconds;
        _lastWasPps = pps;
        if (pps)
        {
            measurement = Measurement.FromReferenceClock(system, reference, 0, edgeDispersion, ReferenceIds.Pps);
            return null;
        }
        reference += (long)(Options.SerialOffset * 1e9);
        measurement = Median(Measurement.FromReferenceClock(system, reference, Options.SerialDelay, Math.Max(_ept, 1e-3), ReferenceIds.Gps));
        return null;
    }

    /// <summary>An integer gpsd must send, within [min, max].</summary>
    private static bool Required(JsonElement root, string name, long min, long max, out long value)
    {
        value = 0;
        return root.TryGetProperty(name, out JsonElement e) && e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out value)
            && value >= min && value <= max;
    }

    /// <summary>An integer gpsd may leave out (then <paramref name="fallback"/>); when present, within [min, max].</summary>
    private static bool Optional(JsonElement root, string name, int fallback, int min, int max, out int value)
    {
        value = fallback;
        return !root.TryGetProperty(name, out JsonElement e)
            || (e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out value) && value >= min && value <= max);
    }

    /// <summary>A non-negative number of seconds gpsd may leave out (then <paramref name="fallback"/>).</summary>
    private static bool Optional(JsonElement root, string name, double fallback, out double value)
    {
        value = fallback;
        return !root.TryGetProperty(name, out JsonElement e)
            || (e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out value) && double.IsFinite(value) && value >= 0);
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
        if (unixSeconds >= EarliestPlausibleUnixSeconds)
        {
            return unixSeconds;
        }
        // Whole rollovers, by arithmetic: the fewest that bring it to this build's date or later
        // (0 ≤ unixSeconds here, so at most three).
        long rollovers = (EarliestPlausibleUnixSeconds - unixSeconds + WeekRolloverSeconds - 1) / WeekRolloverSeconds;
        long corrected = unixSeconds + (rollovers * WeekRolloverSeconds);
        if (!_warnedRollover)
        {
            _warnedRollover = true;
            logger.LogWarning("source gpsd {Source}: the receiver reports {Reported:yyyy-MM-dd}, before this build: GPS week rollover, corrected by {Weeks} weeks",
                Name, DateTimeOffset.FromUnixTimeSeconds(unixSeconds), rollovers * 1024);
        }
        return corrected;
    }

    public void Dispose()
    {
    }
}

/// <summary>What <see cref="LineReader.ReadLineAsync"/> found.</summary>
internal enum LineStatus : byte
{
    /// <summary>A line, without its line ending.</summary>
    Line,

    /// <summary>A line longer than the limit, skipped to its newline.</summary>
    Overlong,

    /// <summary>The peer closed the stream.</summary>
    End,
}

/// <summary>
/// Newline-terminated lines from a stream through one fixed buffer: a line longer than the buffer is
/// skipped to its newline and reported as <see cref="LineStatus.Overlong"/>, so a peer that never
/// ends its line costs this buffer and nothing more.
/// </summary>
internal sealed class LineReader(Stream stream, int maxLineBytes)
{
    private readonly byte[] _buffer = new byte[maxLineBytes];
    private int _start;
    private int _end;
    private bool _skipping;

    /// <summary>The next line; its bytes stay valid until the next call.</summary>
    public async ValueTask<(LineStatus Status, ReadOnlyMemory<byte> Line)> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            int newline = _buffer.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                ReadOnlyMemory<byte> line = _buffer.AsMemory(_start, newline);
                _start += newline + 1;
                if (_skipping)
                {
                    _skipping = false;
                    return (LineStatus.Overlong, default);
                }
                return (LineStatus.Line, line.Span is [.., (byte)'\r'] ? line[..^1] : line);
            }
            if (_start > 0)
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length)
            {
                _skipping = true; // a full buffer and no newline: too long; drop it and skip to the newline
                _end = 0;
            }
            int read = await stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return (LineStatus.End, default);
            }
            _end += read;
        }
    }
}
