namespace Appliance.Discipline.Tests;

public class VirtualClockTests
{
    /// <summary>A virtual clock over a system clock the test sets by hand.</summary>
    private sealed class Fixture
    {
        public long System { get; set; } = Samples.At(0);

        public VirtualClock Clock { get; }

        public Fixture() => Clock = new VirtualClock(() => System);

        public long ServedAt(double seconds)
        {
            System = Samples.At(seconds);
            return Clock.Now();
        }
    }

    [Fact]
    public void AStep_MovesServedTime()
    {
        var f = new Fixture();
        f.Clock.Apply([new ClockCommand.Step(2.5)]);
        Assert.Equal(Samples.At(10) + 2_500_000_000, f.ServedAt(10));
        Assert.Equal(Samples.At(10) + 2_500_000_000, f.Clock.Transform.Apply(Samples.At(10)));
    }

    [Fact]
    public void AFrequencyChange_KeepsServedTimeContinuous_AndChangesItsRate()
    {
        var f = new Fixture();
        f.Clock.Apply([new ClockCommand.SetFrequency(10e-6)]);
        Assert.Equal(Samples.At(100) + 1_000_000, f.ServedAt(100)); // +10 ppm × 100 s
        f.Clock.Apply([new ClockCommand.SetFrequency(-10e-6)]);
        Assert.Equal(Samples.At(100) + 1_000_000, f.ServedAt(100)); // no jump at the change
        Assert.Equal(Samples.At(200), f.ServedAt(200));
    }

    [Fact]
    public void StatusCommands_DoNotTouchServedTime()
    {
        var f = new Fixture();
        f.Clock.Apply([new ClockCommand.SetStatus(Appliance.Protocol.LeapIndicator.InsertSecond, true, 1e-3, 1e-4, 37)]);
        Assert.Equal(Samples.At(5), f.ServedAt(5));
    }
}
