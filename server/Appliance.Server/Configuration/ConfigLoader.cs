using System.Globalization;
using System.Net;
using System.Reflection;
using Appliance.Protocol;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Configuration;

/// <summary>
/// Loads the YAML configuration into <see cref="ApplianceConfig"/>, collecting every error with its
/// line, column and fix instead of stopping at the first. Unknown keys are errors.
/// </summary>
public static class ConfigLoader
{
    public const string EmbeddedDefaultName = "(embedded default)";

    public static string EmbeddedDefaultText { get; } = ReadEmbeddedDefault();

    public static ConfigResult LoadEmbeddedDefault() => Parse(EmbeddedDefaultText);

    public static ConfigResult LoadFile(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new ConfigResult(null, [new ConfigError(0, 0, $"cannot read the configuration: {e.Message}",
                "check the path and that the file is readable by this user")]);
        }
        return Parse(text);
    }

    public static ConfigResult Parse(string text)
    {
        var stream = new YamlStream();
        var parser = new TrackingParser(new Parser(new StringReader(text)));
        try
        {
            stream.Load(parser);
        }
        catch (YamlException e)
        {
            return new ConfigResult(null, [new ConfigError((int)e.Start.Line, (int)e.Start.Column,
                $"YAML syntax: {e.InnerException?.Message ?? e.Message}", "fix the YAML syntax at this position")]);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet throws this without a position for some malformed input: report where parsing stopped.
            return new ConfigResult(null, [new ConfigError((int)parser.LastGood.Line, (int)parser.LastGood.Column,
                "YAML syntax: the document does not parse after this point", "check the brackets, quotes and indentation here")]);
        }

        var binder = new Binder();
        YamlNode root = stream.Documents.Count == 0 ? new YamlMappingNode() : stream.Documents[0].RootNode;
        if (stream.Documents.Count > 1)
        {
            binder.Error(stream.Documents[1].RootNode, "more than one YAML document", "keep a single document (remove '---')");
        }
        ApplianceConfig? config = binder.Bind(root);
        return binder.Errors.Count == 0 ? new ConfigResult(config, []) : new ConfigResult(null, binder.Errors);
    }

    /// <summary>Remembers where the last well-formed YAML event ended, for errors that carry no position.</summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        public YamlDotNet.Core.Events.ParsingEvent? Current => inner.Current;

        public Mark LastGood { get; private set; } = Mark.Empty;

        public bool MoveNext()
        {
            bool moved = inner.MoveNext();
            if (inner.Current is { } current)
            {
                LastGood = current.End;
            }
            return moved;
        }
    }

    private static string ReadEmbeddedDefault()
    {
        using Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("default.yaml")
            ?? throw new InvalidOperationException("the embedded default configuration is missing from the build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>Walks the YAML tree against <see cref="ConfigSchema"/>, applying defaults.</summary>
    private sealed class Binder
    {
        public List<ConfigError> Errors { get; } = [];

        public void Error(YamlNode node, string message, string fix) =>
            Errors.Add(new ConfigError((int)node.Start.Line, (int)node.Start.Column, message, fix));

        public ApplianceConfig Bind(YamlNode root)
        {
            Dictionary<string, YamlNode> top = Mapping(root, "") ?? [];
            NtpConfig ntp = BindNtp(top);
            IReadOnlyList<SourceConfig> sources = BindSources(top);
            return new ApplianceConfig(ntp, BindNtsKe(top, ntp), BindClock(top, root, sources.Count), sources, BindMetrics(top));
        }

        private NtpConfig BindNtp(Dictionary<string, YamlNode> top)
        {
            Dictionary<string, YamlNode> ntp = Section(top, "ntp");
            bool requireNtsDefault = ntp.TryGetValue("require-nts", out YamlNode? rn) && Boolean(rn, "ntp.require-nts");
            var listen = new List<IPEndPoint>();
            var requireNts = new List<bool>();
            if (ntp.TryGetValue("listen", out YamlNode? node))
            {
                foreach (YamlNode item in Sequence(node, "ntp.listen"))
                {
                    // An entry is "address:port", or { address: "address:port", require-nts: true }.
                    YamlNode addressNode = item;
                    bool require = requireNtsDefault;
                    if (item is YamlMappingNode)
                    {
                        Dictionary<string, YamlNode> entry = Mapping(item, "ntp.listen[]") ?? [];
                        if (!entry.TryGetValue("address", out YamlNode? a))
                        {
                            Error(item, "a listen entry has no address", "write { address: \"0.0.0.0:123\", require-nts: true }");
                            continue;
                        }
                        addressNode = a;
                        if (entry.TryGetValue("require-nts", out YamlNode? r))
                        {
                            require = Boolean(r, "ntp.listen[].require-nts");
                        }
                    }
                    if (Endpoint(addressNode, "ntp.listen") is { } endPoint)
                    {
                        listen.Add(endPoint);
                        requireNts.Add(require);
                    }
                }
                if (node is YamlSequenceNode { Children.Count: 0 })
                {
                    Error(node, "ntp.listen is empty", "list at least one address, e.g. [\"0.0.0.0:123\", \"[::]:123\"]");
                }
            }
            else
            {
                listen.Add(new IPEndPoint(IPAddress.Any, 123));
                listen.Add(new IPEndPoint(IPAddress.IPv6Any, 123));
                requireNts.AddRange([requireNtsDefault, requireNtsDefault]);
            }

            int workers = 0;
            if (ntp.TryGetValue("workers", out YamlNode? workersNode) && workersNode is not YamlScalarNode { Value: "auto" })
            {
                workers = Integer(workersNode, "ntp.workers", 1, 256, 0, "or 'auto' for one per core");
            }
            int batch = ntp.TryGetValue("batch", out YamlNode? batchNode) ? Integer(batchNode, "ntp.batch", 1, 1024, 64) : 64;
            IReadOnlyList<int>? affinity = null;
            if (ntp.TryGetValue("cpu-affinity", out YamlNode? affinityNode))
            {
                affinity = affinityNode switch
                {
                    YamlScalarNode { Value: "off" } => null,
                    YamlScalarNode { Value: "auto" } => Enumerable.Range(0, Environment.ProcessorCount).ToArray(),
                    YamlSequenceNode list => list.Children.Select(c => Integer(c, "ntp.cpu-affinity", 0, 1023, 0)).ToArray(),
                    _ => BadAffinity(affinityNode),
                };
            }
            bool hardware = ntp.TryGetValue("hardware-timestamps", out YamlNode? hwNode) && Boolean(hwNode, "ntp.hardware-timestamps");
            TimeSpan busyPoll = TimeSpan.FromMicroseconds(50);
            if (ntp.TryGetValue("busy-poll", out YamlNode? pollNode))
            {
                busyPoll = pollNode is YamlScalarNode { Value: "off" }
                    ? TimeSpan.Zero
                    : Duration(pollNode, "ntp.busy-poll", TimeSpan.Zero, TimeSpan.FromMilliseconds(10), busyPoll);
            }
            return new NtpConfig(listen, requireNts, workers, batch, affinity, hardware, busyPoll, BindRateLimit(ntp), BindAccess(ntp, out DenyAction action), action);
        }

        private int[]? BadAffinity(YamlNode node)
        {
            Error(node, "'ntp.cpu-affinity' must be off, auto, or a list of CPU numbers", "write cpu-affinity: auto, or cpu-affinity: [0, 1]");
            return null;
        }

        private RateLimitSettings? BindRateLimit(Dictionary<string, YamlNode> ntp)
        {
            RateLimitSettings defaults = RateLimitSettings.Default;
            if (!ntp.TryGetValue("rate-limit", out YamlNode? node))
            {
                return defaults;
            }
            if (node is YamlScalarNode { Value: "off" })
            {
                return null;
            }
            Dictionary<string, YamlNode> map = Mapping(node, "ntp.rate-limit") ?? [];
            return new RateLimitSettings(
                map.TryGetValue("interval", out YamlNode? i) ? Duration(i, "ntp.rate-limit.interval", TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1), defaults.Interval) : defaults.Interval,
                map.TryGetValue("burst", out YamlNode? b) ? Integer(b, "ntp.rate-limit.burst", 1, 1000, defaults.Burst) : defaults.Burst,
                map.TryGetValue("leak", out YamlNode? l) ? Integer(l, "ntp.rate-limit.leak", 0, 16, defaults.Leak) : defaults.Leak,
                map.TryGetValue("kod", out YamlNode? k) ? Boolean(k, "ntp.rate-limit.kod") : defaults.Kod,
                map.TryGetValue("clients", out YamlNode? c) ? Integer(c, "ntp.rate-limit.clients", 1024, 1 << 26, defaults.Clients) : defaults.Clients);
        }

        private AccessList BindAccess(Dictionary<string, YamlNode> ntp, out DenyAction action)
        {
            action = DenyAction.Ignore;
            if (!ntp.TryGetValue("access", out YamlNode? node))
            {
                return AccessList.AllowAll;
            }
            Dictionary<string, YamlNode> map = Mapping(node, "ntp.access") ?? [];
            var rules = new List<AccessRule>();
            if (map.TryGetValue("allow", out YamlNode? allow))
            {
                rules.AddRange(Prefixes(allow, "ntp.access.allow", true));
            }
            else
            {
                rules.AddRange(AccessList.AllowAll.Rules);
            }
            if (map.TryGetValue("deny", out YamlNode? deny))
            {
                rules.AddRange(Prefixes(deny, "ntp.access.deny", false));
            }
            if (map.TryGetValue("deny-action", out YamlNode? actionNode) && Scalar(actionNode, "ntp.access.deny-action") is { } text)
            {
                switch (text)
                {
                    case "ignore": action = DenyAction.Ignore; break;
                    case "kod": action = DenyAction.Kod; break;
                    default:
                        Error(actionNode, $"'ntp.access.deny-action' is '{text}'", "use 'ignore' (send nothing) or 'kod' (send a KoD DENY)");
                        break;
                }
            }
            return new AccessList(rules);
        }

        private List<AccessRule> Prefixes(YamlNode node, string path, bool allow)
        {
            var rules = new List<AccessRule>();
            foreach (YamlNode item in Sequence(node, path))
            {
                if (Scalar(item, path) is { } text)
                {
                    if (AccessRule.TryParse(text, allow, out AccessRule rule))
                    {
                        rules.Add(rule);
                    }
                    else
                    {
                        Error(item, $"'{path}' has '{text}', which is not an address or prefix", "write an address or a CIDR prefix: \"192.0.2.0/24\", \"2001:db8::/32\", \"0.0.0.0/0\"");
                    }
                }
            }
            return rules;
        }

        private NtsKeConfig? BindNtsKe(Dictionary<string, YamlNode> top, NtpConfig ntp)
        {
            if (!top.TryGetValue("nts-ke", out YamlNode? sectionNode) || IsNull(sectionNode))
            {
                if (ntp.RequireNts.Any(r => r))
                {
                    Error(top.GetValueOrDefault("ntp") ?? sectionNode ?? new YamlScalarNode(), "require-nts is set but NTS is not configured",
                        "add an nts-ke section (certificate, private-key, keys) or remove require-nts");
                }
                return null;
            }
            Dictionary<string, YamlNode> nts = Mapping(sectionNode, "nts-ke") ?? [];
            var listen = new List<IPEndPoint>();
            if (nts.TryGetValue("listen", out YamlNode? listenNode))
            {
                foreach (YamlNode item in Sequence(listenNode, "nts-ke.listen"))
                {
                    if (Endpoint(item, "nts-ke.listen") is { } endPoint)
                    {
                        listen.Add(endPoint);
                    }
                }
            }
            else
            {
                listen.Add(new IPEndPoint(IPAddress.Any, 4460));
                listen.Add(new IPEndPoint(IPAddress.IPv6Any, 4460));
            }
            string certificate = RequiredFile(nts, sectionNode, "certificate", "the PEM certificate chain (leaf first), e.g. /etc/appliance/tls/fullchain.pem");
            string privateKey = RequiredFile(nts, sectionNode, "private-key", "the PEM private key, e.g. /etc/appliance/tls/key.pem");

            Dictionary<string, YamlNode> keys = nts.TryGetValue("keys", out YamlNode? keysNode) ? Mapping(keysNode, "nts-ke.keys") ?? [] : [];
            string storage = keys.TryGetValue("storage", out YamlNode? st) ? Scalar(st, "nts-ke.keys.storage") ?? "" : "/var/lib/appliance/nts-keys";
            TimeSpan rotation = keys.TryGetValue("rotation", out YamlNode? rot)
                ? Duration(rot, "nts-ke.keys.rotation", TimeSpan.FromMinutes(1), TimeSpan.FromDays(30), TimeSpan.FromHours(24))
                : TimeSpan.FromHours(24);
            int keep = keys.TryGetValue("keep", out YamlNode? kp) ? Integer(kp, "nts-ke.keys.keep", 1, 1000, 7) : 7;
            string? fleet = keys.TryGetValue("fleet-secret", out YamlNode? fs) && !IsNull(fs) ? Scalar(fs, "nts-ke.keys.fleet-secret") : null;
            if (fleet is not null && !File.Exists(fleet))
            {
                Error(fs!, $"nts-ke.keys.fleet-secret: no file {fleet}", "point it at a file of at least 32 random bytes, e.g. made with: head -c 32 /dev/urandom > fleet.key; chmod 600 fleet.key");
            }

            string? ntpServer = null;
            ushort? ntpPort = ntp.Listen.Count > 0 && ntp.Listen[0].Port != 123 ? (ushort)ntp.Listen[0].Port : null;
            if (nts.TryGetValue("ntp-server", out YamlNode? ns) && !IsNull(ns) && Scalar(ns, "nts-ke.ntp-server") is { } server)
            {
                // "host" or "host:port" (an IPv6 literal in brackets): the Server and Port records (RFC 8915 §4.1.7, §4.1.8).
                int colon = server.LastIndexOf(':');
                if (colon > 0 && colon > server.LastIndexOf(']') && ushort.TryParse(server[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out ushort p))
                {
                    ntpServer = server[..colon].Trim('[', ']');
                    ntpPort = p == 123 ? null : p;
                }
                else
                {
                    ntpServer = server.Trim('[', ']');
                    ntpPort = null;
                }
                if (ntpServer.Length == 0 || !System.Text.Ascii.IsValid(ntpServer))
                {
                    Error(ns, $"'nts-ke.ntp-server' is '{server}'", "write a host name or address, optionally with :port, e.g. ntp.example.net or 192.0.2.1:123");
                }
            }
            int maxConnections = nts.TryGetValue("max-connections", out YamlNode? mc) ? Integer(mc, "nts-ke.max-connections", 1, 100_000, 1000) : 1000;
            TimeSpan handshake = nts.TryGetValue("handshake-timeout", out YamlNode? ht)
                ? Duration(ht, "nts-ke.handshake-timeout", TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(5)) : TimeSpan.FromSeconds(5);
            TimeSpan idle = nts.TryGetValue("idle-timeout", out YamlNode? it)
                ? Duration(it, "nts-ke.idle-timeout", TimeSpan.FromMilliseconds(100), TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(5)) : TimeSpan.FromSeconds(5);
            int maxRequest = nts.TryGetValue("max-request", out YamlNode? mr) ? Integer(mr, "nts-ke.max-request", 64, 65536, 1024) : 1024;
            Dictionary<string, YamlNode> clientLimit = nts.TryGetValue("client-limit", out YamlNode? cl) ? Mapping(cl, "nts-ke.client-limit") ?? [] : [];
            int clientConnections = clientLimit.TryGetValue("connections", out YamlNode? cc) ? Integer(cc, "nts-ke.client-limit.connections", 1, 100_000, 20) : 20;
            TimeSpan clientInterval = clientLimit.TryGetValue("interval", out YamlNode? ci)
                ? Duration(ci, "nts-ke.client-limit.interval", TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), TimeSpan.FromSeconds(10)) : TimeSpan.FromSeconds(10);
            return new NtsKeConfig(listen, certificate, privateKey, new NtsKeysConfig(storage, rotation, keep, fleet), ntpServer, ntpPort,
                maxConnections, handshake, idle, maxRequest, clientConnections, clientInterval);
        }

        private string RequiredFile(Dictionary<string, YamlNode> section, YamlNode sectionNode, string key, string what)
        {
            if (!section.TryGetValue(key, out YamlNode? node) || Scalar(node, $"nts-ke.{key}") is not { } path)
            {
                Error(sectionNode, $"nts-ke.{key} is missing", $"set nts-ke.{key} to {what}");
                return "";
            }
            if (!File.Exists(path))
            {
                Error(node, $"nts-ke.{key}: no file {path}", $"set it to {what}, readable by the appliance");
            }
            return path;
        }

        private ClockConfig BindClock(Dictionary<string, YamlNode> top, YamlNode root, int sources)
        {
            Dictionary<string, YamlNode> clock = Section(top, "clock");
            var mode = ClockMode.Kernel;
            if (clock.TryGetValue("mode", out YamlNode? modeNode) && Scalar(modeNode, "clock.mode") is { } modeText)
            {
                switch (modeText)
                {
                    case "kernel": mode = ClockMode.Kernel; break;
                    case "software": mode = ClockMode.Software; break;
                    default:
                        Error(modeNode, $"clock.mode is '{modeText}'", "use 'kernel' (steer the system clock) or 'software' (never touch it)");
                        break;
                }
            }
            LocalReferenceConfig? local = null;
            if (clock.TryGetValue("local", out YamlNode? localNode) && !IsNull(localNode))
            {
                Dictionary<string, YamlNode>? map = Mapping(localNode, "clock.local");
                if (map is not null)
                {
                    byte stratum = 10;
                    if (map.TryGetValue("stratum", out YamlNode? stratumNode))
                    {
                        stratum = (byte)Integer(stratumNode, "clock.local.stratum", 1, 15, 10);
                    }
                    local = new LocalReferenceConfig(stratum);
                }
            }
            if (local is null && sources == 0)
            {
                Error(top.GetValueOrDefault("clock") ?? root,
                    "no time source: neither sources nor clock.local is set",
                    "list upstream servers under sources (e.g. sources: [{ address: \"ntp.example.net\" }]), or set clock.local: { stratum: 10 } to serve the host clock");
            }
            string? leapSeconds = null;
            if (clock.TryGetValue("leap-seconds", out YamlNode? leapNode) && !IsNull(leapNode) && Scalar(leapNode, "clock.leap-seconds") is { } leapPath)
            {
                leapSeconds = leapPath;
                if (!File.Exists(leapPath))
                {
                    Error(leapNode, $"clock.leap-seconds: no file {leapPath}",
                        "point it at the IERS/NIST list, e.g. /usr/share/zoneinfo/leap-seconds.list (Debian package tzdata)");
                }
            }
            TimeSpan? holdover = clock.TryGetValue("holdover", out YamlNode? h)
                ? Duration(h, "clock.holdover", TimeSpan.Zero, TimeSpan.FromDays(30), TimeSpan.FromHours(12)) : null;
            TimeSpan? step = clock.TryGetValue("step-threshold", out YamlNode? st)
                ? Duration(st, "clock.step-threshold", TimeSpan.FromMilliseconds(1), TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(128)) : null;
            TimeSpan? panic = clock.TryGetValue("panic-threshold", out YamlNode? p)
                ? Duration(p, "clock.panic-threshold", TimeSpan.FromSeconds(1), TimeSpan.FromDays(36500), TimeSpan.FromSeconds(1000)) : null;
            int minSources = clock.TryGetValue("min-sources", out YamlNode? ms) ? Integer(ms, "clock.min-sources", 1, 16, 1) : 1;
            return new ClockConfig(mode, local, leapSeconds, holdover, step, panic, minSources);
        }

        private List<SourceConfig> BindSources(Dictionary<string, YamlNode> top)
        {
            var sources = new List<SourceConfig>();
            if (!top.TryGetValue("sources", out YamlNode? node) || IsNull(node))
            {
                return sources;
            }
            foreach (YamlNode item in Sequence(node, "sources"))
            {
                // An entry names its kind: { ntp: "host[:port]" } or { ntp: { address: "host[:port]", nts: true, ... } }.
                Dictionary<string, YamlNode>? kinds = Mapping(item, "sources[]");
                if (kinds is null)
                {
                    continue;
                }
                if (kinds.Count != 1)
                {
                    Error(item, "a source must name exactly one kind", "write - ntp: { address: \"ntp.example.net\" }");
                    continue;
                }
                SourceConfig? source = kinds.Keys.Single() switch
                {
                    "ntp" => BindNtpSource(kinds["ntp"]),
                    "gpsd" => BindGpsdSource(kinds["gpsd"]),
                    "pps" => BindPpsSource(kinds["pps"]),
                    "phc" => BindPhcSource(kinds["phc"]),
                    "ptp" => BindPtpSource(kinds["ptp"]),
                    _ => null,
                };
                if (source is not null)
                {
                    sources.Add(source);
                }
            }
            return sources;
        }

        private string? Device(Dictionary<string, YamlNode> entry, YamlNode node, string path, string example, string missing)
        {
            if (!entry.TryGetValue("device", out YamlNode? d) || Scalar(d, $"{path}.device") is not { } device)
            {
                Error(node, $"{path} has no device", $"write {path[(path.LastIndexOf('.') + 1)..]}: {{ device: {example} }}");
                return null;
            }
            if (!File.Exists(device))
            {
                Error(d, $"{path}.device: no device {device}", missing);
                return null;
            }
            return device;
        }

        private PpsSourceConfig? BindPpsSource(YamlNode node)
        {
            const string path = "sources[].pps";
            Dictionary<string, YamlNode> entry = node is YamlMappingNode ? Mapping(node, path) ?? [] : new() { ["device"] = node };
            string? device = Device(entry, node, path, "/dev/pps0",
                "check ls /dev/pps*: the kernel creates one per PPS client (pps-gpio, pps-ldisc on a serial port's DCD)");
            bool clear = false;
            if (entry.TryGetValue("edge", out YamlNode? e) && Scalar(e, $"{path}.edge") is { } edge)
            {
                clear = edge == "clear";
                if (edge is not ("assert" or "clear"))
                {
                    Error(e, $"'{path}.edge' is '{edge}'", "use assert (the usual on-time edge) or clear");
                }
            }
            string? lockTo = entry.TryGetValue("lock", out YamlNode? l) ? Scalar(l, $"{path}.lock") : null;
            TimeSpan deviation = entry.TryGetValue("max-deviation", out YamlNode? m)
                ? Duration(m, $"{path}.max-deviation", TimeSpan.FromMicroseconds(1), TimeSpan.FromMilliseconds(100), TimeSpan.FromMicroseconds(100))
                : TimeSpan.FromMicroseconds(100);
            return device is null ? null : new PpsSourceConfig(device, clear, lockTo, deviation);
        }

        private PhcSourceConfig? BindPhcSource(YamlNode node)
        {
            const string path = "sources[].phc";
            Dictionary<string, YamlNode> entry = node is YamlMappingNode ? Mapping(node, path) ?? [] : new() { ["device"] = node };
            string? device = Device(entry, node, path, "/dev/ptp0",
                "check ls /sys/class/ptp: a NIC with a hardware clock (ethtool -T shows 'PTP Hardware Clock: N'), or ptp_kvm in a VM");
            int poll = entry.TryGetValue("poll", out YamlNode? p) ? Integer(p, $"{path}.poll", -4, 6, 0) : 0;
            TimeSpan utc = entry.TryGetValue("utc-offset", out YamlNode? u)
                ? Duration(u, $"{path}.utc-offset", TimeSpan.Zero, TimeSpan.FromSeconds(100), TimeSpan.FromSeconds(37)) : TimeSpan.FromSeconds(37);
            return device is null ? null : new PhcSourceConfig(device, poll, utc);
        }

        private PtpSourceConfig? BindPtpSource(YamlNode node)
        {
            const string path = "sources[].ptp";
            Dictionary<string, YamlNode> entry = node is YamlMappingNode ? Mapping(node, path) ?? [] : new() { ["interface"] = node };
            if (!entry.TryGetValue("interface", out YamlNode? i) || Scalar(i, $"{path}.interface") is not { } nic)
            {
                Error(node, "a ptp source has no interface", "write - ptp: { interface: eth0 } (the interface the grandmaster is reached on)");
                return null;
            }
            byte domain = entry.TryGetValue("domain", out YamlNode? d) ? (byte)Integer(d, $"{path}.domain", 0, 255, 0) : (byte)0;
            int interval = entry.TryGetValue("delay-interval", out YamlNode? v) ? Integer(v, $"{path}.delay-interval", -4, 6, 0) : 0;
            return new PtpSourceConfig(nic, domain, interval);
        }

        private GpsdSourceConfig? BindGpsdSource(YamlNode node)
        {
            const string path = "sources[].gpsd";
            Dictionary<string, YamlNode> entry = node is YamlMappingNode ? Mapping(node, path) ?? [] : new() { ["address"] = node };
            string address = entry.TryGetValue("address", out YamlNode? a) ? Scalar(a, $"{path}.address") ?? "" : "127.0.0.1:2947";
            if (!TryHostPort(address, 2947, out string host, out int port))
            {
                Error(a ?? node, $"gpsd address '{address}' is not host[:port]", "write gpsd's TCP address, e.g. 127.0.0.1:2947 (gpsd -S sets the port)");
                return null;
            }
            bool pps = !entry.TryGetValue("pps", out YamlNode? p) || Boolean(p, $"{path}.pps");
            TimeSpan delay = entry.TryGetValue("delay", out YamlNode? d)
                ? Duration(d, $"{path}.delay", TimeSpan.Zero, TimeSpan.FromSeconds(1), TimeSpan.FromMilliseconds(200)) : TimeSpan.FromMilliseconds(200);
            TimeSpan offset = TimeSpan.Zero;
            if (entry.TryGetValue("offset", out YamlNode? o) && Scalar(o, $"{path}.offset") is { } text)
            {
                // A signed duration: the receiver's serial time can be late (positive) or, rarely, early.
                bool negative = text.StartsWith('-');
                if (DurationText.TryParse(negative ? text[1..] : text, out TimeSpan magnitude) && magnitude <= TimeSpan.FromSeconds(1))
                {
                    offset = negative ? -magnitude : magnitude;
                }
                else
                {
                    Error(o, $"'{path}.offset' is '{text}'", "write a duration up to 1s, optionally negative, e.g. 35ms or -5ms");
                }
            }
            int satellites = entry.TryGetValue("min-satellites", out YamlNode? m) ? Integer(m, $"{path}.min-satellites", 0, 32, 4) : 4;
            return new GpsdSourceConfig(host, port, pps, delay, offset, satellites);
        }

        private NtpSourceConfig? BindNtpSource(YamlNode node)
        {
            const string path = "sources[].ntp";
            Dictionary<string, YamlNode> entry = node is YamlMappingNode ? Mapping(node, path) ?? [] : new() { ["address"] = node };
            if (!entry.TryGetValue("address", out YamlNode? addressNode) || Scalar(addressNode, $"{path}.address") is not { } address)
            {
                Error(node, "an ntp source has no address", "write - ntp: { address: \"ntp.example.net\" } or - ntp: { address: \"time.example.net:4460\", nts: true }");
                return null;
            }
            bool nts = entry.TryGetValue("nts", out YamlNode? n) && Boolean(n, $"{path}.nts");
            if (!TryHostPort(address, nts ? 4460 : 123, out string host, out int port))
            {
                Error(addressNode, $"source address '{address}' is not host[:port]",
                    "write a host name or address with an optional port: ntp.example.net, 192.0.2.1:123, [2001:db8::1]:123");
                return null;
            }
            string? name = entry.TryGetValue("name", out YamlNode? nm) ? Scalar(nm, $"{path}.name") : null;
            string? trust = entry.TryGetValue("trust", out YamlNode? tr) ? Scalar(tr, $"{path}.trust") : null;
            if (trust is not null && !File.Exists(trust))
            {
                Error(tr!, $"{path}.trust: no file {trust}", "point it at a PEM file of the CA certificates to trust for this source");
            }
            if (!nts && (name is not null || trust is not null))
            {
                Error(node, $"source {address}: name and trust only apply to NTS", "add nts: true, or remove name/trust");
            }
            bool iburst = !entry.TryGetValue("iburst", out YamlNode? ib) || Boolean(ib, $"{path}.iburst");
            int minPoll = entry.TryGetValue("minpoll", out YamlNode? mn) ? Integer(mn, $"{path}.minpoll", -4, 17, 6) : 6;
            int maxPoll = entry.TryGetValue("maxpoll", out YamlNode? mx) ? Integer(mx, $"{path}.maxpoll", -4, 17, 10) : Math.Max(10, minPoll);
            if (minPoll > maxPoll)
            {
                Error(node, $"source {address}: minpoll {minPoll} is above maxpoll {maxPoll}", "make minpoll ≤ maxpoll (log2 seconds: 6 = 64 s, 10 = 1024 s)");
                return null;
            }
            return new NtpSourceConfig(host, port, nts, name, trust, iburst, minPoll, maxPoll);
        }

        private static bool TryHostPort(string text, int defaultPort, out string host, out int port)
        {
            port = defaultPort;
            host = text;
            if (text.StartsWith('['))
            {
                int close = text.IndexOf(']', StringComparison.Ordinal);
                if (close < 0)
                {
                    return false;
                }
                host = text[1..close];
                string rest = text[(close + 1)..];
                return IPAddress.TryParse(host, out _) && (rest.Length == 0 || (rest[0] == ':' && int.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out port) && port is > 0 and < 65536));
            }
            if (text.Count(c => c == ':') > 1)
            {
                return IPAddress.TryParse(text, out _); // a bare IPv6 literal
            }
            int colon = text.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0)
            {
                host = text[..colon];
                if (!int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is <= 0 or >= 65536)
                {
                    return false;
                }
            }
            return host.Length > 0 && Uri.CheckHostName(host) != UriHostNameType.Unknown;
        }

        private MetricsConfig BindMetrics(Dictionary<string, YamlNode> top)
        {
            Dictionary<string, YamlNode> metrics = Section(top, "metrics");
            IPEndPoint? listen = new(IPAddress.Loopback, 9975);
            if (metrics.TryGetValue("listen", out YamlNode? node))
            {
                listen = IsNull(node) || node is YamlScalarNode { Value: "off" } ? null : Endpoint(node, "metrics.listen");
            }
            return new MetricsConfig(listen);
        }

        private Dictionary<string, YamlNode> Section(Dictionary<string, YamlNode> parent, string path) =>
            parent.TryGetValue(path[(path.LastIndexOf('.') + 1)..], out YamlNode? node) && !IsNull(node)
                ? Mapping(node, path) ?? []
                : [];

        /// <summary>A mapping whose keys are checked against the schema; null (and an error) otherwise.</summary>
        private Dictionary<string, YamlNode>? Mapping(YamlNode node, string path)
        {
            string where = path.Length == 0 ? "the top level" : $"'{path}'";
            if (node is not YamlMappingNode mapping)
            {
                Error(node, $"{where} must be a mapping of keys to values", $"write {where} as 'key: value' lines or {{ key: value }}");
                return null;
            }
            IReadOnlyList<string> allowed = ConfigSchema.ChildrenOf(path);
            var result = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
            foreach ((YamlNode keyNode, YamlNode value) in mapping.Children)
            {
                string key = (keyNode as YamlScalarNode)?.Value ?? "";
                string full = path.Length == 0 ? key : $"{path}.{key}";
                if (!allowed.Contains(key))
                {
                    string suggestion = Closest(key, allowed) is { } near ? $"did you mean '{near}'? " : "";
                    Error(keyNode, $"unknown key '{full}'",
                        $"{suggestion}keys allowed in {where}: {string.Join(", ", allowed)} (see docs/configuration.md)");
                }
                else if (!result.TryAdd(key, value))
                {
                    Error(keyNode, $"duplicate key '{full}'", "keep one of them");
                }
            }
            return result;
        }

        private IEnumerable<YamlNode> Sequence(YamlNode node, string path)
        {
            if (node is YamlSequenceNode sequence)
            {
                return sequence.Children;
            }
            Error(node, $"'{path}' must be a list", $"write it as [\"a\", \"b\"] or as lines starting with '- '");
            return [];
        }

        private string? Scalar(YamlNode node, string path)
        {
            if (node is YamlScalarNode { Value: { } value })
            {
                return value;
            }
            Error(node, $"'{path}' must be a single value", "write one value, not a list or mapping");
            return null;
        }

        private int Integer(YamlNode node, string path, int min, int max, int fallback, string alternative = "")
        {
            string? text = Scalar(node, path);
            if (text is null)
            {
                return fallback;
            }
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            {
                Error(node, $"'{path}' is '{text}'", $"use a whole number from {min} to {max}{(alternative.Length > 0 ? " " + alternative : "")}");
                return fallback;
            }
            return value;
        }

        private bool Boolean(YamlNode node, string path)
        {
            switch (Scalar(node, path))
            {
                case "true": return true;
                case "false": return false;
                case null: return false;
                case string text:
                    Error(node, $"'{path}' is '{text}'", "use true or false");
                    return false;
            }
        }

        /// <summary>A duration such as 500ms, 2s, 15m, 24h, 7d.</summary>
        private TimeSpan Duration(YamlNode node, string path, TimeSpan min, TimeSpan max, TimeSpan fallback)
        {
            string? text = Scalar(node, path);
            if (text is null)
            {
                return fallback;
            }
            if (DurationText.TryParse(text, out TimeSpan value) && value >= min && value <= max)
            {
                return value;
            }
            Error(node, $"'{path}' is '{text}'", $"write a duration from {DurationText.Format(min)} to {DurationText.Format(max)} with a unit: ms, s, m, h or d (e.g. 2s, 24h)");
            return fallback;
        }

        private IPEndPoint? Endpoint(YamlNode node, string path)
        {
            string? text = Scalar(node, path);
            if (text is null)
            {
                return null;
            }
            if (IPEndPoint.TryParse(text, out IPEndPoint? endPoint) && HasExplicitPort(text))
            {
                return endPoint;
            }
            Error(node, $"'{path}' has '{text}', which is not an address:port",
                "write an IP literal and a port: \"127.0.0.1:123\", \"[::1]:123\", \"0.0.0.0:123\" or \"[::]:123\"");
            return null;
        }

        private static bool HasExplicitPort(string text)
        {
            int colon = text.LastIndexOf(':');
            int bracket = text.LastIndexOf(']');
            return colon > 0 && colon > bracket && (text.Contains('.', StringComparison.Ordinal) || bracket > 0);
        }

        private static bool IsNull(YamlNode node) =>
            node is YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" };

        private static string? Closest(string key, IReadOnlyList<string> candidates)
        {
            string? best = null;
            int bestDistance = 3;
            foreach (string candidate in candidates)
            {
                int distance = Levenshtein(key, candidate);
                if (distance < bestDistance)
                {
                    best = candidate;
                    bestDistance = distance;
                }
            }
            return best;
        }

        private static int Levenshtein(string a, string b)
        {
            var previous = new int[b.Length + 1];
            var current = new int[b.Length + 1];
            for (int j = 0; j <= b.Length; j++)
            {
                previous[j] = j;
            }
            for (int i = 1; i <= a.Length; i++)
            {
                current[0] = i;
                for (int j = 1; j <= b.Length; j++)
                {
                    int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                    current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
                }
                (previous, current) = (current, previous);
            }
            return previous[b.Length];
        }
    }
}
