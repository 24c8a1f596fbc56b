using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Appliance.Protocol.Crypto;
using Appliance.Server.Configuration;
using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Migration;

/// <summary>The migration of one chrony configuration: the appliance configuration and a note for every directive.</summary>
public sealed record MigrationResult(MigratedConfig Config, IReadOnlyList<MigrationNote> Notes)
{
    public int Count(MigrationOutcome outcome) => Notes.Count(n => n.Outcome == outcome);
}

/// <summary>
/// Maps chrony.conf directives (read by <see cref="ChronyConfReader"/>) onto a
/// <see cref="MigratedConfig"/>, writing one <see cref="MigrationNote"/> per directive line, in the
/// file's order, and a few for what the file as a whole implies (no <c>allow</c>: chronyd served
/// nobody). Every value is checked against the range of its key in <see cref="ConfigKeys"/>; a value
/// out of range is clamped and the note says so. Semantics are chrony.conf(5)'s (chrony 4.3).
/// Never throws on input: a bad option or value is a note.
/// </summary>
public sealed partial class ChronyMapper
{
    // chrony's defaults where they differ from the appliance's, from chrony.conf(5).
    private const int ChronyRateLimitInterval = 3, ChronyRateLimitBurst = 8, ChronyRateLimitLeak = 2;
    private const int ChronyNtsRateLimitInterval = 6, ChronyNtsRateLimitBurst = 8;
    private const int ChronyLocalStratum = 10;
    private const int ChronyPoolMaxSources = 4;

    private const int BytesPerClient = Appliance.Protocol.RateLimiter.BytesPerClient;

    private static readonly HashSet<string> s_sourceValueOptions = new(StringComparer.Ordinal)
    {
        "minpoll", "maxpoll", "key", "maxdelay", "maxdelayratio", "maxdelaydevratio", "mindelay", "asymmetry", "offset",
        "minsamples", "maxsamples", "filter", "polltarget", "port", "ntsport", "presend", "minstratum", "version", "extfield",
        "certset", "maxsources",
    };

    private static readonly HashSet<string> s_sourceFlagOptions = new(StringComparer.Ordinal)
    {
        "iburst", "burst", "nts", "offline", "auto_offline", "prefer", "noselect", "trust", "require", "xleave", "copy",
    };

    private static readonly HashSet<string> s_refclockValueOptions = new(StringComparer.Ordinal)
    {
        "refid", "lock", "poll", "dpoll", "filter", "rate", "minsamples", "maxsamples", "offset", "delay", "precision",
        "maxdispersion", "stratum", "width", "maxlockage", "maxunreach",
    };

    private static readonly HashSet<string> s_refclockFlagOptions = new(StringComparer.Ordinal)
    {
        "pps", "local", "prefer", "noselect", "trust", "require", "tai",
    };

    private static readonly string[] s_refclockSelectionFlags = ["prefer", "trust", "require"];

    private static readonly string[] s_refclockFilterOptions =
        ["poll", "filter", "rate", "minsamples", "maxsamples", "precision", "maxdispersion", "stratum", "width", "maxlockage", "maxunreach", "local"];

    private static readonly string[] s_ppsDroppedOptions = ["offset", "delay", "dpoll"];

    private readonly MigratedConfig _config = new();
    private readonly List<MigrationNote> _notes = [];
    /// <summary>chrony's access table after every allow/deny so far: one entry per subnet, the last directive for it winning.</summary>
    private readonly Dictionary<(AddressFamily Family, UInt128 Bits, int Length), (IPAddress Network, bool Allow, int Order)> _access = [];
    private int _accessOrder;
    private readonly Dictionary<string, string> _refclockKinds = new(StringComparer.Ordinal);
    private readonly List<(MigratedPpsSource Source, string Lock, int Note)> _locks = [];
    private readonly List<(MigratedNtpSource Source, string? CertSet)> _ntsSources = [];
    private MigratedGpsdSource? _gpsd;
    private ChronyLine? _gpsdLine;
    private bool _gpsdPps;
    private int _refclocks;
    private string? _bind4, _bind6;
    private int _port = K.NtpPort;
    private int? _ntsPort;
    private (ChronyLine Line, int Note)? _dumpDir, _ntsPortLine, _ntsRateLimit, _ntsRotate, _ntsNtpServer, _maxNtsConnections, _ntsAeads;
    private readonly Dictionary<string, string> _trusted = new(StringComparer.Ordinal);
    private ChronyLine? _trustedLine;
    private bool _sawRateLimit, _sawMakestep;
    private string? _certificate, _privateKey;
    private int _certificateNote = -1, _keyNote = -1;

    private ChronyMapper()
    {
    }

    /// <summary>Migrates what <see cref="ChronyConfReader.Read"/> read; <paramref name="mainFile"/> names the file in whole-file notes.</summary>
    public static MigrationResult Map(ChronyConf conf, string mainFile)
    {
        var mapper = new ChronyMapper();
        foreach (ChronyLine line in conf.Lines)
        {
            if (line.ReaderNote is { } readerNote)
            {
                mapper._notes.Add(readerNote);
                continue;
            }
            mapper.MapLine(line);
        }
        mapper.Finish(mainFile);
        return new MigrationResult(mapper._config, mapper._notes.ToArray());
    }

