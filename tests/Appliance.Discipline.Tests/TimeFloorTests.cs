using Appliance.Discipline;

namespace Appliance.Discipline.Tests;

/// <summary>The floor for "now" and the certificate verification time it gives (issue #21).</summary>
public class TimeFloorTests
{
    private const long Build = 1_796_000_000_000_000_000;   // 2026-11-30
    private const long Day = 86_400_000_000_000;

    [Fact]
    public void Raise_KeepsTheLatest_AndSaysWhatSetIt()
    {
        TimeFloor floor = TimeFloor.None.Raise(Build, "build");
        Assert.Equal(new TimeFloor(Build, "build"), floor);
        Assert.Equal(new TimeFloor(Build + Day, "last known"), floor.Raise(Build + Day, "last known"));
        Assert.Equal(floor, floor.Raise(Build - Day, "an older file"));
        Assert.Equal(floor, floor.Raise(Build, "the same time again"));
    }

    [Fact]
    public void AClockBehindTheFloor_IsWrong_AtOrAfterItIsNot()
    {
        var floor = new TimeFloor(Build, "build");
        Assert.True(floor.IsAfter(0));                 // 1970: a board without a battery
        Assert.True(floor.IsAfter(Build - 1));
        Assert.False(floor.IsAfter(Build));
        Assert.False(floor.IsAfter(Build + Day));
        Assert.False(TimeFloor.None.IsAfter(0));
    }

    [Fact]
    public void VerificationTime_IsTheFloor_ForAClockBehindIt_UntilSynchronised()
    {
        var floor = new TimeFloor(Build, "build");
        Assert.Equal(Build, floor.VerificationTime(now: 0, synchronised: false));
        Assert.Equal(Build + Day, floor.VerificationTime(now: Build + Day, synchronised: false));
        // Synchronised, the clock is the truth, even behind a floor that was wrong (a file written by a clock that ran ahead).
        Assert.Equal(Build - Day, floor.VerificationTime(now: Build - Day, synchronised: true));
    }
}
