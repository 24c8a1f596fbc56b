using System.Net;
using Appliance.Protocol;

namespace Appliance.Protocol.Tests;

/// <summary>
/// The server's policy through the responder: what a limited or denied client actually gets back, the
/// KoDs it can draw (issue #14: leaked answers stay time, every KoD is rate limited), and the clock
/// the limiter runs on.
/// </summary>
public class ServerPolicyTests
{
    private const long Second = 1_000_000_000L;
    private const long T0 = Packets.ReceiveUnixNs;

    private static readonly NetAddress s_client = NetAddress.FromIPAddress(IPAddress.Parse("192.0.2.7"));
    private static readonly NetAddress s_denied = NetAddress.FromIPAddress(IPAddress.Parse("192.0.2.66"));
    private static readonly NetAddress s_otherDenied = NetAddress.FromIPAddress(IPAddress.Parse("192.0.2.67"));

    private static AccessList DenyingDotSixtySix()
    {
        Assert.True(AccessRule.TryParse("0.0.0.0/0", true, out AccessRule all));
        Assert.True(AccessRule.TryParse("192.0.2.64/30", false, out AccessRule deny));
        return new AccessList([all, deny]);
    }

    private static RateLimiter Limiter(bool kod, int burst = 1, int leak = 2) =>
        new(new RateLimitSettings(TimeSpan.FromSeconds(2), burst, leak, kod, 4096), 4096, 0x1234, 0x5678);

    /// <summary>Counts the outcomes of requests from <paramref name="client"/> at the given receive (and monotonic) times.</summary>
    private sealed class Tally
    {
        private readonly Dictionary<Outcome, int> _counts = [];

        public int this[ResponseAction action, ResponseReason reason] => _counts.GetValueOrDefault(new Outcome(action, reason));

        public Outcome Ask(ref ServerPolicy policy, NetAddress client, long receiveUnixNs, long monotonicNs = 0)
        {
            byte[] buffer = Packets.Request();
            var context = new RequestContext(client, receiveUnixNs, NtpTimestamp.FromUnixNanoseconds(receiveUnixNs), monotonicNs);
            Outcome outcome = NtpResponder.Respond(buffer, buffer.Length, context, Packets.SyncedState(), ref policy, out int length);
            Assert.Equal(outcome.Action == ResponseAction.Drop, length == 0);
            if (outcome.Action == ResponseAction.KissOfDeath)
            {
                Assert.Equal(outcome.Reason == ResponseReason.Denied ? KissCode.Deny : KissCode.Rate, KissOfDeath.Read(buffer.AsSpan(0, length)));
            }
            _counts[outcome] = _counts.GetValueOrDefault(outcome) + 1;
            return outcome;
        }
    }

    [Fact]
    public void RateLimitKod_LeakedAnswersAreTime_AndAFloodDrawsOneKissPerInterval()
    {
        // One client at 10,000 requests/s for a second: burst 1, leak 2 (one in four), KoD on.
        var policy = new ServerPolicy(null, DenyAction.Ignore, Limiter(kod: true));
        var tally = new Tally();
        for (int i = 0; i < 10_000; i++)
        {
            tally.Ask(ref policy, s_client, T0 + (i * (Second / 10_000)));
        }

        Assert.Equal(1, tally[ResponseAction.Respond, ResponseReason.Served]);
        // The leak is what keeps the victim of a flood spoofing its address served: it stays time.
        Assert.InRange(tally[ResponseAction.Respond, ResponseReason.RateLimited], 2_300, 2_700);
        // KoD RATE on the dropped ones, but no more than one per interval (2 s): not a reflector.
        Assert.Equal(1, tally[ResponseAction.KissOfDeath, ResponseReason.RateLimited]);
        Assert.Equal(10_000 - 1 - tally[ResponseAction.Respond, ResponseReason.RateLimited] - 1, tally[ResponseAction.Drop, ResponseReason.RateLimited]);
    }

    [Fact]
    public void RateLimitKod_ASecondKissOnlyAfterAnInterval()
    {
        var policy = new ServerPolicy(null, DenyAction.Ignore, Limiter(kod: true, leak: 16));
        var tally = new Tally();
        Assert.Equal(ResponseAction.Respond, tally.Ask(ref policy, s_client, T0).Action);
        Assert.Equal(ResponseAction.KissOfDeath, tally.Ask(ref policy, s_client, T0 + 1).Action);
        Assert.Equal(ResponseAction.Drop, tally.Ask(ref policy, s_client, T0 + Second).Action);
        // Two seconds on, a token for the time and one for a KoD: the request is served, the next one kissed.
        Assert.Equal(ResponseAction.Respond, tally.Ask(ref policy, s_client, T0 + (2 * Second) + 1).Action);
        Assert.Equal(ResponseAction.KissOfDeath, tally.Ask(ref policy, s_client, T0 + (2 * Second) + 2).Action);
        Assert.Equal(ResponseAction.Drop, tally.Ask(ref policy, s_client, T0 + (2 * Second) + 3).Action);
    }

