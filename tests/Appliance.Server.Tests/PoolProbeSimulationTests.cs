using System.Buffers.Binary;
using System.Net;
using Appliance.Protocol;
using Appliance.Server.Configuration;
using Appliance.Testing;
using Xunit.Abstractions;

namespace Appliance.Server.Tests;

/// <summary>
/// The shipped defaults against the NTP Pool's monitors, in simulated time: the pure responder and
/// rate limiter (Appliance.Protocol, "now" passed in) with the policy each shipped configuration
/// binds to, driven for three hours by the pool's monitors (three queries 2 s apart per check, checks
/// a few times an hour at irregular times, now and then an ad-hoc check straight after), beside a
/// flood at 100/s, a client at 1/s and a NAT'd address of pool clients. Every monitor query must be
/// answered with time and pass the monitor's own checks, no one gets a KoD, and the floods are limited
/// to exactly what the bucket arithmetic allows. docs/pool.md explains the numbers.
/// </summary>
public class PoolProbeSimulationTests(ITestOutputHelper output)
{
    private const long Second = 1_000_000_000L;
    private const long Minute = 60 * Second;
    private const long Hours = 3;
    private const long Duration = Hours * 60 * Minute;

    /// <summary>The limiter refills in 1/65536 of a token (RateLimiter.TokenUnit), truncated at each request.</summary>
    private const long TokenUnit = 1 << 16;

    /// <summary>Unix time of the simulation's start (2026-12-01T00:00:00Z).</summary>
    private const long T0 = 1_795_996_800L * Second;

    public static TheoryData<string> ShippedConfigurations => ["embedded default", "appliance image"];

    /// <summary>The configuration text as shipped: the embedded default, or the image's /etc/appliance/appliance.yaml.</summary>
    internal static string Shipped(string name) => name == "embedded default"
        ? ConfigLoader.EmbeddedDefaultText
        : File.ReadAllText(Repo.Path("appliance-image", "etc", "appliance.yaml"));

    private enum Role
    {
        Monitor,
        Flood,
        Steady,
        Nat,
    }

    private sealed record Client(string Name, Role Role, NetAddress Address);

    /// <summary>One query: when it arrives, from whom, and for a monitor which check and sample it belongs to.</summary>
    private readonly record struct Query(long At, int Client, int Check, int Sample);

