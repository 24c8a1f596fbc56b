using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Nts;
using Appliance.Server.Nts;

namespace Appliance.Server.Tests;

/// <summary>
/// NTS-KE admission per client (security review, issue #14): IPv6 counted per /64, connections open
/// at once capped, a full table forgets instead of refusing, and admission at a full table is O(1)
/// with nothing allocated.
/// </summary>
public class ClientConnectionLimiterTests
{
    private static readonly long s_second = TimeSpan.TicksPerSecond;

    private static NetAddress A(string address) => NetAddress.FromIPAddress(IPAddress.Parse(address));

    private static NtsKeServerReason Admit(ClientConnectionLimiter limiter, string client, long now = 0) =>
        limiter.TryAdmit(A(client), now, out NtsKeServerReason refusal) ? NtsKeServerReason.Ok : refusal;

    [Fact]
    public void IPv6_AddressesOfOneSlash64_AreOneClient_TheNextSlash64IsAnother()
    {
        var limiter = new ClientConnectionLimiter(perInterval: 2, TimeSpan.FromSeconds(10), concurrent: 100);
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8:0:5::1"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8:0:5:ffff:ffff:ffff:ffff"));
        Assert.Equal(NtsKeServerReason.ClientRate, Admit(limiter, "2001:db8:0:5:1234:5678:9abc:def0"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8:0:6::1"));
        // IPv4 addresses are each a client, also next to each other and when written IPv4-mapped.
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.1"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "::ffff:192.0.2.1"));
        Assert.Equal(NtsKeServerReason.ClientRate, Admit(limiter, "192.0.2.1"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.2"));
        Assert.Equal(4, limiter.Clients);
    }

    [Fact]
    public void OpenConnections_PerClient_AreCapped_ReleaseFreesOne_AndARefusalCostsNoNewConnection()
    {
        var limiter = new ClientConnectionLimiter(perInterval: 4, TimeSpan.FromSeconds(10), concurrent: 2);
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8::1"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8::2"));
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(NtsKeServerReason.ClientConcurrency, Admit(limiter, "2001:db8::3"));
        }
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.1"));
        limiter.Release(A("2001:db8::1"));
        // Two of four new connections were used; the ten refusals took none.
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8::4"));
        limiter.Release(A("2001:db8::4"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8::5"));
        limiter.Release(A("2001:db8::5"));
        Assert.Equal(NtsKeServerReason.ClientRate, Admit(limiter, "2001:db8::6"));
        Assert.Throws<InvalidOperationException>(() => limiter.Release(A("192.0.2.9")));
    }

    [Fact]
    public void NewConnections_CountInFixedWindows_ANewWindowStartsAfterTheInterval()
    {
        var limiter = new ClientConnectionLimiter(perInterval: 2, TimeSpan.FromSeconds(10), concurrent: 100);
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.1", 0));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.1", 1 * s_second));
        Assert.Equal(NtsKeServerReason.ClientRate, Admit(limiter, "192.0.2.1", (10 * s_second) - 1));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.1", 10 * s_second));
    }

    [Fact]
    public void FullTable_ForgetsTheIdleClientSeenLeastRecently_NeverRefusesANewOne()
    {
        var limiter = new ClientConnectionLimiter(perInterval: 1, TimeSpan.FromHours(1), concurrent: 10, capacity: 4);
        foreach (string client in new[] { "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4" })
        {
            Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, client));
            limiter.Release(A(client));
        }
        // .1 is seen again (and refused): now .2 is the one seen least recently.
        Assert.Equal(NtsKeServerReason.ClientRate, Admit(limiter, "192.0.2.1"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.5")); // the table was full
        Assert.Equal(4, limiter.Clients);
        Assert.Equal(NtsKeServerReason.ClientRate, Admit(limiter, "192.0.2.1")); // still remembered
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.2")); // forgotten: a new window
    }

    [Fact]
    public void ClientsHoldingConnections_AreNeverForgotten_HoweverManyNewClientsPassThrough()
    {
        var limiter = new ClientConnectionLimiter(perInterval: 1000, TimeSpan.FromHours(1), concurrent: 1, capacity: 3);
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8:1::1"));
        for (int i = 0; i < 1000; i++)
        {
            string client = $"2001:db8:2:{i:x}::1";
            Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, client));
            limiter.Release(A(client));
        }
        // Its open connection is still counted: a second is refused until it ends.
        Assert.Equal(NtsKeServerReason.ClientConcurrency, Admit(limiter, "2001:db8:1::2"));
        limiter.Release(A("2001:db8:1::1"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "2001:db8:1::2"));

        // Only when every client remembered holds a connection (capacity not above the server's
        // connection limit, which the server never configures) is a new one refused, as the server being full.
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.1"));
        Assert.Equal(NtsKeServerReason.Ok, Admit(limiter, "192.0.2.2"));
        Assert.Equal(NtsKeServerReason.MaxConnections, Admit(limiter, "192.0.2.3"));
    }

    [Fact]
    public void AdmissionAtAFullTable_ForgetsInO1_AndAllocatesNothing()
    {
        // The old table scanned all its entries with LINQ, under the lock, for every new address once
        // full, and then refused it. Here 200,000 new clients pass through a full table of 65,536.
        var limiter = new ClientConnectionLimiter(perInterval: 20, TimeSpan.FromSeconds(10), concurrent: 10);
        for (uint i = 0; i < ClientConnectionLimiter.DefaultCapacity; i++)
        {
            Assert.True(limiter.TryAdmit(NetAddress.FromIPv4(0x0A00_0000 + i), 0, out _));
            limiter.Release(NetAddress.FromIPv4(0x0A00_0000 + i));
        }
        Assert.Equal(ClientConnectionLimiter.DefaultCapacity, limiter.Clients);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        int admitted = 0;
        for (ulong i = 0; i < 200_000; i++)
        {
            var client = new NetAddress(new UInt128(0x2001_0db8_0000_0000UL | i, 1)); // a new /64 each time
            if (limiter.TryAdmit(client, s_second, out _))
            {
                admitted++;
                limiter.Release(client);
            }
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        watch.Stop();

        Assert.Equal(200_000, admitted);
        Assert.Equal(0, allocated);
        Assert.Equal(ClientConnectionLimiter.DefaultCapacity, limiter.Clients);
        // Generous, for a loaded shared host: the O(n) scan took seconds for this many.
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(2), $"{watch.Elapsed.TotalMilliseconds:F0} ms for 200,000 admissions");
    }
}
