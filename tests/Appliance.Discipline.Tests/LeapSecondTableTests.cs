using Appliance.Protocol;
using Appliance.Testing;

namespace Appliance.Discipline.Tests;

public class LeapSecondTableTests
{
    private static readonly string s_text = File.ReadAllText(Repo.TestData("leap-seconds.list"));

    private static long Unix(int year, int month, int day, int hour = 0) =>
        new DateTimeOffset(year, month, day, hour, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds();

    [Fact]
    public void ParsesTheIersFile_TaiOffsetAndExpiry()
    {
        LeapSecondTable table = LeapSecondTable.Parse(s_text);
        Assert.Equal(10, table.TaiOffset(Unix(1972, 1, 1)));
        Assert.Equal(36, table.TaiOffset(Unix(2016, 12, 31, 23)));
        Assert.Equal(37, table.TaiOffset(Unix(2017, 1, 1)));
        Assert.Equal(37, table.TaiOffset(Unix(2026, 11, 23)));
        Assert.Equal(Unix(2026, 6, 28), table.Expires); // "#@ 3991593600"
        Assert.True(table.IsExpired(Unix(2026, 11, 23)));
        Assert.False(table.IsExpired(Unix(2026, 1, 1)));
    }

    [Fact]
    public void AnnouncesTheLeapDuringTheLastDayOnly()
    {
        LeapSecondTable table = LeapSecondTable.Parse(s_text);
        Assert.Equal(LeapIndicator.NoWarning, table.Announcement(Unix(2016, 12, 30, 23)));
        Assert.Equal(LeapIndicator.InsertSecond, table.Announcement(Unix(2016, 12, 31, 0)));
        Assert.Equal(LeapIndicator.InsertSecond, table.Announcement(Unix(2016, 12, 31, 23)));
        Assert.Equal(LeapIndicator.NoWarning, table.Announcement(Unix(2017, 1, 1, 1)));
        Assert.Equal((Unix(2017, 1, 1), LeapIndicator.InsertSecond), table.NextEvent(Unix(2016, 7, 1)));
        Assert.Null(table.NextEvent(Unix(2026, 11, 23)));
    }

    [Fact]
    public void ADamagedFile_IsRefusedByItsHash()
    {
        string damaged = System.Text.RegularExpressions.Regex.Replace(s_text, @"(3692217600\s+)37", "${1}38");
        Assert.NotEqual(s_text, damaged);
        var e = Assert.Throws<FormatException>(() => LeapSecondTable.Parse(damaged));
        Assert.Contains("hash mismatch", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AFileWithoutItsHash_IsRefused()
    {
        string unhashed = string.Join('\n', s_text.Split('\n').Where(l => !l.StartsWith("#h", StringComparison.Ordinal)));
        var e = Assert.Throws<FormatException>(() => LeapSecondTable.Parse(unhashed));
        Assert.Contains("#h", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HashWordsWithoutLeadingZeros_AreAccepted()
    {
        // Some publishers drop each word's leading zeros; the padding restores them.
        string[] lines = s_text.Split('\n');
        string hashLine = lines.Single(l => l.StartsWith("#h", StringComparison.Ordinal));
        string[] words = hashLine[2..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        string stripped = "#h\t" + string.Join(' ', words.Select(w => w.TrimStart('0')));
        LeapSecondTable.Parse(s_text.Replace(hashLine, stripped, StringComparison.Ordinal));
    }
}
