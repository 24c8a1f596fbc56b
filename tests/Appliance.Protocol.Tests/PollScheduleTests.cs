using Appliance.Protocol;
using Appliance.Protocol.Client;

namespace Appliance.Protocol.Tests;

public class PollScheduleTests
{
    /// <summary>Sends one poll, answered or not, and returns the interval to the next.</summary>
    private static double Poll(PollSchedule schedule, bool answered, bool steady = true)
    {
        schedule.OnSend();
        if (answered)
        {
            schedule.OnAnswer();
            schedule.Adapt(steady);
        }
        return schedule.NextIntervalSeconds;
    }

    [Fact]
    public void Iburst_FourRequestsTwoSecondsApart_ThenThePoll()
    {
        var schedule = new PollSchedule(6, 10, iburst: true);
        double[] intervals = Enumerable.Range(0, 5).Select(_ => Poll(schedule, answered: true)).ToArray();
        Assert.Equal([2, 2, 2, 64, 64], intervals);
    }

    [Fact]
    public void WithoutIburst_FirstIntervalIsThePoll()
    {
        var schedule = new PollSchedule(6, 10, iburst: false);
        Assert.Equal(64, Poll(schedule, answered: true));
    }

    [Fact]
    public void Reach_ShiftsInOneBitPerPoll()
    {
        var schedule = new PollSchedule(6, 10, iburst: false);
        bool[] answers = [true, true, false, true];
        foreach (bool answered in answers)
        {
            Poll(schedule, answered);
        }
        Assert.Equal(0b1101, schedule.Reach);
        for (int i = 0; i < 8; i++)
        {
            Poll(schedule, answered: false);
        }
        Assert.Equal(0, schedule.Reach);
        Assert.Equal(SourceState.Unreachable, schedule.State(serverUnsynchronised: false));
    }

    [Fact]
    public void SteadySamples_RaiseThePollToMaxpoll_UnsteadyOnesLowerIt()
    {
        var schedule = new PollSchedule(4, 7, iburst: false);
        for (int i = 0; i < 100; i++)
        {
            Poll(schedule, answered: true, steady: true);
        }
        Assert.Equal(7, schedule.Poll);
        for (int i = 0; i < 100; i++)
        {
            Poll(schedule, answered: true, steady: false);
        }
        Assert.Equal(4, schedule.Poll);
    }

    [Fact]
    public void DeadServer_PollBacksOffTowardsMaxpoll()
    {
        var schedule = new PollSchedule(4, 8, iburst: true);
        for (int i = 0; i < 20; i++)
        {
            Poll(schedule, answered: false);
        }
        Assert.Equal(8, schedule.Poll);
        Assert.Equal(256, schedule.NextIntervalSeconds);
    }

    [Fact]
    public void KodRate_RaisesThePollToAtLeastTheServers_AndIsShownUntilAnOrdinaryAnswer()
    {
        var schedule = new PollSchedule(4, 6, iburst: false);
        schedule.OnSend();
        schedule.OnKissOfDeath(KissCode.Rate, serverPoll: 9);
        Assert.Equal(9, schedule.Poll); // beyond maxpoll: the server asked for it (RFC 5905 §7.4)
        Assert.Equal(SourceState.RateLimited, schedule.State(false));
        schedule.OnSend();
        schedule.OnKissOfDeath(KissCode.Rate, serverPoll: 0);
        Assert.Equal(10, schedule.Poll); // a second RATE doubles again
        for (int i = 0; i < 100; i++)
        {
            Poll(schedule, answered: true, steady: false);
        }
        Assert.Equal(10, schedule.Poll); // never faster again than the server asked
        Assert.Equal(SourceState.Reachable, schedule.State(false));
    }

    [Theory]
    [InlineData(KissCode.Deny)]
    [InlineData(KissCode.Restrict)]
    public void KodDenyOrRestrict_Stops(KissCode code)
    {
        var schedule = new PollSchedule(6, 10, iburst: true);
        schedule.OnSend();
        schedule.OnKissOfDeath(code, 6);
        Assert.True(schedule.Stopped);
        Assert.Equal(SourceState.Denied, schedule.State(false));
    }

    [Fact]
    public void MinpollAboveMaxpoll_IsRefused() =>
        Assert.Throws<ArgumentException>(() => new PollSchedule(8, 6, iburst: false));
}
