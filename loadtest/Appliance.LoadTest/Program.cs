using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Appliance.LoadTest;

/// <summary>
/// appliance-loadtest: an open-loop NTP (and NTS) load generator. `run` holds one rate; `ramp` steps
/// the rate until loss passes a threshold; `--vs` alternates two servers step by step in one run.
/// </summary>
public static class Program
{
    private const int ExitUsage = 2;
    private static readonly TimeSpan s_maxStep = TimeSpan.FromMinutes(10);
    private const int MaxSteps = 200;

    public static int Main(string[] args) => BuildCommand().Parse(args).Invoke();

    private sealed record Common(
        IPEndPoint Target, IPEndPoint? Versus, int Clients, string? Source, int Ports, int Batch, int? Cpu,
        int? Pid, int? VersusPid, string? Json, string? Plot, string? Namespace, bool AllowRemote, double Loss, TimeSpan Warmup,
        bool Nts, bool Interleaved, NtsKeTarget? Ke, NtsKeTarget? VersusKe, string? VersusProtocol,
        int SpoofedSources, int Seed, IPAddress? Legit, int LegitClients, TimeSpan LegitInterval, int Pollers);

    /// <summary>Where a target's NTS-KE is, the name its certificate carries, and what to trust.</summary>
    private sealed record NtsKeTarget(IPEndPoint EndPoint, string Name, System.Security.Cryptography.X509Certificates.X509Certificate2Collection? Trust);

    public static RootCommand BuildCommand()
    {
        var target = new Argument<string>("TARGET") { Description = "server address:port, e.g. 127.0.0.1:11123 or [::1]:123" };
        var versus = new Option<string?>("--vs") { Description = "a second server, alternated with TARGET step by step (adds a ratio column)" };
        var clients = new Option<int>("--clients") { DefaultValueFactory = _ => 64, Description = "source addresses (simulated client hosts)" };
        var source = new Option<string?>("--source") { Description = "where source addresses start (default 127.100.0.1 for IPv4, ::1 for IPv6); they must be local addresses" };
        var ports = new Option<int>("--ports") { DefaultValueFactory = _ => 4, Description = "source ports per address (one socket each)" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 64, Description = "datagrams per sendmmsg/recvmmsg" };
        var cpu = new Option<int?>("--cpu") { Description = "pin the generator to this CPU" };
        var pid = new Option<int?>("--pid") { Description = "TARGET's process id: report its CPU µs per response and peak RSS" };
        var versusPid = new Option<int?>("--vs-pid") { Description = "the --vs server's process id" };
        var json = new Option<string?>("--json") { Description = "write the results as JSON to this file ('-' for standard output)" };
        var plot = new Option<string?>("--plot") { Description = "draw rate against loss and p99 delay into this SVG file" };
        var netns = new Option<string?>("--netns") { Description = "create the generator's sockets inside this network namespace" };
        var allowRemote = new Option<bool>("--allow-remote") { Description = $"allow targets outside {TargetGuard.SafeRanges}" };
        var loss = new Option<double>("--loss") { DefaultValueFactory = _ => 1.0, Description = "loss threshold in percent for 'held'" };
        var warmup = new Option<string>("--warmup") { DefaultValueFactory = _ => "1s", Description = "traffic at each step's rate before measuring (0s: none)" };
        var nts = new Option<bool>("--nts") { Description = "send NTS-authenticated requests (each client does its own NTS-KE first)" };
        var interleaved = new Option<bool>("--interleaved") { Description = "send plain requests as interleaved clients do (RFC 9769, chrony's xleave): each names an earlier response's receive timestamp, and the server answers with that response's transmit timestamp" };
        var ntske = new Option<string?>("--ntske") { Description = "TARGET's NTS-KE address:port (with --nts)" };
        var ntskeName = new Option<string>("--ntske-name") { DefaultValueFactory = _ => "localhost", Description = "the name TARGET's certificate must carry" };
        var ca = new Option<string?>("--ca") { Description = "PEM file of certificates to trust for TARGET's NTS-KE (default: the system's)" };
        var vsNtske = new Option<string?>("--vs-ntske") { Description = "the --vs server's NTS-KE address:port" };
        var vsNtskeName = new Option<string>("--vs-ntske-name") { DefaultValueFactory = _ => "localhost", Description = "the name the --vs server's certificate must carry" };
        var vsCa = new Option<string?>("--vs-ca") { Description = "PEM file to trust for the --vs server's NTS-KE" };
        var vsProtocol = new Option<string?>("--vs-protocol") { Description = "ntp, interleaved or nts for the --vs target (default: as TARGET); with --vs TARGET itself this compares two protocols on one server" };
        var sourcesOption = new Option<string?>("--sources") { Description = "random:N: a flood from N distinct random addresses of 127.0.0.0/8 (plain NTP, loopback target), each datagram's source set with IP_PKTINFO on --ports wildcard sockets, instead of --clients × --ports sockets" };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1, Description = "seeds the random source addresses of --sources" };
        var legit = new Option<string?>("--legit") { Description = "a legitimate client on this address (e.g. 127.99.0.1) polling TARGET beside the load; its share of answers is reported apart" };
        var legitInterval = new Option<string>("--legit-interval") { DefaultValueFactory = _ => "1s", Description = "each legitimate client's poll interval" };
        var pollers = new Option<int>("--pollers") { Description = "count answers fresh or stale as for N clients polling in turn (each polls again N requests later, as ntpperf's do): stale answers came after their client's next request; 0: do not count" };
        var legitClients = new Option<int>("--legit-clients") { DefaultValueFactory = _ => 1, Description = "legitimate clients on consecutive addresses from --legit, taking turns" };