    private void MapLine(ChronyLine line)
    {
        if (line.FromSourcesFile && line.Directive is not ("server" or "pool" or "peer"))
        {
            Note(line, MigrationOutcome.NotMapped, "chronyd takes only server, pool and peer from a .sources file: ignored, as chronyd does");
            return;
        }
        switch (line.Directive)
        {
            case "server" or "pool" or "peer":
                Source(line);
                break;
            case "refclock":
                Refclock(line);
                break;
            case "allow" or "deny":
                Access(line, line.Directive == "allow");
                break;
            case "bindaddress":
                BindAddress(line);
                break;
            case "port":
                if (Integer(line, 0, 0, 65535) is { } port)
                {
                    _port = port;
                    Note(line, MigrationOutcome.Mapped, port == 0
                        ? "port 0: chronyd served no NTP client; the appliance listens on loopback only"
                        : $"the port of ntp.listen: {port}");
                }
                break;
            case "ratelimit":
                RateLimit(line);
                break;
            case "clientloglimit":
                if (Long(line, 0) is { } bytes)
                {
                    long clients = bytes / BytesPerClient;
                    int value = Clamp(K.NtpRateLimitClients, clients, out string? clamped);
                    _config.RateLimitClients = value;
                    Note(line, MigrationOutcome.MappedWithDifference,
                        $"ntp.rate-limit.clients: {value}: chronyd limits the memory of its client log ({bytes} bytes), the appliance the clients it tracks, {BytesPerClient} bytes each{clamped}");
                }
                break;
            case "hwtimestamp":
                HwTimestamp(line);
                break;
            case "ntsservercert" or "ntsserverkey":
                NtsServerFile(line);
                break;
            case "ntsport":
                if (Integer(line, 0, 1, 65535) is { } ntsPort)
                {
                    _ntsPort = ntsPort;
                    _ntsPortLine = (line, Defer(line));
                }
                break;
            case "ntsdumpdir":
                if (One(line) is not null)
                {
                    _dumpDir = (line, Defer(line));
                }
                break;
            case "ntsrotate":
                if (Long(line, 0) is not null)
                {
                    _ntsRotate = (line, Defer(line));
                }
                break;
            case "ntsntpserver":
                if (One(line) is not null)
                {
                    _ntsNtpServer = (line, Defer(line));
                }
                break;
            case "maxntsconnections":
                if (Long(line, 0) is not null)
                {
                    _maxNtsConnections = (line, Defer(line));
                }
                break;
            case "ntsratelimit":
                _ntsRateLimit = (line, Defer(line));
                break;
            case "ntstrustedcerts":
                NtsTrustedCerts(line);
                break;
            case "ntsaeads":
                if (line.Args.Count == 0)
                {
                    Note(line, MigrationOutcome.NotMapped, "ntsaeads lists one or more AEAD ids: chronyd refuses it empty; not migrated");
                }
                else
                {
                    _ntsAeads = (line, Defer(line));
                }
                break;
            case "local":
                Local(line);
                break;
            case "makestep":
                Makestep(line);
                break;
            case "maxchange":
                MaxChange(line);
                break;
            case "leapsectz":
                LeapSecTz(line);
                break;
            case "leapseclist":
                if (One(line) is { } list)
                {
                    _config.LeapSeconds = list;
                    Note(line, MigrationOutcome.Mapped, $"clock.leap-seconds: {list}");
                }
                break;
            case "nocerttimecheck":
                // chrony.conf(5): the checks are off "for the specified number of clock updates"; so here.
                if (Long(line, 0) is { } updates)
                {
                    _config.SkipCertificateDates = Clamp(K.ClockSkipCertificateDates, updates, out string? clamped);
                    Note(line, clamped is null ? MigrationOutcome.Mapped : MigrationOutcome.MappedWithDifference, $"clock.skip-certificate-dates: {_config.SkipCertificateDates}{clamped}");
                }
                break;
            case "minsources":
                if (Long(line, 0) is { } minSources)
                {
                    _config.MinSources = Clamp(K.ClockMinSources, minSources, out string? clamped);
                    Note(line, clamped is null ? MigrationOutcome.Mapped : MigrationOutcome.MappedWithDifference, $"clock.min-sources: {_config.MinSources}{clamped}");
                }
                break;
            default:
                if (ChronyDirectives.Find(line.Directive) is { } known)
                {
                    Note(line, known.Outcome, known.Note);
                }
                else
                {
                    Note(line, MigrationOutcome.NotMapped, "not a chrony 4.3 directive: chronyd refuses to start on it; check the spelling");
                }
                break;
        }
    }

    // ---- sources ----

    private void Source(ChronyLine line)
    {
        if (line.Args.Count == 0)
        {
            Note(line, MigrationOutcome.NotMapped, $"{line.Directive} without a host: chronyd refuses it; nothing migrated");
            return;
        }
        string host = line.Args[0];
        if (!AddressText.TryParse(host, AddressRules.Remote(K.NtpPort), out HostPort parsed, out string problem) || parsed.PortWritten)
        {
            Note(line, MigrationOutcome.NotMapped, $"'{host}' is not a host name or IP address ({(parsed.PortWritten ? "chrony takes the port as an option" : problem)}): nothing migrated");
            return;
        }
        var parts = new Parts();
        var source = new MigratedNtpSource { Host = parsed.Host, Iburst = false };
        int? port = null, ntsPort = null, maxSources = null;
        string? certSet = null;
        bool drop = false;
        foreach ((string name, string? value) in Options(line, 1, s_sourceValueOptions, s_sourceFlagOptions, parts))
        {
            switch (name)
            {
                case "iburst":
                    source.Iburst = true;
                    break;
                case "nts":
                    source.Nts = true;
                    break;
                case "minpoll":
                    source.MinPoll = Poll(K.NtpSourceMinPoll, name, value!, parts);
                    break;
                case "maxpoll":
                    source.MaxPoll = Poll(K.NtpSourceMaxPoll, name, value!, parts);
                    break;
                case "port":
                    port = Port(name, value!, parts);
                    break;
                case "ntsport":
                    ntsPort = Port(name, value!, parts);
                    break;
                case "maxsources" when line.Directive == "pool":
                    maxSources = int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n is >= 1 and <= 16 ? n : null;
                    if (maxSources is null)
                    {
                        parts.Add(MigrationOutcome.NotMapped, $"maxsources '{value}' is not 1 to 16: chronyd refuses it; {ChronyPoolMaxSources} taken");
                    }
                    break;
                case "certset":
                    certSet = value;
                    break;
                case "key":
                    parts.Add(MigrationOutcome.NotMapped, $"key {value}: symmetric keys (RFC 5905 MAC) are not supported, the source is polled unauthenticated; use nts if the server offers it");
                    break;
                case "noselect":
                    drop = true;
                    parts.Add(MigrationOutcome.NotMapped, "noselect: the appliance has no monitor-only sources; the source is left out (add it without noselect to use it)");
                    break;
                case "prefer" or "trust" or "require":
                    parts.Add(MigrationOutcome.NotMapped, $"{name}: the appliance's selection weighs every source by its own statistics; no source is preferred, trusted or required");
                    break;
                case "burst":
                    parts.Add(MigrationOutcome.MappedWithDifference, "burst: no burst at every poll; one request per poll");
                    break;
                case "xleave":
                    parts.Add(MigrationOutcome.MappedWithDifference, "xleave: the appliance polls its sources in basic mode (RFC 5905 §8); as a server it answers interleaved requests (ntp.interleaved, RFC 9769)");
                    break;
                case "offline" or "auto_offline":
                    parts.Add(MigrationOutcome.MappedWithDifference, $"{name}: the source is polled from the start and retried while it does not answer");
                    break;
                default:
                    parts.Add(MigrationOutcome.MappedWithDifference, $"{name}{(value is null ? "" : " " + value)}: not carried (the appliance's clock filter and selection decide it)");
                    break;
            }
        }
        if (!line.Args.Skip(1).Any(a => a.Equals("iburst", StringComparison.OrdinalIgnoreCase)))
        {
            parts.Add(MigrationOutcome.Mapped, "iburst: false, as chronyd polled without it (the appliance's default is true)");
        }
        // chronyd raises a maxpoll below minpoll to minpoll (the table's default maxpoll does the same).
        if (source.MaxPoll is { } max && (source.MinPoll ?? int.Parse(K.NtpSourceMinPoll.Default!, CultureInfo.InvariantCulture)) is int min && max < min)
        {
            source.MaxPoll = min;
            parts.Add(MigrationOutcome.MappedWithDifference, $"maxpoll {max} is below minpoll {min}: maxpoll {min}, as chronyd takes it");
        }
        if (source.Nts)
        {
            source.Port = ntsPort;
            if (port is not null)
            {
                parts.Add(MigrationOutcome.MappedWithDifference, $"port {port}: with NTS the NTP port is the one the NTS-KE server names (RFC 8915 §4.1.8); not carried");
            }
        }
        else
        {
            source.Port = port;
            if (ntsPort is not null)
            {
                parts.Add(MigrationOutcome.Mapped, "ntsport without nts: chronyd ignores it too");
            }
        }
        if (drop)
        {
            Note(line, parts.Worst(MigrationOutcome.NotMapped), parts.Join("not migrated"));
            return;
        }

        var entries = new List<MigratedNtpSource> { source };
        switch (line.Directive)
        {
            case "pool":
                int count = maxSources ?? ChronyPoolMaxSources;
                if (PoolZone().Match(parsed.Host) is { Success: true } zone)
                {
                    // pool.ntp.org's zones 0-3.ZONE are disjoint quarters of one zone: one name per source.
                    int written = zone.Groups[1].Value[0] - '0';
                    int sources = Math.Min(count, 4);
                    entries = Enumerable.Range(0, sources).Select(i => (written + i) % 4).Select(i => source with { Host = $"{i}{zone.Groups[2].Value}" }).ToList();
                    parts.Add(MigrationOutcome.MappedWithDifference, $"chronyd took up to {count} servers from the pool; the appliance resolves a name to one address, so this is {sources} source(s): {string.Join(", ", entries.Select(e => e.Host))}");
                }
                else
                {
                    parts.Add(MigrationOutcome.MappedWithDifference, $"chronyd took up to {count} servers from the pool; the appliance polls the first address {parsed.Host} resolves to: list more servers for redundancy");
                }
                break;
            case "peer":
                parts.Add(MigrationOutcome.MappedWithDifference, "polled as a server (client mode 3): the appliance has no symmetric active mode (RFC 5905 §3); the peer takes no time from it unless it lists it as a server");
                break;
        }
        foreach (MigratedNtpSource entry in entries)
        {
            _config.Sources.Add(entry);
            if (entry.Nts)
            {
                _ntsSources.Add((entry, certSet));
            }
        }
        string what = $"sources[].ntp {string.Join(", ", entries.Select(e => MigratedConfig.HostPort(e.Host, e.Port)))}{(source.Nts ? " with nts" : "")}";
        Note(line, parts.Worst(MigrationOutcome.Mapped), parts.Join(what));
    }

