using System.Net;
using Appliance.Protocol;

namespace Appliance.Protocol.Tests;

public class RateLimiterTests
{
    private const long Second = 1_000_000_000;
    private static readonly NetAddress s_client = NetAddress.FromIPAddress(IPAddress.Parse("192.0.2.1"));

    private static RateLimiter Limiter(int burst = 4, int leak = 0, int interval = 2, int capacity = 1024, bool kod = false) =>
        new(new RateLimitSettings(TimeSpan.FromSeconds(interval), burst, leak, kod, capacity), capacity, 42, 43);

    [Fact]
    public void Burst_ThenDrop_ThenRefillAtOnePerInterval()
    {
        RateLimiter limiter = Limiter(burst: 4);
        long t = 1000 * Second;
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t));
        }
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t + Second));      // half a token
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t + (2 * Second))); // one token
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t + (2 * Second)));
        // A long pause refills to the burst, never beyond.
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t + (3600 * Second)));
        }
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t + (3600 * Second)));
    }

    [Fact]
    public void HasToken_Looks_WithoutChargingRefillingOrTracking()
    {
        RateLimiter limiter = Limiter(burst: 2);
        long t = 1000 * Second;
        Assert.False(limiter.HasToken(s_client, t)); // unknown: not known to poll within its rate
        Assert.False(limiter.Tracks(s_client));
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t));
        for (int i = 0; i < 100; i++)
        {
            Assert.True(limiter.HasToken(s_client, t)); // a look charges nothing
        }
        Assert.True(limiter.HasToken(s_client, t));
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t));
        Assert.False(limiter.HasToken(s_client, t));                 // spent
        Assert.False(limiter.HasToken(s_client, t + Second));        // half a token
        Assert.True(limiter.HasToken(s_client, t + (2 * Second)));   // one token: ...
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t + (2 * Second))); // ... which the look left there
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t + (2 * Second)));
    }

    [Fact]
    public void UpdateSettings_KeepsEveryClientsBucket_AndRefillsAtTheNewInterval()
    {
        RateLimiter limiter = Limiter(burst: 4, interval: 2);
        long t = 1000 * Second;
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t));
        }
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t));

        // A reload: a larger burst and a longer interval. The spent client stays spent (no fresh burst)…
        limiter.UpdateSettings(new RateLimitSettings(TimeSpan.FromSeconds(10), 8, 0, false, 1024));
        Assert.True(limiter.Tracks(s_client));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t));
        // …and refills at the new rate: 2 s gave a token before, now it takes 10 s.
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t + (2 * Second)));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t + (9 * Second)));
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t + (11 * Second)));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t + (11 * Second)));
        Assert.Equal(TimeSpan.FromSeconds(10), limiter.Settings.Interval);
    }

    [Fact]
    public void UpdateSettings_ASmallerBurstCutsAFullBucketToIt()
    {
        RateLimiter limiter = Limiter(burst: 8);
        long t = 1000 * Second;
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t)); // 7 tokens left
        limiter.UpdateSettings(new RateLimitSettings(TimeSpan.FromSeconds(2), 2, 0, false, 1024));
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t));
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t));
    }

    [Fact]
    public void SteadyClientAtTheAllowedRate_IsNeverLimited()
    {
        RateLimiter limiter = Limiter(burst: 1, interval: 2);
        for (int i = 0; i < 1000; i++)
        {
            Assert.Equal(RateDecision.Allow, limiter.Check(s_client, (1000 + (2L * i)) * Second));
        }
    }

    [Fact]
    public void Leak2_AnswersAboutOneInFourLimitedRequests()
    {
        RateLimiter limiter = Limiter(burst: 1, leak: 2);
        int leaked = 0;
        for (int i = 0; i < 40_000; i++)
        {
            leaked += limiter.Check(s_client, 1000 * Second) == RateDecision.Leak ? 1 : 0;
        }
        Assert.InRange(leaked, 9_000, 11_000);
    }

    [Fact]
    public void Leak0_NeverAnswersLimitedRequests()
    {
        RateLimiter limiter = Limiter(burst: 1, leak: 0);
        limiter.Check(s_client, 1000 * Second);
        for (int i = 0; i < 1000; i++)
        {
            Assert.Equal(RateDecision.Drop, limiter.Check(s_client, 1000 * Second));
        }
    }

    [Fact]
    public void Kod_TheFirstDropOfAnIntervalIsAKiss_TheRestAreDropped()
    {
        RateLimiter limiter = Limiter(burst: 1, leak: 0, kod: true);
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, 1000 * Second));
        Assert.Equal(RateDecision.Kiss, limiter.Check(s_client, 1000 * Second));
        for (int i = 0; i < 1000; i++)
        {
            Assert.Equal(RateDecision.Drop, limiter.Check(s_client, 1000 * Second));
        }
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, 1001 * Second));
        // An interval on, one token and one KoD again.
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, 1002 * Second));
        Assert.Equal(RateDecision.Kiss, limiter.Check(s_client, 1002 * Second));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, 1002 * Second));
    }

    [Fact]
    public void TryKiss_SharesTheClientsOneKissPerInterval_AndSpendsNoToken()
    {
        RateLimiter limiter = Limiter(burst: 1, leak: 0, kod: true);
        Assert.True(limiter.TryKiss(s_client, 1000 * Second));   // a new client has its allowance
        Assert.False(limiter.TryKiss(s_client, 1001 * Second));  // half an interval later: not yet
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, 1001 * Second)); // its token untouched
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, 1001 * Second));  // the KoD of this interval is spent
        Assert.True(limiter.TryKiss(s_client, 1002 * Second));
    }

    [Fact]
    public void ClockSteppedBack_NoTimeElapsed_AndRefillsGoOnFromTheNewTime()
    {
        RateLimiter limiter = Limiter(burst: 1);
        long t = 100_000 * Second;
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, t));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, t));
        long back = t - (86_400 * Second); // a day back
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, back));               // no refill for the step
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, back + Second));      // half a token
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, back + (2 * Second))); // one interval after the step
    }

    [Fact]
    public void IPv6_SharesOneBucketPerSlash64()
    {
        RateLimiter limiter = Limiter(burst: 2);
        var a = NetAddress.FromIPAddress(IPAddress.Parse("2001:db8:1:2::1"));
        var b = NetAddress.FromIPAddress(IPAddress.Parse("2001:db8:1:2:ffff::9"));
        var other = NetAddress.FromIPAddress(IPAddress.Parse("2001:db8:1:3::1"));
        Assert.Equal(RateDecision.Allow, limiter.Check(a, Second));
        Assert.Equal(RateDecision.Allow, limiter.Check(b, Second));
        Assert.Equal(RateDecision.Drop, limiter.Check(a, Second));
        Assert.Equal(RateDecision.Allow, limiter.Check(other, Second));
    }

    [Fact]
    public void Flood_OfDistinctSources_NeverGrowsTheTable()
    {
        RateLimiter limiter = Limiter(capacity: 1000);
        Assert.Equal(1024, limiter.Capacity);
        for (uint i = 0; i < 1_000_000; i++)
        {
            Assert.NotEqual(RateDecision.Drop, limiter.Check(NetAddress.FromIPv4(0x0A000000 + i), Second));
        }
        Assert.Equal(1024, limiter.Count);
    }

    [Fact]
    public void Evictions_CountEveryClientPushedOut_NotNewOnesOrReturningOnes()
    {
        // A full table has Capacity entries: every new client beyond that pushes one out.
        RateLimiter limiter = Limiter(capacity: 1024);
        for (uint i = 0; i < 100_000; i++)
        {
            limiter.Check(NetAddress.FromIPv4(0x0A000000 + i), Second + i);
        }
        Assert.Equal(1024, limiter.Count);
        Assert.Equal(100_000 - limiter.Count, limiter.Evictions);

        // A client the table still holds evicts nobody when it returns.
        long before = limiter.Evictions;
        var tracked = NetAddress.FromIPv4(0x0A000000 + 99_999);
        Assert.True(limiter.Tracks(tracked));
        limiter.Check(tracked, 2 * Second);
        Assert.Equal(before, limiter.Evictions);
    }

    [Fact]
    public void Evictions_StayZero_WhileTheTableHasRoom()
    {
        RateLimiter limiter = Limiter(capacity: 1 << 16);
        for (uint i = 0; i < 100; i++)
        {
            limiter.Check(NetAddress.FromIPv4(0x0A000000 + i), Second);
        }
        Assert.Equal(100, limiter.Count);
        Assert.Equal(0, limiter.Evictions);
    }

    [Fact]
    public void Flood_EvictsOldClientsButARecentlyActiveOneKeepsItsBucket()
    {
        // 4-way sets evict the least recently seen entry: a client that keeps polling is not pushed
        // out by a flood of one-shot spoofed sources that arrive before it.
        RateLimiter limiter = Limiter(burst: 1, capacity: 4096);
        Assert.Equal(RateDecision.Allow, limiter.Check(s_client, 10 * Second));
        for (uint i = 0; i < 100_000; i++)
        {
            limiter.Check(NetAddress.FromIPv4(0x0A000000 + i), 5 * Second);
        }
        Assert.True(limiter.Tracks(s_client));
        Assert.Equal(RateDecision.Drop, limiter.Check(s_client, 10 * Second));
    }

    [Fact]
    public void HashSeed_DecidesWhereClientsLand()
    {
        // Different seeds give different sets: an attacker cannot precompute collisions.
        var a = new RateLimiter(RateLimitSettings.Default, 64, 1, 2);
        var b = new RateLimiter(RateLimitSettings.Default, 64, 3, 4);
        int differ = 0;
        for (uint i = 0; i < 64; i++)
        {
            var client = NetAddress.FromIPv4(0xC0000200 + i);
            a.Check(client, Second);
            b.Check(client, Second);
        }
        for (uint i = 0; i < 64; i++)
        {
            var client = NetAddress.FromIPv4(0xC0000200 + i);
            differ += a.Tracks(client) != b.Tracks(client) ? 1 : 0;
        }
        Assert.True(differ > 0);
    }

    [Fact]
    public void CopyClients_GivesEachClientsAddressAndCounts_IPv6ByItsPrefix()
    {
        RateLimiter limiter = Limiter(burst: 2, kod: true);
        NetAddress v6 = NetAddress.FromIPAddress(IPAddress.Parse("2001:db8:1:2::77"));
        long t = 1000 * Second;
        for (int i = 0; i < 5; i++)
        {
            limiter.Check(s_client, t, nts: i % 2 == 0); // 2 allowed, 3 over: one KoD, then drops
        }
        limiter.Check(v6, t + Second);
        limiter.Check(NetAddress.FromIPAddress(IPAddress.Parse("2001:db8:1:2::78")), t + (2 * Second)); // the same /64

        var clients = new List<ClientRecord>();
        limiter.CopyClients(clients);

        Assert.Equal(2, clients.Count);
        ClientRecord v4 = clients.Single(c => !c.IsPrefix);
        Assert.Equal(s_client, v4.Address);
        Assert.Equal((5L, 3L, 1L, 3L, t), (v4.Requests, v4.RateLimited, v4.KissesSent, v4.NtsRequests, v4.LastSeenNanoseconds));
        ClientRecord prefix = clients.Single(c => c.IsPrefix);
        Assert.Equal("2001:db8:1:2::", prefix.Address.ToString());
        Assert.Equal((2L, 0L, t + (2 * Second)), (prefix.Requests, prefix.RateLimited, prefix.LastSeenNanoseconds));
    }

    [Fact]
    public void CopyClients_StartsAnEvictedClientsCountsAfresh()
    {
        RateLimiter limiter = Limiter(capacity: 4); // one set of four ways: a fifth client evicts the oldest
        long t = 1000 * Second;
        for (uint i = 0; i < 5; i++)
        {
            limiter.Check(NetAddress.FromIPv4(0xC0000200 + i), t + (i * Second));
        }
        limiter.Check(NetAddress.FromIPv4(0xC0000200), t + (10 * Second));

        var clients = new List<ClientRecord>();
        limiter.CopyClients(clients);
        Assert.Equal(["192.0.2.0", "192.0.2.2", "192.0.2.3", "192.0.2.4"], clients.Select(c => c.Address.ToString()).Order());
        Assert.All(clients, c => Assert.True(c.Requests == 1, $"{c.Address}: {c.Requests}"));
    }

    [Fact]
    public async Task CopyClients_WhileTheOwnerWrites_NeverInventsAClient()
    {
        // The control socket copies a worker's table while the worker serves: a torn entry is left out,
        // never shown as an address that did not send.
        RateLimiter limiter = Limiter(capacity: 256);
        NetAddress[] senders = [.. Enumerable.Range(0, 2000).Select(i => NetAddress.FromIPv4(0x0A000000u + (uint)(i * 7919)))];
        var known = senders.ToHashSet();
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            long t = 0;
            while (!stop.IsCancellationRequested)
            {
                foreach (NetAddress sender in senders)
                {
                    limiter.Check(sender, t += 1000);
                }
            }
        });
        var clients = new List<ClientRecord>();
        for (int copy = 0; copy < 200; copy++)
        {
            clients.Clear();
            limiter.CopyClients(clients);
            Assert.All(clients, c => Assert.Contains(c.Address, known));
            Assert.True(clients.Count <= limiter.Capacity);
        }
        await stop.CancelAsync();
        await writer;
    }

    [Fact]
    public void BytesPerClient_IsTheSizeOfAnEntry()
    {
        Type entry = typeof(RateLimiter).GetNestedType("Entry", System.Reflection.BindingFlags.NonPublic)!;
        Assert.Equal(RateLimiter.BytesPerClient, System.Runtime.InteropServices.Marshal.SizeOf(entry));
    }
}