        Common Read(ParseResult p) => new(
            ParseEndPoint(p.GetValue(target)!), p.GetValue(versus) is { } v ? ParseEndPoint(v) : null,
            p.GetValue(clients), p.GetValue(source), p.GetValue(ports), p.GetValue(batch), p.GetValue(cpu), p.GetValue(pid),
            p.GetValue(versusPid), p.GetValue(json), p.GetValue(plot), p.GetValue(netns), p.GetValue(allowRemote), p.GetValue(loss),
            ParseDuration(p.GetValue(warmup)!), p.GetValue(nts), p.GetValue(interleaved),
            KeTarget(p.GetValue(ntske), p.GetValue(ntskeName)!, p.GetValue(ca)),
            KeTarget(p.GetValue(vsNtske), p.GetValue(vsNtskeName)!, p.GetValue(vsCa)), p.GetValue(vsProtocol),
            ParseSources(p.GetValue(sourcesOption)), p.GetValue(seed), p.GetValue(legit) is { } l ? IPAddress.Parse(l) : null, p.GetValue(legitClients),
            ParseDuration(p.GetValue(legitInterval)!), p.GetValue(pollers));

        void AddCommon(Command c)
        {
            c.Arguments.Add(target);
            foreach (Option o in (Option[])[versus, clients, source, ports, batch, cpu, pid, versusPid, json, plot, netns, allowRemote, loss, warmup, nts, interleaved, ntske, ntskeName, ca, vsNtske, vsNtskeName, vsCa, vsProtocol, sourcesOption, seed, legit, legitClients, legitInterval, pollers])
            {
                c.Options.Add(o);
            }
        }

        var rate = new Option<double>("--rate") { Required = true, Description = "requests per second" };
        var duration = new Option<string>("--duration") { DefaultValueFactory = _ => "5s", Description = "how long (e.g. 5s, 1m; at most 10m)" };
        var run = new Command("run", "Send at one rate for a fixed time.") { rate, duration };
        AddCommon(run);
        run.SetAction((p, token) => Execute(Read(p), "run", [p.GetValue(rate)], ParseDuration(p.GetValue(duration)!), token));