    [Theory]
    [MemberData(nameof(ShippedConfigurations))]
    public void ShippedDefaults_AnswerEveryPoolMonitorQueryWithoutKod_ForThreeHours_AndLimitFloodsToTheBucketArithmetic(string configuration)
    {
        ConfigResult bound = ConfigLoader.Bind(Shipped(configuration));
        Assert.True(bound.IsValid, string.Join("\n", bound.Errors));
        NtpConfig ntp = bound.Config!.Ntp;
        // The defaults must limit a flood at all: rate limiting on, with no KoD (a KoD fails a monitor's whole check).
        RateLimitSettings rate = Assert.IsType<RateLimitSettings>(ntp.RateLimit);
        Assert.False(rate.Kod);
        Assert.Equal(DenyAction.Ignore, ntp.DenyAction);

        // One worker's table: the reuseport steering sends all of one source's requests to one worker.
        var limiter = new RateLimiter(rate, rate.Clients / ntp.EffectiveWorkers, 0x5EED_0001, 0x5EED_0002);
        var policy = new ServerPolicy(ntp.Access, ntp.DenyAction, limiter);
        ServerState state = Synchronised();

        var random = new Random(16);
        var clients = new List<Client>();
        var queries = new List<Query>();
        int checks = 0;

        // The monitors: the pool runs 7 active and 5 testing monitors per server, each from its own
        // address; here 6 over IPv4, 4 over IPv6 in /64s of their own, and 2 over IPv6 sharing one /64
        // (keyed together by the limiter) that check at the same moments.
        for (int m = 0; m < 12; m++)
        {
            string address = m switch
            {
                < 6 => $"203.0.113.{m + 1}",
                < 10 => $"2001:db8:{m}::53",
                10 => "2001:db8:99::a",
                _ => "2001:db8:99::b",
            };
            clients.Add(new Client($"monitor {address}", Role.Monitor, NetAddress.FromIPAddress(IPAddress.Parse(address))));
        }
        var schedules = new List<long>[12];
        for (int m = 0; m < 11; m++)
        {
            schedules[m] = CheckStarts(random);
        }
        schedules[11] = [.. schedules[10].Select(t => t + (Second / 2))];
        for (int m = 0; m < 12; m++)
        {
            // Each answer takes the monitor's round trip; the next query follows 2 s after it.
            long rtt = random.NextInt64(2_000_000, 300_000_000);
            foreach (long start in schedules[m])
            {
                for (int s = 0; s < PoolMonitor.Samples; s++)
                {
                    queries.Add(new Query(start + (s * (PoolMonitor.Spacing.Ticks * 100 + rtt)), m, checks, s));
                }
                checks++;
            }
        }

        // A flood from one address at 100/s, and a client asking once a second, both for the whole run.
        const long floodStep = Second / 100;
        int flood = Add(clients, "flood 198.51.100.100", Role.Flood, "198.51.100.100");
        long floodCount = Duration / floodStep;
        for (long i = 0; i < floodCount; i++)
        {
            queries.Add(new Query(i * floodStep, flood, -1, 0));
        }
        int steady = Add(clients, "1/s 198.51.100.101", Role.Steady, "198.51.100.101");
        long steadyCount = Duration / Second;
        for (long i = 0; i < steadyCount; i++)
        {
            queries.Add(new Query((Second * 3 / 10) + (i * Second), steady, -1, 0));
        }

        // A NAT'd address: 20 pool clients (chrony/ntpd at their 64 s poll) behind one public IPv4 address.
        int nat = Add(clients, "NAT 192.0.2.200", Role.Nat, "192.0.2.200");
        for (int c = 0; c < 20; c++)
        {
            for (long t = random.NextInt64(64 * Second); t < Duration; t += 64 * Second)
            {
                queries.Add(new Query(t, nat, -1, 0));
            }
        }

        queries.Sort((a, b) => a.At.CompareTo(b.At));
        var tally = new Dictionary<(int Client, ResponseAction, ResponseReason), long>();
        var monitorFailures = new List<string>();
        byte[] request = NtpQuery.ClientRequest(0);
        byte[] buffer = new byte[NtpHeader.Length];
        foreach (Query q in queries)
        {
            // A random transmit timestamp per query, as the monitor's client sends (its origin check).
            ulong nonce = (ulong)random.NextInt64();
            request.CopyTo(buffer, 0);
            BinaryPrimitives.WriteUInt64BigEndian(buffer.AsSpan(NtpHeader.TransmitOffset), nonce);
            long receive = T0 + q.At;
            var context = new RequestContext(clients[q.Client].Address, receive, NtpTimestamp.FromUnixNanoseconds(receive), Second + q.At);
            Outcome outcome = NtpResponder.Respond(buffer, buffer.Length, context, state, ref policy, out int length);
            (int, ResponseAction, ResponseReason) key = (q.Client, outcome.Action, outcome.Reason);
            tally[key] = tally.GetValueOrDefault(key) + 1;
            if (clients[q.Client].Role == Role.Monitor)
            {
                string? verdict = length == 0 ? "no answer" : Judge(buffer.AsSpan(0, length), nonce, receive);
                if (verdict is not null)
                {
                    monitorFailures.Add($"{clients[q.Client].Name} check {q.Check} sample {q.Sample} at {TimeSpan.FromTicks(q.At / 100)}: {verdict} ({outcome})");
                }
            }
        }

        long Count(int client, ResponseAction action, ResponseReason reason) => tally.GetValueOrDefault((client, action, reason));

        // Every monitor query answered with time that passes the monitor's checks: no KoD, no drop.
        Assert.Empty(monitorFailures);
        long monitorQueries = queries.Count(q => clients[q.Client].Role == Role.Monitor);
        Assert.Equal(checks * (long)PoolMonitor.Samples, monitorQueries);
        Assert.Equal(monitorQueries, Enumerable.Range(0, 12).Sum(m => Count(m, ResponseAction.Respond, ResponseReason.Served)));
        // "A few times an hour" at least, per monitor (the schedule really ran).
        Assert.All(schedules, s => Assert.True(s.Count >= 3 * Hours, $"{s.Count} checks"));
        // No KoD to anyone: kod is off by default.
        Assert.DoesNotContain(tally, t => t.Key.Item2 == ResponseAction.KissOfDeath);

        // The NAT'd address (0.31 requests/s in all) stays under one request per interval: all served.
        long natQueries = queries.Count(q => q.Client == nat);
        Assert.Equal(natQueries, Count(nat, ResponseAction.Respond, ResponseReason.Served));

        // The floods get the burst, then one request per interval: each request refills
        // floor(step * 65536 / interval) units of a token, so after N requests at a fixed step the
        // bucket has granted burst + floor((N - 1) * units / 65536). Beyond that, one in 2^leak of the
        // limited requests is still answered (the leak: a spoofed victim keeps its time), the rest dropped.
        long intervalNs = (long)(rate.Interval.TotalMicroseconds * 1000);
        AssertLimited(floodCount, floodStep, flood);
        AssertLimited(steadyCount, Second, steady);

        void AssertLimited(long sent, long step, int client)
        {
            long unitsPerRequest = step / 1000 * TokenUnit / (intervalNs / 1000);
            long allowed = rate.Burst + ((sent - 1) * unitsPerRequest / TokenUnit);
            Assert.Equal(allowed, Count(client, ResponseAction.Respond, ResponseReason.Served));
            // Within 0.25 % of the ideal burst + elapsed / interval: the truncation costs a flooder little.
            double ideal = rate.Burst + ((double)(sent - 1) * step / intervalNs);
            Assert.InRange((double)allowed, ideal * 0.9975, ideal);
            long limited = sent - allowed;
            long leaked = Count(client, ResponseAction.Respond, ResponseReason.RateLimited);
            double expected = limited / (double)(1 << rate.Leak);
            double sigma = Math.Sqrt(expected * (1 - (1.0 / (1 << rate.Leak))));
            Assert.InRange(leaked, expected - (5 * sigma), expected + (5 * sigma));
            Assert.Equal(limited - leaked, Count(client, ResponseAction.Drop, ResponseReason.RateLimited));
            output.WriteLine($"{clients[client].Name}: {sent} sent over {TimeSpan.FromTicks(sent * step / 100)}, {allowed} served (ideal {ideal:F1}), {leaked} leaked, {limited - leaked} dropped");
        }
        output.WriteLine($"{configuration}: {checks} monitor checks, {monitorQueries} queries, all served; NAT address {natQueries} of {natQueries} served");
    }

