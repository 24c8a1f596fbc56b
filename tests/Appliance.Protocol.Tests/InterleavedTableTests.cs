using System.Net;

namespace Appliance.Protocol.Tests;

/// <summary>The interleaved-mode state (RFC 9769 §2): bounded, lossy, one use per receive timestamp.</summary>
public class InterleavedTableTests
{
    private static readonly NetAddress s_client = NetAddress.FromIPAddress(IPAddress.Parse("192.0.2.7"));
    private static readonly NetAddress s_other = NetAddress.FromIPAddress(IPAddress.Parse("2001:db8::7"));

    private static NtpTimestamp T(ulong value) => new(value);

    [Fact]
    public void ASavedResponse_AnswersOneRequestFromItsClient_Once()
    {
        var table = new InterleavedTable(64, 12345);
        table.Save(T(1001), T(2000), s_client);
        Assert.Equal(1, table.Count);

        Assert.False(table.TryTake(T(1001), s_other, out _));        // another client guessing the key
        Assert.True(table.TryTake(T(1001), s_client, out NtpTimestamp transmit));
        Assert.Equal(T(2000), transmit);
        Assert.False(table.TryTake(T(1001), s_client, out _));       // §2: "MUST NOT be used again"
        Assert.Equal(0, table.Count);
        Assert.False(table.TryTake(NtpTimestamp.Zero, s_client, out _));
    }

    [Fact]
    public void TheKernelsTransmitTimestamp_ReplacesTheSavedOne_WithItsSource()
    {
        var table = new InterleavedTable(64, 99);
        table.Save(T(1001), T(2000), s_client);
        table.Save(T(1003), T(2002), s_other, source: 0);
        Assert.True(table.UpdateTransmit(T(1001), T(2010), source: 1));
        Assert.False(table.UpdateTransmit(T(1005), T(2010), source: 1)); // never saved (an NTS response, a KoD)
        Assert.False(table.UpdateTransmit(NtpTimestamp.Zero, T(2010), source: 1));

        Assert.True(table.TryTake(T(1001), s_client, out NtpTimestamp transmit, out byte source));
        Assert.Equal((T(2010), (byte)1), (transmit, source));
        Assert.False(table.UpdateTransmit(T(1001), T(2020), source: 2)); // answered from already: nothing to update
        Assert.True(table.TryTake(T(1003), s_other, out transmit, out source));
        Assert.Equal((T(2002), (byte)0), (transmit, source));

        // The source shares the client key's entry: it never lets another client take a response.
        table.Save(T(1007), T(2004), s_client, source: 2);
        Assert.False(table.TryTake(T(1007), s_other, out _, out _));
        Assert.True(table.TryTake(T(1007), s_client, out _, out source));
        Assert.Equal(2, source);
    }

    [Fact]
    public void ANonUniqueReceiveTimestamp_TakesNoKernelTransmitTimestamp()
    {
        var table = new InterleavedTable(64, 3);
        table.Save(T(1001), T(2000), s_client);
        table.Save(T(1001), T(2001), s_client);
        Assert.False(table.UpdateTransmit(T(1001), T(2010), source: 1)); // the tombstone stays unusable
        Assert.False(table.TryTake(T(1001), s_client, out _));
    }

    [Fact]
    public void AReceiveTimestampSavedTwice_AnswersNeither()
    {
        var table = new InterleavedTable(64, 7);
        table.Save(T(1001), T(2000), s_client);
        table.Save(T(1001), T(3000), s_other); // two requests stamped alike: not unique, so no key (§2)
        Assert.False(table.TryTake(T(1001), s_client, out _));
        Assert.False(table.TryTake(T(1001), s_other, out _));
        table.Save(T(1001), T(4000), s_client); // and a third alike is no more unique
        Assert.False(table.TryTake(T(1001), s_client, out _));
        Assert.Equal(1, table.Count);
    }

    [Fact]
    public void AFullTable_EvictsTheOldestOfASet_AndNeverGrows()
    {
        var table = new InterleavedTable(4, 99); // one set of four
        for (ulong i = 1; i <= 6; i++)
        {
            table.Save(T((i * 2) + 1), T(i * 100), s_client);
        }
        Assert.Equal(4, table.Capacity);
        Assert.Equal(4, table.Count);
        Assert.Equal(2, table.Evictions);
        Assert.False(table.TryTake(T(3), s_client, out _));  // the two oldest are gone
        Assert.False(table.TryTake(T(5), s_client, out _));
        Assert.True(table.TryTake(T(13), s_client, out NtpTimestamp newest));
        Assert.Equal(T(600), newest);
    }

    [Fact]
    public void MarkedTimestamps_AreNeverEqual_ReceiveOddTransmitEven()
    {
        foreach (ulong value in (ulong[])[0, 1, 2, 0xFFFF_FFFF_FFFF_FFFF, 0x1234_5678_9ABC_DEF0])
        {
            NtpTimestamp receive = NtpResponder.MarkReceive(T(value));
            NtpTimestamp transmit = NtpResponder.MarkTransmit(T(value));
            Assert.Equal(1UL, receive.Value & 1);
            Assert.Equal(0UL, transmit.Value & 1);
            Assert.NotEqual(receive, transmit);
            Assert.InRange((long)(receive.Value - transmit.Value), 0, 1);
        }
    }
}
