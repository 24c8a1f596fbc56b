namespace Appliance.Discipline.Tests;

public class VirtualClockTests
{
    [Fact]
    public void AStep_MovesServedTime()
    {
        var clock = new VirtualClock();
        clock.Apply(new ClockCommand.Step(2.5), Samples.At(0));
        Assert.Equal(Samples.At(10) + 2_500_000_000, clock.ToServed(Samples.At(10)));
    }

    [Fact]
    public void AFrequencyChange_KeepsServedTimeContinuous_AndChangesItsRate()
    {
        var clock = new VirtualClock();
        clock.Apply(new ClockCommand.SetFrequency(10e-6), Samples.At(0));
        Assert.Equal(Samples.At(100) + 1_000_000, clock.ToServed(Samples.At(100))); // +10 ppm × 100 s
        clock.Apply(new ClockCommand.SetFrequency(-10e-6), Samples.At(100));
        Assert.Equal(Samples.At(100) + 1_000_000, clock.ToServed(Samples.At(100))); // no jump at the change
        Assert.Equal(Samples.At(200), clock.ToServed(Samples.At(200)));
    }

    [Fact]
    public void StatusCommands_DoNotTouchServedTime()
    {
        var clock = new VirtualClock();
        clock.Apply(new ClockCommand.SetStatus(Appliance.Protocol.LeapIndicator.InsertSecond, true, 1e-3, 1e-4, 37), Samples.At(0));
        Assert.Equal(Samples.At(5), clock.ToServed(Samples.At(5)));
    }
}