    [GeneratedRegex(@"^([0-3])((?:\.[a-z0-9-]+)*\.pool\.ntp\.org)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex PoolZone();

    private static int? Poll(ConfigKey key, string name, string value, Parts parts)
    {
        if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int poll))
        {
            parts.Add(MigrationOutcome.NotMapped, $"{name} '{value}' is not a number: chronyd refuses it; the table's default taken");
            return null;
        }
        int clamped = Clamp(key, poll, out string? note);
        if (note is not null)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"{name} {poll}{note}");
        }
        return clamped;
    }

    private static int? Port(string name, string value, Parts parts)
    {
        if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int port) && port is >= 1 and <= 65535)
        {
            return port;
        }
        parts.Add(MigrationOutcome.NotMapped, $"{name} '{value}' is not a port 1 to 65535: not carried");
        return null;
    }

    // ---- reference clocks ----

    private void Refclock(ChronyLine line)
    {
        int index = _refclocks++;
        if (line.Args.Count < 2)
        {
            Note(line, MigrationOutcome.NotMapped, "refclock needs a driver and its parameter: chronyd refuses it; nothing migrated");
            return;
        }
        string driver = line.Args[0].ToUpperInvariant();
        string[] parameter = line.Args[1].Split(':');
        var parts = new Parts();
        var options = Options(line, 2, s_refclockValueOptions, s_refclockFlagOptions, parts).ToList();
        string? Option(string name) => options.LastOrDefault(o => o.Name == name).Value;
        bool Flag(string name) => options.Any(o => o.Name == name);
        // chrony's default refid: the driver's name and the refclock's number (chrony.conf(5), refid).
        string refId = Option("refid") ?? $"{driver[..Math.Min(3, driver.Length)]}{index}";
        foreach (string name in s_refclockSelectionFlags.Where(Flag))
        {
            parts.Add(MigrationOutcome.NotMapped, $"{name}: the appliance's selection weighs every source by its own statistics");
        }
        foreach (string name in s_refclockFilterOptions.Where(n => options.Any(o => o.Name == n)))
        {
            if (name is "poll" && driver == "PHC")
            {
                continue;
            }
            parts.Add(MigrationOutcome.MappedWithDifference, $"{name}: not carried (the appliance filters and rates reference clocks itself)");
        }
        // A PPS or PHC refclock's parameter is a device path; `refclock PPS :clear` names none, and
        // chronyd fails to open it at start. Left out, not written as an empty device the
        // configuration would refuse (found by the chrony fuzz target, docs/fuzzing.md).
        if (driver is "PPS" or "PHC" && parameter[0].Length == 0)
        {
            Note(line, MigrationOutcome.NotMapped, $"refclock {driver} names no device ('{line.Args[1]}'): chronyd cannot open it; nothing migrated");
            return;
        }
        switch (driver)
        {
            case "SHM" or "SOCK":
                Gpsd(line, driver, parameter, refId, Option, Flag, parts);
                return;
            case "PPS":
                Pps(line, parameter, Option, Flag, parts);
                return;
            case "PHC":
                Phc(line, parameter, Option, Flag, parts);
                return;
            default:
                Note(line, MigrationOutcome.NotMapped, $"no refclock driver {line.Args[0]}: chrony 4.3 has SHM, SOCK, PPS and PHC; nothing migrated");
                return;
        }
    }

    private void Gpsd(ChronyLine line, string driver, string[] parameter, string refId, Func<string, string?> option, Func<string, bool> flag, Parts parts)
    {
        // gpsd writes serial time to SHM 0 (2, 4, ...) and PPS to SHM 1 (3, ...), and PPS to
        // chrony's socket /run/chrony.DEVICE.sock (gpsd's ntpshm and chrony drivers).
        bool pps;
        if (driver == "SHM")
        {
            if (!int.TryParse(parameter[0], NumberStyles.None, CultureInfo.InvariantCulture, out int unit))
            {
                Note(line, MigrationOutcome.NotMapped, $"SHM segment '{parameter[0]}' is not a number: chronyd refuses it; nothing migrated");
                return;
            }
            pps = unit % 2 == 1 || flag("pps");
            parts.Add(MigrationOutcome.MappedWithDifference, $"gpsd's SHM {unit} ({(pps ? "PPS" : "serial time")}) is read from gpsd's JSON protocol at the table's address instead (gpsd -S sets its port); another program writing SHM is not supported");
        }
        else
        {
            pps = true;
            bool gpsdName = Regex.IsMatch(Path.GetFileName(parameter[0]), @"^chrony\..+\.sock$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
            parts.Add(MigrationOutcome.MappedWithDifference, gpsdName
                ? "gpsd's chrony socket (its PPS samples) is read from gpsd's JSON protocol at the table's address instead (gpsd -S sets its port)"
                : $"{parameter[0]} is not gpsd's socket name (chrony.DEVICE.sock): taken as gpsd's anyway, read over its JSON protocol; another program writing it is not supported");
        }
        if (parameter.Length > 1)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"driver options :{string.Join(':', parameter[1..])}: not needed over gpsd's TCP protocol");
        }
        bool first = _gpsd is null;
        _gpsd ??= new MigratedGpsdSource();
        _gpsd.RefIds.Add(refId);
        _refclockKinds[refId] = "gpsd";
        if (first)
        {
            _config.Sources.Add(_gpsd);
            _gpsdLine = line;
        }
        else
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"merged into the gpsd source of {_gpsdLine!.File}:{_gpsdLine.Number}");
        }
        if (flag("noselect"))
        {
            parts.Add(MigrationOutcome.MappedWithDifference, "noselect: the gpsd source takes part in selection, its serial time weighted by its delay so that it cannot outvote precise sources");
        }
        _gpsdPps |= pps;
        if (!pps)
        {
            if (option("offset") is { } offset)
            {
                _gpsd.Offset = Seconds(K.GpsdSourceOffset, "offset", offset, parts);
            }
            if (option("delay") is { } delay)
            {
                _gpsd.Delay = Seconds(K.GpsdSourceDelay, "delay", delay, parts);
            }
            else
            {
                parts.Add(MigrationOutcome.MappedWithDifference, $"delay: chronyd's default is 1 ns; the appliance's gpsd delay is {K.GpsdSourceDelay.Default}, the uncertainty of serial time");
            }
        }
        else if (option("offset") is not null || option("delay") is not null)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, "offset/delay of a PPS refclock: not carried (the appliance takes gpsd's PPS edge as it is)");
        }
        Note(line, parts.Worst(MigrationOutcome.Mapped), parts.Join(pps ? "sources[].gpsd with pps: true" : "sources[].gpsd (serial time)"));
    }

    private void Pps(ChronyLine line, string[] parameter, Func<string, string?> option, Func<string, bool> flag, Parts parts)
    {
        var source = new MigratedPpsSource { Device = parameter[0] };
        foreach (string driverOption in parameter.Skip(1))
        {
            if (driverOption.Equals("clear", StringComparison.OrdinalIgnoreCase))
            {
                source.Clear = true;
            }
            else
            {
                parts.Add(MigrationOutcome.MappedWithDifference, $"driver option :{driverOption}: not carried");
            }
        }
        if (flag("noselect"))
        {
            Note(line, MigrationOutcome.NotMapped, parts.Join("noselect: the appliance has no monitor-only sources; the PPS source is left out"));
            return;
        }
        foreach (string name in s_ppsDroppedOptions.Where(n => option(n) is not null))
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"{name}: not carried (the pulse is taken as it is)");
        }
        _config.Sources.Add(source);
        int note = Defer(line);
        if (option("lock") is { } lockId)
        {
            _locks.Add((source, lockId, note));
        }
        Fill(note, parts.Worst(MigrationOutcome.Mapped), parts.Join($"sources[].pps {source.Device}{(source.Clear ? " on the clear edge" : "")}"));
    }

    private void Phc(ChronyLine line, string[] parameter, Func<string, string?> option, Func<string, bool> flag, Parts parts)
    {
        if (parameter.Skip(1).Any(o => o.Equals("extpps", StringComparison.OrdinalIgnoreCase)))
        {
            Note(line, MigrationOutcome.NotMapped, parts.Join("extpps (the PHC's time-stamped PPS input) is not supported: nothing migrated; a `pps` source on the /dev/ppsN the pin's driver offers, if any, does the same"));
            return;
        }
        foreach (string driverOption in parameter.Skip(1))
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"driver option :{driverOption}: not carried");
        }
        if (flag("noselect"))
        {
            Note(line, MigrationOutcome.NotMapped, parts.Join("noselect: the appliance has no monitor-only sources; the PHC source is left out"));
            return;
        }
        // chrony takes a PHC as UTC unless `tai`; the table's default (37 s) is a PHC on TAI, as ptp4l keeps it.
        bool tai = flag("tai");
        TimeSpan taiOffset = DurationText.TryParse(K.PhcSourceUtcOffset.Default!, out TimeSpan d) ? d : TimeSpan.Zero;
        var source = new MigratedPhcSource { Device = parameter[0], UtcOffset = tai ? taiOffset : TimeSpan.Zero };
        if (tai)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"tai: utc-offset {K.PhcSourceUtcOffset.Default}, fixed: chronyd took TAI-UTC from its leap table, the appliance's needs changing at the next leap second");
        }
        if (option("dpoll") is { } dpoll)
        {
            source.Poll = Poll(K.PhcSourcePoll, "dpoll", dpoll, parts);
        }
        if (option("poll") is not null)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, "poll (chronyd's filter interval): not carried; dpoll is the appliance's poll");
        }
        if (option("offset") is not null || option("delay") is not null)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, "offset/delay: not carried");
        }
        _config.Sources.Add(source);
        Note(line, parts.Worst(MigrationOutcome.Mapped), parts.Join($"sources[].phc {source.Device}, utc-offset {DurationText.Format(source.UtcOffset)}"));
    }

    // ---- serving ----

    private void Access(ChronyLine line, bool allow)
    {
        var args = line.Args.ToList();
        bool all = args.Count > 0 && args[0].Equals("all", StringComparison.OrdinalIgnoreCase);
        if (all)
        {
            args.RemoveAt(0);
        }
        if (args.Count > 1)
        {
            Note(line, MigrationOutcome.NotMapped, $"{line.Directive} takes [all] and one subnet: chronyd refuses it; not migrated");
            return;
        }
        List<(IPAddress, int)> subnets;
        if (args.Count == 0)
        {
            subnets = [(IPAddress.Any, 0), (IPAddress.IPv6Any, 0)];
        }
        else if (Subnet(args[0]) is { } subnet)
        {
            subnets = [subnet];
        }
        else
        {
            Note(line, MigrationOutcome.NotMapped, $"'{args[0]}' is not an address or subnet (a host name is not resolved): write its address; not migrated");
            return;
        }
        foreach ((IPAddress network, int length) in subnets)
        {
            var entry = (network.AddressFamily, Bits(network), length);
            int width = network.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
            if (all && length < width)
            {
                // allow all / deny all: the subnets inside this one are replaced too (chrony.conf(5), allow).
                UInt128 mask = MaskBits(width, length);
                foreach (var inside in _access.Keys.Where(k => k.Family == entry.AddressFamily && k.Length > length && (k.Bits & mask) == entry.Item2).ToList())
                {
                    _access.Remove(inside);
                }
            }
            _access[entry] = (network, allow, _accessOrder++);
        }
        string key = allow ? "ntp.access.allow" : "ntp.access.deny";
        Note(line, MigrationOutcome.Mapped, $"{key}: {string.Join(", ", subnets.Select(s => Prefix(s.Item1, s.Item2)))}{(all ? " (and the subnets inside it cleared, as `all` does)" : "")}; it governs NTS-KE too, as in chronyd");
    }

    /// <summary>chrony's subnet forms: an address, address/length, and IPv4 with fewer octets ("3.4.5" is 3.4.5.0/24, "0/0" all IPv4).</summary>
    private static (IPAddress Network, int Length)? Subnet(string text)
    {
        string[] halves = text.Split('/');
        if (halves.Length > 2)
        {
            return null;
        }
        IPAddress address;
        int length;
        if (halves[0].Contains(':', StringComparison.Ordinal))
        {
            if (!IPAddress.TryParse(halves[0], out IPAddress? v6) || v6.AddressFamily != AddressFamily.InterNetworkV6)
            {
                return null;
            }
            address = v6;
            length = 128;
        }
        else
        {
            string[] octets = halves[0].Split('.');
            var bytes = new byte[4];
            if (octets.Length > 4)
            {
                return null;
            }
            for (int i = 0; i < octets.Length; i++)
            {
                if (!byte.TryParse(octets[i], NumberStyles.None, CultureInfo.InvariantCulture, out bytes[i]))
                {
                    return null;
                }
            }
            address = new IPAddress(bytes);
            length = halves.Length == 1 && octets.Length < 4 ? 8 * octets.Length : 32;
        }
        int max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (halves.Length == 2 && (!int.TryParse(halves[1], NumberStyles.None, CultureInfo.InvariantCulture, out length) || length > max))
        {
            return null;
        }
        return (Mask(address, length), length);
    }

    private static IPAddress Mask(IPAddress address, int length)
    {
        byte[] bytes = address.GetAddressBytes();
        for (int i = 0; i < bytes.Length; i++)
        {
            int keep = Math.Clamp(length - (8 * i), 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - keep));
        }
        return new IPAddress(bytes);
    }

    private static UInt128 Bits(IPAddress address)
    {
        UInt128 bits = 0;
        foreach (byte b in address.GetAddressBytes())
        {
            bits = (bits << 8) | b;
        }
        return bits;
    }

    /// <summary>The first <paramref name="length"/> of <paramref name="width"/> bits set.</summary>
    private static UInt128 MaskBits(int width, int length) =>
        length == 0 ? UInt128.Zero : (UInt128.MaxValue >> (128 - width)) & ~((UInt128.One << (width - length)) - 1);

    private static string Prefix(IPAddress network, int length) =>
        length == (network.AddressFamily == AddressFamily.InterNetwork ? 32 : 128) ? network.ToString() : $"{network}/{length}";

    private void BindAddress(ChronyLine line)
    {
        if (One(line) is not { } text)
        {
            return;
        }
        if (!IPAddress.TryParse(text, out IPAddress? address) || (address.AddressFamily == AddressFamily.InterNetwork && text.Count(c => c == '.') != 3))
        {
            Note(line, MigrationOutcome.NotMapped, $"'{text}' is not an IP address: chronyd refuses it; not migrated");
            return;
        }
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            _bind4 = address.ToString();
        }
        else
        {
            _bind6 = address.ToString();
        }
        Note(line, MigrationOutcome.Mapped, $"the {(address.AddressFamily == AddressFamily.InterNetwork ? "IPv4" : "IPv6")} address of ntp.listen (and nts-ke.listen): {address}; the other family still listens on its wildcard, as in chronyd");
    }

    private void RateLimit(ChronyLine line)
    {
        _sawRateLimit = true;
        var parts = new Parts();
        int interval = ChronyRateLimitInterval, burst = ChronyRateLimitBurst, leak = ChronyRateLimitLeak;
        foreach ((string name, string? value) in Options(line, 0, new HashSet<string>(StringComparer.Ordinal) { "interval", "burst", "leak" }, [], parts))
        {
            if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n))
            {
                parts.Add(MigrationOutcome.NotMapped, $"{name} '{value}' is not a number: chronyd refuses it; chronyd's default taken");
                continue;
            }
            switch (name)
            {
                case "interval":
                    interval = n;
                    break;
                case "burst":
                    burst = n;
                    break;
                default:
                    leak = n;
                    break;
            }
        }
        _config.RateLimitInterval = SecondsPowerOfTwo(K.NtpRateLimitInterval, "interval", interval, parts);
        _config.RateLimitBurst = Clamp(K.NtpRateLimitBurst, burst, out string? burstNote);
        if (burstNote is not null)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"burst {burst}{burstNote}");
        }
        _config.RateLimitLeak = Clamp(K.NtpRateLimitLeak, leak, out string? leakNote);
        if (leakNote is not null)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"leak {leak}{leakNote}{(leak == 0 ? $" ({K.NtpRateLimitLeak.Hint})" : "")}");
        }
        Note(line, parts.Worst(MigrationOutcome.Mapped), parts.Join(
            $"ntp.rate-limit: interval {DurationText.Format(_config.RateLimitInterval.Value)}, burst {_config.RateLimitBurst}, leak {_config.RateLimitLeak} (chronyd's defaults for what the line leaves out)"));
    }

    private void HwTimestamp(ChronyLine line)
    {
        if (line.Args.Count == 0)
        {
            Note(line, MigrationOutcome.NotMapped, "hwtimestamp needs an interface or *: chronyd refuses it; not migrated");
            return;
        }
        _config.HardwareTimestamps = true;
        string where = line.Args[0] == "*" ? "every interface that has them, as * asked" : $"every listen socket, not {line.Args[0]} alone";
        string options = line.Args.Count > 1 ? $"; {string.Join(' ', line.Args.Skip(1))}: not carried (the NIC's defaults)" : "";
        Note(line, MigrationOutcome.MappedWithDifference, $"ntp.hardware-timestamps: true: receive timestamps, and transmit timestamps for interleaved responses, on {where}{options}");
    }

    private void NtsServerFile(ChronyLine line)
    {
        if (One(line) is not { } path)
        {
            return;
        }
        bool certificate = line.Directive == "ntsservercert";
        if ((certificate ? _certificate : _privateKey) is not null)
        {
            Note(line, MigrationOutcome.NotMapped, "a second certificate: the appliance serves one; cover further names in its subject alternative names");
            return;
        }
        if (certificate)
        {
            _certificate = path;
            _certificateNote = Defer(line);
        }
        else
        {
            _privateKey = path;
            _keyNote = Defer(line);
        }
    }

    private void NtsTrustedCerts(ChronyLine line)
    {
        if (line.Args.Count is < 1 or > 2)
        {
            Note(line, MigrationOutcome.NotMapped, "ntstrustedcerts takes [set-ID] FILE: chronyd refuses it; not migrated");
            return;
        }
        string set = line.Args.Count == 2 ? line.Args[0] : "0";
        _trusted[set] = line.Args[^1];
        _trustedLine = line;
        Note(line, set == "0" ? MigrationOutcome.Mapped : MigrationOutcome.MappedWithDifference,
            $"the trust file of the NTS sources{(set == "0" ? "" : $" of certset {set}")}: {line.Args[^1]}");
    }

    // ---- the clock ----

    private void Local(ChronyLine line)
    {
        var parts = new Parts();
        int stratum = ChronyLocalStratum;
        foreach ((string name, string? value) in Options(line, 0, new HashSet<string>(StringComparer.Ordinal) { "stratum", "distance", "activate" },
            new HashSet<string>(StringComparer.Ordinal) { "orphan", "waitsynced", "waitunsynced" }, parts))
        {
            switch (name)
            {
                case "stratum":
                    if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int s))
                    {
                        stratum = Clamp(K.ClockLocalStratum, s, out string? clamped);
                        if (clamped is not null)
                        {
                            parts.Add(MigrationOutcome.MappedWithDifference, $"stratum {s}{clamped}");
                        }
                    }
                    else
                    {
                        parts.Add(MigrationOutcome.NotMapped, $"stratum '{value}' is not a number: chronyd refuses it; {ChronyLocalStratum} taken");
                    }
                    break;
                case "orphan":
                    parts.Add(MigrationOutcome.MappedWithDifference, "orphan: the appliance has no orphan election (RFC 5905 §11.2.2 / chrony's ref-id rule); several servers with local each serve their own clock: give one of them clock.local and the others that one as a source");
                    break;
                case "distance":
                    parts.Add(MigrationOutcome.MappedWithDifference, $"distance {value}: the appliance serves its local clock only when no source is usable, not when the root distance passes {value} s");
                    break;
                case "activate":
                    parts.Add(MigrationOutcome.MappedWithDifference, $"activate {value}: the local clock is served whenever no source is usable, synchronised before or not");
                    break;
                default:
                    parts.Add(MigrationOutcome.MappedWithDifference, $"{name}: not carried; the local clock is served whenever no source is usable");
                    break;
            }
        }
        _config.LocalStratum = stratum;
        Note(line, parts.Worst(MigrationOutcome.Mapped), parts.Join($"clock.local: stratum {stratum}"));
    }

    private void Makestep(ChronyLine line)
    {
        _sawMakestep = true;
        if (line.Args.Count != 2 || !TryDouble(line.Args[0], out double threshold) || !int.TryParse(line.Args[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int limit))
        {
            Note(line, MigrationOutcome.NotMapped, "makestep takes a threshold in seconds and a limit of updates: chronyd refuses it; not migrated");
            return;
        }
        var parts = new Parts();
        _config.StepThreshold = Seconds(K.ClockStepThreshold, "threshold", line.Args[0], parts);
        string when = limit < 0 ? "at any update" : $"in its first {limit} clock updates only";
        parts.Add(MigrationOutcome.MappedWithDifference, $"chronyd stepped {when}; the appliance steps the first offset at start-up (within clock.panic-threshold) and later any offset over the threshold that lasts 300 s (RFC 5905 stepout)");
        Note(line, parts.Worst(MigrationOutcome.Mapped), parts.Join($"clock.step-threshold: {DurationText.Format(_config.StepThreshold ?? TimeSpan.Zero)}"));
    }

    private void MaxChange(ChronyLine line)
    {
        if (line.Args.Count != 3 || !TryDouble(line.Args[0], out _))
        {
            Note(line, MigrationOutcome.NotMapped, "maxchange takes an offset, a start and an ignore count: chronyd refuses it; not migrated");
            return;
        }
        var parts = new Parts();
        _config.PanicThreshold = Seconds(K.ClockPanicThreshold, "offset", line.Args[0], parts);
        parts.Add(MigrationOutcome.MappedWithDifference, $"chronyd ignored such an offset {line.Args[2]} times after {line.Args[1]} updates, then exited; the appliance refuses it (after the first setting of the clock) and keeps serving");
        Note(line, parts.Worst(MigrationOutcome.Mapped), parts.Join($"clock.panic-threshold: {DurationText.Format(_config.PanicThreshold ?? TimeSpan.Zero)}"));
    }

    private void LeapSecTz(ChronyLine line)
    {
        if (One(line) is not { } zone)
        {
            return;
        }
        // The table's example is the list the tz database ships beside right/UTC (Debian package tzdata).
        string list = K.ClockLeapSeconds.Example!;
        _config.LeapSeconds ??= list;
        Note(line, MigrationOutcome.MappedWithDifference,
            $"clock.leap-seconds: {_config.LeapSeconds}: the appliance reads an IERS/NIST leap-seconds.list, not the tz zone {zone}; the tz database ships the list beside it with the same leap seconds and expiry");
    }

    // ---- the whole file ----

    private void Finish(string mainFile)
    {
        var access = _access.OrderBy(e => e.Value.Order).Select(e => (e.Value.Network, e.Key.Length, e.Value.Allow)).ToList();
        bool serving = access.Any(e => e.Allow) && _port != 0;
        List<string> Listen(int port) => serving
            ? [$"{_bind4 ?? IPAddress.Any.ToString()}:{port}", $"[{_bind6 ?? IPAddress.IPv6Any.ToString()}]:{port}"]
            : [$"{IPAddress.Loopback}:{port}", $"[{IPAddress.IPv6Loopback}]:{port}"];
        int ntpPort = _port == 0 ? K.NtpPort : _port;
        if (!serving)
        {
            _config.Listen = Listen(ntpPort);
            FileNote(mainFile, "(allow)", MigrationOutcome.MappedWithDifference, _port == 0
                ? "port 0: chronyd was a client only; the appliance always serves its listen addresses, so it listens on loopback only (the host's own programs): set ntp.listen to serve the network"
                : "no allow directive: chronyd answered no NTP client (chrony.conf(5), allow); the appliance always serves its listen addresses, so it listens on loopback only: add allow lines (or set ntp.listen and ntp.access) to serve the network");
        }
        else
        {
            if (_bind4 is not null || _bind6 is not null || _port != K.NtpPort)
            {
                _config.Listen = Listen(ntpPort);
            }
            bool everyone = access.Count == 2 && access.All(e => e.Allow && e.Length == 0);
            if (!everyone)
            {
                _config.Allow = access.Where(e => e.Allow).Select(e => Prefix(e.Network, e.Length)).ToList();
                _config.Deny = access.Any(e => !e.Allow) ? access.Where(e => !e.Allow).Select(e => Prefix(e.Network, e.Length)).ToList() : null;
            }
            if (!_sawRateLimit)
            {
                FileNote(mainFile, "(ratelimit)", MigrationOutcome.MappedWithDifference,
                    $"no ratelimit directive: chronyd answered every request; the appliance rate-limits by default (interval {K.NtpRateLimitInterval.Default}, burst {K.NtpRateLimitBurst.Default}, leak {K.NtpRateLimitLeak.Default}): write ntp.rate-limit: off for chronyd's behaviour");
            }
        }
        if (!_sawMakestep)
        {
            FileNote(mainFile, "(makestep)", MigrationOutcome.MappedWithDifference,
                $"no makestep directive: chronyd only slewed; the appliance steps an offset over clock.step-threshold ({K.ClockStepThreshold.Default}) that lasts 300 s (RFC 5905 stepout)");
        }

        FinishNtsServer(serving, Listen);

        if (_gpsd is not null)
        {
            _gpsd.Pps = _gpsdPps;
        }
        string gpsdName = K.GpsdSourceAddress.DefaultNode is YamlScalarNode { Value: { } address } ? address : "";
        foreach ((MigratedPpsSource source, string lockId, int note) in _locks)
        {
            MigrationNote written = _notes[note];
            if (_refclockKinds.GetValueOrDefault(lockId) == "gpsd")
            {
                source.Lock = gpsdName;
                _notes[note] = written with { Message = $"{written.Message}; lock {lockId}: pulses numbered by the gpsd source ({gpsdName})" };
            }
            else
            {
                _notes[note] = written with
                {
                    Outcome = MigrationOutcome.MappedWithDifference,
                    Message = $"{written.Message}; lock {lockId} names no gpsd refclock migrated here: the pulses are numbered by the disciplined clock",
                };
            }
        }
        foreach ((MigratedNtpSource source, string? certSet) in _ntsSources)
        {
            if (_trusted.GetValueOrDefault(certSet ?? "0") is { } trust)
            {
                source.Trust = trust;
            }
        }
        FinishNtsAeads();
        if (_trustedLine is not null && _ntsSources.Count == 0)
        {
            FileNote(mainFile, "(ntstrustedcerts)", MigrationOutcome.NoCounterpart, "ntstrustedcerts with no NTS source: nothing to apply it to");
        }
        if (_config.Sources.Count == 0 && _config.LocalStratum is null)
        {
            _config.LocalStratum = int.Parse(K.ClockLocalStratum.Default!, CultureInfo.InvariantCulture);
            FileNote(mainFile, "(sources)", MigrationOutcome.NotMapped,
                $"no time source could be migrated: the configuration serves the host clock at local stratum {_config.LocalStratum} so that it is valid; add a source under sources before serving clients");
        }
    }

    /// <summary>
    /// chrony's ntsaeads (4.6.1 and later): the AEAD ids its NTS client offers and its server agrees
    /// to, the preferred first; here nts-ke.aeads and the aeads of every NTS source, by name.
    /// </summary>
    private void FinishNtsAeads()
    {
        if (_ntsAeads is not { } line)
        {
            return;
        }
        var names = new List<string>();
        var parts = new Parts();
        foreach (string id in line.Line.Args)
        {
            if (ushort.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out ushort n) && AeadAlgorithms.IsSupported(n))
            {
                string name = AeadAlgorithms.Name((AeadAlgorithm)n);
                if (!names.Contains(name))
                {
                    names.Add(name);
                }
            }
            else
            {
                parts.Add(MigrationOutcome.MappedWithDifference, $"{id} is no AEAD the appliance speaks (15, 17 or 30): left out");
            }
        }
        if (names.Count == 0)
        {
            Fill(line.Note, MigrationOutcome.NotMapped, "none of the ids is an AEAD the appliance speaks (15, 17 or 30): not migrated, the defaults apply");
            return;
        }
        var applied = new List<string>();
        if (_config.NtsKe is { } nts)
        {
            nts.Aeads = names;
            applied.Add("nts-ke.aeads");
        }
        foreach ((MigratedNtpSource source, _) in _ntsSources)
        {
            source.Aeads = names;
        }
        if (_ntsSources.Count > 0)
        {
            applied.Add($"the aeads of {(_ntsSources.Count == 1 ? "the NTS source" : $"the {_ntsSources.Count} NTS sources")}");
        }
        if (applied.Count == 0)
        {
            Fill(line.Note, MigrationOutcome.NoCounterpart, "no NTS server or NTS source here: nothing to apply it to");
            return;
        }
        Fill(line.Note, parts.Worst(MigrationOutcome.Mapped), parts.Join($"{string.Join(" and ", applied)}: [{string.Join(", ", names)}]"));
    }

    private void FinishNtsServer(bool serving, Func<int, List<string>> listen)
    {
        bool server = _certificate is not null && _privateKey is not null;
        if (_certificate is not null || _privateKey is not null)
        {
            if (!server)
            {
                Fill(_certificate is not null ? _certificateNote : _keyNote, MigrationOutcome.NotMapped,
                    $"without {(_certificate is not null ? "ntsserverkey" : "ntsservercert")} chronyd serves no NTS: not migrated (write both)");
            }
            else
            {
                Fill(_certificateNote, MigrationOutcome.Mapped, $"nts-ke.certificate: {_certificate}");
                Fill(_keyNote, MigrationOutcome.Mapped, $"nts-ke.private-key: {_privateKey}");
            }
        }
        MigratedNtsKe? nts = server ? new MigratedNtsKe { Certificate = _certificate, PrivateKey = _privateKey } : null;
        _config.NtsKe = nts;
        string notServer = "no NTS server here (ntsservercert and ntsserverkey): nothing to apply it to";

        if (nts is not null && ((_ntsPort ?? K.NtsKePort) != K.NtsKePort || _bind4 is not null || _bind6 is not null || !serving))
        {
            nts.Listen = listen(_ntsPort ?? K.NtsKePort);
        }
        if (_ntsPortLine is { } ntsPort)
        {
            Fill(ntsPort.Note, nts is null ? MigrationOutcome.NoCounterpart : MigrationOutcome.Mapped, nts is null ? notServer : $"the port of nts-ke.listen: {_ntsPort}");
        }
        if (_dumpDir is { } dump)
        {
            string directory = dump.Line.Args[0];
            if (nts is not null)
            {
                nts.Storage = Path.Combine(directory, "appliance-nts-keys");
                Fill(dump.Note, MigrationOutcome.MappedWithDifference,
                    $"nts-ke.keys.storage: {nts.Storage}: chronyd's ntskeys file is not read (another format), so clients holding its cookies do NTS-KE once more; the NTS client keeps no cookies across a restart");
            }
            else
            {
                Fill(dump.Note, MigrationOutcome.NoCounterpart, "with no NTS server here it held chronyd's client cookies: the appliance's NTS client does NTS-KE at start instead");
            }
        }
        if (_ntsRotate is { } rotate)
        {
            long seconds = long.Parse(rotate.Line.Args[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            if (nts is null)
            {
                Fill(rotate.Note, MigrationOutcome.NoCounterpart, notServer);
            }
            else
            {
                var parts = new Parts();
                if (seconds <= 0)
                {
                    nts.Rotation = K.NtsKeKeysRotation.DurationRange.Max;
                    parts.Add(MigrationOutcome.MappedWithDifference, $"0 (never rotate): the longest rotation, {DurationText.Format(nts.Rotation.Value)}");
                }
                else
                {
                    nts.Rotation = Seconds(K.NtsKeKeysRotation, "interval", seconds.ToString(CultureInfo.InvariantCulture), parts);
                }
                Fill(rotate.Note, parts.Worst(MigrationOutcome.Mapped), parts.Join($"nts-ke.keys.rotation: {DurationText.Format(nts.Rotation ?? TimeSpan.Zero)}"));
            }
        }
        if (_ntsNtpServer is { } ntpServer)
        {
            string host = ntpServer.Line.Args[0];
            if (nts is null)
            {
                Fill(ntpServer.Note, MigrationOutcome.NoCounterpart, notServer);
            }
            else if (AddressText.TryParse(host, AddressRules.Remote(K.NtpPort), out _, out string problem))
            {
                nts.NtpServer = host;
                Fill(ntpServer.Note, MigrationOutcome.Mapped, $"nts-ke.ntp-server: {host}");
            }
            else
            {
                Fill(ntpServer.Note, MigrationOutcome.NotMapped, $"'{host}' is not a host name or address ({problem}); not migrated");
            }
        }
        if (_maxNtsConnections is { } max)
        {
            if (nts is null)
            {
                Fill(max.Note, MigrationOutcome.NoCounterpart, notServer);
            }
            else
            {
                nts.MaxConnections = Clamp(K.NtsKeMaxConnections, long.Parse(max.Line.Args[0], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture), out string? clamped);
                Fill(max.Note, clamped is null ? MigrationOutcome.Mapped : MigrationOutcome.MappedWithDifference, $"nts-ke.max-connections: {nts.MaxConnections}{clamped}");
            }
        }
        if (_ntsRateLimit is { } limit)
        {
            if (nts is null)
            {
                Fill(limit.Note, MigrationOutcome.NoCounterpart, notServer);
                return;
            }
            var parts = new Parts();
            int interval = ChronyNtsRateLimitInterval, burst = ChronyNtsRateLimitBurst;
            foreach ((string name, string? value) in Options(limit.Line, 0, new HashSet<string>(StringComparer.Ordinal) { "interval", "burst", "leak" }, [], parts))
            {
                if (!int.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n))
                {
                    parts.Add(MigrationOutcome.NotMapped, $"{name} '{value}' is not a number: chronyd refuses it; chronyd's default taken");
                }
                else if (name == "interval")
                {
                    interval = n;
                }
                else if (name == "burst")
                {
                    burst = n;
                }
                else
                {
                    parts.Add(MigrationOutcome.MappedWithDifference, $"leak {n}: not carried: a client over its limit is closed at accept");
                }
            }
            nts.ClientInterval = SecondsPowerOfTwo(K.NtsKeClientLimitInterval, "interval", interval, parts);
            nts.ClientConnections = Clamp(K.NtsKeClientLimitConnections, burst, out string? clamped);
            if (clamped is not null)
            {
                parts.Add(MigrationOutcome.MappedWithDifference, $"burst {burst}{clamped}");
            }
            Fill(limit.Note, parts.Worst(MigrationOutcome.Mapped),
                parts.Join($"nts-ke.client-limit: {nts.ClientConnections} connections per {DurationText.Format(nts.ClientInterval.Value)} (chronyd's defaults for what the line leaves out)"));
        }
    }

    // ---- helpers ----

    /// <summary>Reserves the report line of the current directive, to be written once the whole file is known.</summary>
    private int Defer(ChronyLine line)
    {
        _notes.Add(new MigrationNote(line.File, line.Number, line.Directive, MigrationOutcome.Mapped, ""));
        return _notes.Count - 1;
    }

    private void Fill(int index, MigrationOutcome outcome, string message) =>
        _notes[index] = _notes[index] with { Outcome = outcome, Message = message };

    private void Note(ChronyLine line, MigrationOutcome outcome, string message) =>
        _notes.Add(new MigrationNote(line.File, line.Number, line.Directive, outcome, message));

    private void FileNote(string file, string what, MigrationOutcome outcome, string message) =>
        _notes.Add(new MigrationNote(file, 0, what, outcome, message));

    /// <summary>The one argument of a directive, or null after a note.</summary>
    private string? One(ChronyLine line)
    {
        if (line.Args.Count == 1)
        {
            return line.Args[0];
        }
        Note(line, MigrationOutcome.NotMapped, $"{line.Directive} takes one value: chronyd refuses this line; not migrated");
        return null;
    }

    private int? Integer(ChronyLine line, int index, int min, int max)
    {
        if (line.Args.Count > index && int.TryParse(line.Args[index], NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= min && n <= max)
        {
            return n;
        }
        Note(line, MigrationOutcome.NotMapped, $"{line.Directive} takes a whole number from {min} to {max}: chronyd refuses this line; not migrated");
        return null;
    }

    private long? Long(ChronyLine line, int index)
    {
        if (line.Args.Count == index + 1 && long.TryParse(line.Args[index], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n))
        {
            return n;
        }
        Note(line, MigrationOutcome.NotMapped, $"{line.Directive} takes one whole number: chronyd refuses this line; not migrated");
        return null;
    }

    /// <summary>The options after <paramref name="start"/>: a name (lower case) and its value, or a flag; an unknown or incomplete option is a part of the note.</summary>
    private static IEnumerable<(string Name, string? Value)> Options(ChronyLine line, int start, HashSet<string> withValue, HashSet<string> flags, Parts parts)
    {
        var options = new List<(string, string?)>();
        for (int i = start; i < line.Args.Count; i++)
        {
            string name = line.Args[i].ToLowerInvariant();
            if (flags.Contains(name))
            {
                options.Add((name, null));
            }
            else if (withValue.Contains(name))
            {
                if (i + 1 >= line.Args.Count)
                {
                    parts.Add(MigrationOutcome.NotMapped, $"{name} without its value: chronyd refuses this line; the option is not carried");
                    break;
                }
                options.Add((name, line.Args[++i]));
            }
            else
            {
                parts.Add(MigrationOutcome.NotMapped, $"unknown option '{line.Args[i]}': chronyd refuses this line; not carried");
            }
        }
        return options;
    }

    /// <summary>A value of seconds (chrony's decimal form) as the key's duration, clamped to its range.</summary>
    private static TimeSpan? Seconds(ConfigKey key, string name, string text, Parts parts)
    {
        if (!TryDouble(text, out double seconds) || Math.Abs(seconds) > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            parts.Add(MigrationOutcome.NotMapped, $"{name} '{text}' is not a number of seconds: chronyd refuses it; the table's default taken");
            return null;
        }
        TimeSpan value = TimeSpan.FromTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));
        (TimeSpan min, TimeSpan max) = key.DurationRange;
        TimeSpan clamped = value < min ? min : value > max ? max : value;
        if (clamped != value)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"{name} {text} s is outside {key.Path}'s range: {DurationText.Format(clamped < TimeSpan.Zero ? -clamped : clamped)}{(clamped < TimeSpan.Zero ? " (negative)" : "")} taken");
        }
        return clamped;
    }

    /// <summary>chrony's "power of 2 in seconds" as the key's duration, clamped to its range.</summary>
    private static TimeSpan SecondsPowerOfTwo(ConfigKey key, string name, int exponent, Parts parts)
    {
        TimeSpan value = TimeSpan.FromSeconds(Math.Pow(2, Math.Clamp(exponent, -30, 30)));
        (TimeSpan min, TimeSpan max) = key.DurationRange;
        TimeSpan clamped = value < min ? min : value > max ? max : value;
        if (clamped != value)
        {
            parts.Add(MigrationOutcome.MappedWithDifference, $"{name} {exponent} (2^{exponent} s) is outside {key.Path}'s range: {DurationText.Format(clamped)} taken");
        }
        else if (clamped.Ticks % TimeSpan.TicksPerMillisecond != 0)
        {
            clamped = TimeSpan.FromMilliseconds(Math.Round(clamped.TotalMilliseconds));
        }
        return clamped;
    }

    /// <summary><paramref name="value"/> within the key's whole-number range; <paramref name="note"/> says when it was not.</summary>
    private static int Clamp(ConfigKey key, long value, out string? note)
    {
        (long min, long max) = key.IntegerRange;
        long clamped = Math.Clamp(value, min, max);
        note = clamped == value ? null : $" is outside {key.Path}'s range {min} to {max}: {clamped} taken";
        return (int)clamped;
    }

    private static bool TryDouble(string text, out double value) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) && double.IsFinite(value);

    /// <summary>The parts of one directive's note: the worst outcome decides the line's.</summary>
    private sealed class Parts
    {
        private readonly List<(MigrationOutcome Outcome, string Text)> _parts = [];

        public void Add(MigrationOutcome outcome, string text) => _parts.Add((outcome, text));

        public MigrationOutcome Worst(MigrationOutcome start) =>
            _parts.Select(p => p.Outcome).Append(start).MaxBy(Rank);

        public string Join(string what) => _parts.Count == 0 ? what : $"{what}; {string.Join("; ", _parts.Select(p => p.Text))}";

        private static int Rank(MigrationOutcome outcome) => outcome switch
        {
            MigrationOutcome.NotMapped => 3,
            MigrationOutcome.MappedWithDifference => 2,
            MigrationOutcome.Mapped => 1,
            _ => 0,
        };
    }
}