    [Fact]
    public void RateLimitWithoutKod_NeverKisses()
    {
        var policy = new ServerPolicy(null, DenyAction.Ignore, Limiter(kod: false));
        var tally = new Tally();
        for (int i = 0; i < 1_000; i++)
        {
            tally.Ask(ref policy, s_client, T0 + i);
        }
        Assert.Equal(0, tally[ResponseAction.KissOfDeath, ResponseReason.RateLimited]);
        Assert.InRange(tally[ResponseAction.Respond, ResponseReason.RateLimited], 180, 320);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DenyKod_AFloodFromADeniedAddressDrawsOneKissPerInterval(bool withRateLimiter)
    {
        // Without a rate limiter of its own the policy keeps a table for the KoDs alone.
        var policy = new ServerPolicy(DenyingDotSixtySix(), DenyAction.Kod, withRateLimiter ? Limiter(kod: false) : null);
        var tally = new Tally();
        for (int i = 0; i < 10_000; i++)
        {
            tally.Ask(ref policy, s_denied, T0 + (i * (Second / 10_000)));
        }
        Assert.Equal(1, tally[ResponseAction.KissOfDeath, ResponseReason.Denied]);
        Assert.Equal(9_999, tally[ResponseAction.Drop, ResponseReason.Denied]);

        // Another denied client has its own allowance; the first gets its next KoD an interval (2 s) on.
        Assert.Equal(ResponseAction.KissOfDeath, tally.Ask(ref policy, s_otherDenied, T0 + Second).Action);
        Assert.Equal(ResponseAction.Drop, tally.Ask(ref policy, s_denied, T0 + (3 * Second / 2)).Action);
        Assert.Equal(ResponseAction.KissOfDeath, tally.Ask(ref policy, s_denied, T0 + (3 * Second)).Action);
        // Allowed clients are still served.
        Assert.Equal(new Outcome(ResponseAction.Respond, ResponseReason.Served), tally.Ask(ref policy, s_client, T0 + (3 * Second)));
    }

    [Fact]
    public void DenyIgnore_NeverKisses()
    {
        var policy = new ServerPolicy(DenyingDotSixtySix(), DenyAction.Ignore, Limiter(kod: true));
        var tally = new Tally();
        for (int i = 0; i < 100; i++)
        {
            tally.Ask(ref policy, s_denied, T0 + i);
        }
        Assert.Equal(100, tally[ResponseAction.Drop, ResponseReason.Denied]);
    }

    [Fact]
    public void SystemClockSteppedBack_RefillsResumeAtOnce_NotAfterTheStep()
    {
        // No monotonic time given: the limiter runs on the receive timestamps (CLOCK_REALTIME).
        var policy = new ServerPolicy(null, DenyAction.Ignore, Limiter(kod: false, leak: 16));
        var tally = new Tally();
        Assert.Equal(ResponseReason.Served, tally.Ask(ref policy, s_client, T0).Reason);
        Assert.Equal(ResponseAction.Drop, tally.Ask(ref policy, s_client, T0 + 1).Action);

        // The clock steps back an hour. Two seconds (one interval) later the client has a token
        // again; before, refills stopped until the clock was back where it had been.
        long stepped = T0 - 3600 * Second;
        Assert.Equal(ResponseAction.Drop, tally.Ask(ref policy, s_client, stepped).Action);
        Assert.Equal(new Outcome(ResponseAction.Respond, ResponseReason.Served), tally.Ask(ref policy, s_client, stepped + (2 * Second)));
    }

    [Fact]
    public void MonotonicTime_IsWhatTheLimiterRunsOn_WhenTheWorkerGivesIt()
    {
        var policy = new ServerPolicy(null, DenyAction.Ignore, Limiter(kod: false, leak: 16));
        var tally = new Tally();
        const long m0 = 5_000 * Second;
        Assert.Equal(ResponseReason.Served, tally.Ask(ref policy, s_client, T0, m0).Reason);
        // The system clock jumps an hour ahead: the monotonic clock has not moved, so no refill.
        Assert.Equal(ResponseAction.Drop, tally.Ask(ref policy, s_client, T0 + (3600 * Second), m0 + 1).Action);
        // It steps an hour back while two seconds pass on the monotonic clock: one token.
        Assert.Equal(new Outcome(ResponseAction.Respond, ResponseReason.Served), tally.Ask(ref policy, s_client, T0 - (3600 * Second), m0 + (2 * Second)));
        Assert.Equal(ResponseAction.Drop, tally.Ask(ref policy, s_client, T0 - (3600 * Second), m0 + (2 * Second) + 1).Action);
    }
}