        var from = new Option<double>("--from") { DefaultValueFactory = _ => 10_000, Description = "first rate" };
        var to = new Option<double>("--to") { DefaultValueFactory = _ => 2_000_000, Description = "last rate (stops earlier when loss passes --loss)" };
        var step = new Option<double?>("--step") { Description = "add this much each step (default: multiply by --factor)" };
        var factor = new Option<double>("--factor") { DefaultValueFactory = _ => 1.25, Description = "multiply the rate by this each step" };
        var stepDuration = new Option<string>("--step-duration") { DefaultValueFactory = _ => "3s", Description = "time per step" };
        var ramp = new Command("ramp", "Step the rate up until loss passes --loss; report the highest rate held.") { from, to, step, factor, stepDuration };
        AddCommon(ramp);
        ramp.SetAction((p, token) =>
        {
            var rates = new List<double>();
            for (double r = p.GetValue(from); r <= p.GetValue(to) && rates.Count < MaxSteps; r = p.GetValue(step) is { } s ? r + s : r * p.GetValue(factor))
            {
                rates.Add(Math.Round(r));
            }
            return Execute(Read(p), "ramp", rates, ParseDuration(p.GetValue(stepDuration)!), token);
        });

        var root = new RootCommand("appliance-loadtest: open-loop NTP load from many simulated clients, with every response validated.");
        root.Subcommands.Add(run);
        root.Subcommands.Add(ramp);
        root.Subcommands.Add(HandshakeCommand.Build());
        root.Subcommands.Add(RoughtimeCommand.Build());
        return root;
    }

    private static async Task<int> Execute(Common c, string mode, IReadOnlyList<double> rates, TimeSpan stepDuration, CancellationToken token)
    {
        foreach (IPEndPoint? t in (IPEndPoint?[])[c.Target, c.Versus])
        {
            if (t is not null && !c.AllowRemote && !TargetGuard.IsSafe(t.Address))
            {
                Console.Error.WriteLine($"appliance-loadtest: refusing to load {t}: only {TargetGuard.SafeRanges} without --allow-remote");
                return ExitUsage;
            }
        }
        if (stepDuration <= TimeSpan.Zero || stepDuration > s_maxStep)
        {
            Console.Error.WriteLine($"appliance-loadtest: a step lasts between 1 ms and {s_maxStep.TotalMinutes} minutes");
            return ExitUsage;
        }
        if (c.Versus is not null && c.Versus.AddressFamily != c.Target.AddressFamily)
        {
            Console.Error.WriteLine("appliance-loadtest: TARGET and --vs must be the same address family");
            return ExitUsage;
        }

        if (c.SpoofedSources > 0 && (c.Nts || c.Target.AddressFamily != AddressFamily.InterNetwork || !IPAddress.IsLoopback(c.Target.Address)
            || (c.Versus is { } vs && !IPAddress.IsLoopback(vs.Address))))
        {
            // 127.0.0.0/8 is local only on loopback; and NTS clients each need their own NTS-KE.
            Console.Error.WriteLine("appliance-loadtest: --sources random:N sends plain NTP to a 127.0.0.0/8 target");
            return ExitUsage;
        }
        if (c.Interleaved && (c.Nts || c.SpoofedSources > 0))
        {
            // An interleaved client names its own earlier responses: one source address per client.
            Console.Error.WriteLine("appliance-loadtest: --interleaved sends plain NTP from --clients × --ports sockets, without --nts or --sources");
            return ExitUsage;
        }
        if (c.Pollers is < 0 or > 1 << 19)
        {
            Console.Error.WriteLine("appliance-loadtest: --pollers is 0 (off) to 524288");
            return ExitUsage;
        }
        if (c.LegitInterval <= TimeSpan.Zero || c.LegitClients is < 1 or > 4096)
        {
            Console.Error.WriteLine("appliance-loadtest: --legit-interval must be positive and --legit-clients from 1 to 4096");
            return ExitUsage;
        }
        IReadOnlyList<IPAddress> sources = Sources(c);
        using var generator = new Generator(new GeneratorOptions
        {
            Sources = sources,
            Ports = c.Ports,
            BatchSize = c.Batch,
            Cpu = c.Cpu,
            Namespace = c.Namespace,
            Warmup = c.Warmup,
            SpoofedSources = c.SpoofedSources,
            Seed = c.Seed,
            LegitClient = c.Legit,
            LegitClients = c.LegitClients,
            LegitInterval = c.LegitInterval,
            Pollers = c.Pollers,
        });
        // Each target: where it is, how it is spoken to, what it is called in the report.
        var targets = new List<(IPEndPoint EndPoint, IRequestCodec Codec, ProcessProbe? Probe, string Label)>();
        string protocol = c.Nts ? "nts" : c.Interleaved ? "interleaved" : "ntp";
        foreach ((IPEndPoint? endPoint, NtsKeTarget? ke, string speaks, int? pid) in (ValueTuple<IPEndPoint?, NtsKeTarget?, string, int?>[])
            [(c.Target, c.Ke, protocol, c.Pid), (c.Versus, c.VersusKe ?? c.Ke, c.VersusProtocol ?? protocol, c.VersusPid ?? c.Pid)])
        {
            if (endPoint is null)
            {
                continue;
            }
            IRequestCodec codec;
            if (speaks == "ntp")
            {
                codec = new NtpCodec();
            }
            else if (speaks == "interleaved")
            {
                codec = new InterleavedCodec(generator.Clients);
            }
            else if (speaks != "nts")
            {
                Console.Error.WriteLine($"appliance-loadtest: --vs-protocol is ntp, interleaved or nts, not '{speaks}'");
                return ExitUsage;
            }
            else if (ke is null)
            {
                Console.Error.WriteLine($"appliance-loadtest: NTS to {endPoint} needs its NTS-KE address (--ntske / --vs-ntske)");
                return ExitUsage;
            }
            else
            {
                Console.Error.WriteLine($"appliance-loadtest: NTS-KE with {ke.EndPoint} for {generator.Clients} clients");
                codec = await NtsCodec.CreateAsync(ke.EndPoint, ke.Name, ke.Trust, generator.Clients, token);
            }
            string label = c.Versus is not null && c.Versus.Equals(c.Target) ? $"{endPoint} ({codec.Name})" : endPoint.ToString();
            targets.Add((endPoint, codec, pid is int id ? new ProcessProbe(id) : null, label));
        }
        bool live = !Console.IsErrorRedirected;
        Console.Error.WriteLine(c.SpoofedSources > 0
            ? Inv($"appliance-loadtest: {mode}, {generator.Clients} random source addresses in 127.0.0.0/8 on {c.Ports} wildcard socket(s), {rates.Count} step(s) of {stepDuration.TotalSeconds:0.###} s")
            : Inv($"appliance-loadtest: {mode}, {sources.Count} source address(es) × {c.Ports} port(s) = {generator.Clients} clients, {rates.Count} step(s) of {stepDuration.TotalSeconds:0.###} s"));

        var steps = new List<StepResult>();
        var failed = new HashSet<string>();
        // The generator runs on its own thread so that it can be pinned and never shares a core with continuations.
        await Task.Factory.StartNew(() =>
        {
            foreach (double rate in rates)
            {
                foreach ((IPEndPoint target, IRequestCodec codec, ProcessProbe? probe, string label) in targets)
                {
                    if (token.IsCancellationRequested || (mode == "ramp" && failed.Contains(label)))
                    {
                        continue;
                    }
                    Action<Progress>? show = live
                        ? p => Console.Error.Write(Inv($"\r{p.Target} {p.Rate:0}/s {p.Elapsed:0.0}s sent {p.Sent} loss {(p.Sent == 0 ? 0 : 100.0 * (p.Sent - p.Answered) / p.Sent):0.00}% delay p50 {p.DelayP50Micros:0}µs p99 {p.DelayP99Micros:0}µs   "))
                        : null;
                    StepResult result = generator.Run(target, codec, rate, stepDuration, probe, show, token, label);
                    if (mode == "ramp" && !result.Held(c.Loss) && !result.GeneratorLimited && !token.IsCancellationRequested)
                    {
                        // One retry: a shared host stalls now and then, and one stall should not end a ramp.
                        Console.Error.WriteLine(Inv($"{label} {rate:0}/s: loss {result.LossPercent:0.000}%, trying the step once more"));
                        result = generator.Run(target, codec, rate, stepDuration, probe, show, token, label);
                    }
                    steps.Add(result);
                    if (live)
                    {
                        Console.Error.Write('\r');
                    }
                    Console.Error.WriteLine(Inv($"{result.Target} {rate:0}/s: valid {result.ValidRate:0}/s, loss {result.LossPercent:0.000}%, invalid {result.Invalid}, KoD {result.Kod}, delay p99 {result.DelayP99Micros:0.0} µs{(result.GeneratorLimited ? " (generator-limited)" : "")}"));
                    if (result.Legit is { } l)
                    {
                        Console.Error.WriteLine(Inv($"{result.Target} {rate:0}/s: legitimate client(s) {l.Address} (× {l.Clients}): {l.Answered} of {l.Polls} polls answered ({l.SharePercent:0.00} %), KoD {l.Kod}"));
                    }
                    if (!result.Held(c.Loss))
                    {
                        failed.Add(label);
                    }
                }
                if (mode == "ramp" && targets.All(t => failed.Contains(t.Label)))
                {
                    break;
                }
            }
        }, token, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        var report = new RunReport(mode, c.Loss, steps);
        if (c.Json == "-")
        {
            Console.WriteLine(Report.Json(report));
        }
        else
        {
            Console.WriteLine(Report.Table(report));
            if (targets.Count == 2)
            {
                Console.WriteLine(Report.Comparison(report, targets[0].Label, targets[1].Label));
            }
            Console.WriteLine(Report.Summary(report));
            if (c.Json is { } path)
            {
                await File.WriteAllTextAsync(path, Report.Json(report), token);
            }
        }
        if (c.Plot is { } svg)
        {
            await File.WriteAllTextAsync(svg, Report.Svg(report), token);
        }
        return 0;
    }

    private static IReadOnlyList<IPAddress> Sources(Common c)
    {
        bool v6 = c.Target.AddressFamily == AddressFamily.InterNetworkV6;
        IPAddress first = c.Source is { } s ? IPAddress.Parse(s) : v6 ? IPAddress.IPv6Loopback : IPAddress.Parse("127.100.0.1");
        int count = v6 && c.Source is null ? 1 : Math.Max(1, c.Clients);
        byte[] bytes = first.GetAddressBytes();
        var list = new List<IPAddress>(count);
        for (int i = 0; i < count; i++)
        {
            list.Add(new IPAddress(bytes));
            for (int b = bytes.Length - 1; b >= 0 && ++bytes[b] == 0; b--)
            {
            }
        }
        return list;
    }

    /// <summary>"random:N" → N; absent → 0 (a socket per --clients address).</summary>
    internal static int ParseSources(string? text)
    {
        if (text is null)
        {
            return 0;
        }
        const string prefix = "random:";
        return text.StartsWith(prefix, StringComparison.Ordinal)
            && int.TryParse(text.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            && n is >= 1 and <= SpoofedSources.MaxCount
            ? n
            : throw new ArgumentException($"'{text}' is not random:N with N from 1 to {SpoofedSources.MaxCount} (e.g. random:65536)");
    }

    private static NtsKeTarget? KeTarget(string? endPoint, string name, string? ca)
    {
        if (endPoint is null)
        {
            return null;
        }
        System.Security.Cryptography.X509Certificates.X509Certificate2Collection? trust = null;
        if (ca is not null)
        {
            trust = [];
            trust.ImportFromPemFile(ca);
        }
        return new NtsKeTarget(ParseEndPoint(endPoint), name, trust);
    }

    internal static IPEndPoint ParseEndPoint(string text) =>
        IPEndPoint.TryParse(text, out IPEndPoint? ep) && ep.Port != 0
            ? ep
            : throw new ArgumentException($"'{text}' is not address:port (e.g. 127.0.0.1:11123 or [::1]:123)");

    internal static TimeSpan ParseDuration(string text)
    {
        (string unit, double seconds)[] units = [("ms", 0.001), ("s", 1), ("m", 60)];
        foreach ((string unit, double seconds) in units)
        {
            if (text.EndsWith(unit, StringComparison.Ordinal) && !(unit == "s" && text.EndsWith("ms", StringComparison.Ordinal))
                && double.TryParse(text[..^unit.Length], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double n))
            {
                return TimeSpan.FromSeconds(n * seconds);
            }
        }
        throw new ArgumentException($"'{text}' is not a duration (e.g. 500ms, 5s, 1m)");
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