    /// <summary>
    /// The starts of one monitor's checks over the run: the first within 20 minutes, then every 5 to
    /// 20 minutes (a few times an hour, irregularly), and after one check in ten an ad-hoc check 2–10 s
    /// after its last answer (the pool can ask a monitor for one at once).
    /// </summary>
    private static List<long> CheckStarts(Random random)
    {
        var starts = new List<long>();
        for (long t = random.NextInt64(20 * Minute); t < Duration - Minute; t += random.NextInt64(5 * Minute, 20 * Minute))
        {
            starts.Add(t);
            if (random.Next(10) == 0)
            {
                starts.Add(t + (5 * Second) + random.NextInt64(2 * Second, 10 * Second));
            }
        }
        return starts;
    }

    private static int Add(List<Client> clients, string name, Role role, string address)
    {
        clients.Add(new Client(name, role, NetAddress.FromIPAddress(IPAddress.Parse(address))));
        return clients.Count - 1;
    }

    /// <summary>Stamps the answer's transmit time as the worker does (20 µs after receipt), then judges it as the monitor would.</summary>
    private static string? Judge(Span<byte> answer, ulong nonce, long receiveUnixNs)
    {
        NtpResponder.StampTransmit(answer, NtpTimestamp.FromUnixNanoseconds(receiveUnixNs + 20_000));
        return PoolMonitor.Judge(nonce, answer);
    }

    /// <summary>What the clock core publishes for a server synchronised to a stratum-1 upstream.</summary>
    private static ServerState Synchronised() => new()
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = 2,
        ReferenceId = 0xC0000201,
        ReferenceTime = NtpTimestamp.FromUnixNanoseconds(T0 - (16 * Second)),
        RootDelay = 0.004,
        RootDispersion = 0.0005,
        UpdatedAtUnixNanoseconds = T0 - (16 * Second),
        Precision = -24,
    };
}
