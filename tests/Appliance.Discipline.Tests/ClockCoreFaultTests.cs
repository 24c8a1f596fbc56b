using Appliance.Protocol;

namespace Appliance.Discipline.Tests;

/// <summary>
/// A single source that turns false (its time jumps and stays, or jumps and comes back) against the
/// real core steering a <see cref="VirtualClock"/> over a perfect simulated system clock, which is
/// the truth. "Never a lie" is checked every second: the served time is within the error bound the
/// state announces, |served − truth| ≤ root delay / 2 + root dispersion (RFC 5905 §11.2: the root
/// distance), or the state says LI = 3.
/// </summary>
public class ClockCoreFaultTests
{
    private sealed class Rig
    {
        private long _system = Samples.Start;

        public Rig(ClockCoreOptions? options = null)
        {
            Clock = new VirtualClock(() => _system);
            Core = new ClockCore(options ?? new ClockCoreOptions());
            Source = Core.AddPeer("only", 0xC0000201);
            Source.PollSeconds = 1;
        }

        public VirtualClock Clock { get; }

        public ClockCore Core { get; }

        public Peer Source { get; }

        public List<string> Lies { get; } = [];

        /// <summary>Every step the core commanded, seconds.</summary>
        public List<double> Steps { get; } = [];

        public ServerState State { get; private set; } = ServerState.Unsynchronised(-20);

        public double Seconds => (_system - Samples.Start) / 1e9;

        /// <summary>
        /// One second: the source reports the truth plus <paramref name="sourceError"/> (null: no
        /// sample), measured against the steered clock over a 200 µs loopback-like round trip; then
        /// the core's tick; then the check.
        /// </summary>
        public void Second(double? sourceError)
        {
            _system += 1_000_000_000;
            long local = Clock.Now();
            if (sourceError is { } error)
            {
                double offset = ((_system - local) / 1e9) + error;
                var sample = new Sample(local, offset, 200e-6, 1e-6, RootDelay: 0, RootDispersion: 10e-6, 1, LeapIndicator.NoWarning, 0x47505300);
                Apply(Core.OnSample(Source, sample, local));
            }
            Apply(Core.Tick(Clock.Now()));
            double served = (Clock.Now() - _system) / 1e9;
            double bound = (State.RootDelay / 2) + State.RootDispersion;
            if (State.IsSynchronised && Math.Abs(served) > bound && Lies.Count < 10)
            {
                Lies.Add($"at {Seconds:F0} s ({Core.Status}): served − truth {served:E3} s, bound {bound:E3} s");
            }
        }

        private void Apply(ClockUpdate update)
        {
            Steps.AddRange(update.Commands.OfType<ClockCommand.Step>().Select(c => c.Seconds));
            Clock.Apply(update.Commands);
            State = update.State;
        }
    }

    [Fact]
    public void ASingleSourceThatJumps1sAndBack_IsNotFollowed_AndTheBoundHoldsEverySecond()
    {
        var rig = new Rig();
        for (int i = 0; i < 60; i++)
        {
            rig.Second(0);
        }
        Assert.Equal(ClockCoreStatus.Synchronised, rig.Core.Status);
        double before = rig.State.RootDispersion;

        for (int i = 0; i < 20; i++)
        {
            rig.Second(1.0); // a PTP master stepping its time by 1 s for 20 s
        }
        // Not followed: the served time stayed on the truth, and the bound did not shrink below what the wait costs.
        Assert.True(Math.Abs((rig.Clock.Now() - (Samples.Start + (long)(rig.Seconds * 1e9))) / 1e9) < 1e-3);
        Assert.True(!rig.State.IsSynchronised || rig.State.RootDispersion > before, $"{rig.State.RootDispersion} after, {before} before");

        for (int i = 0; i < 30; i++)
        {
            rig.Second(0);
        }
        Assert.Equal(ClockCoreStatus.Synchronised, rig.Core.Status);
        Assert.True(rig.Lies.Count == 0, string.Join("\n", rig.Lies));
    }

    [Fact]
    public void ASingleSourceThatJumps1sAndStays_IsNotBelievedBeforeTheStepout_ThenIsStepped_RFC5905Section11_3()
    {
        // With nothing to outvote it, the only source that jumps and stays is a spike until it has
        // lasted the stepout (300 s); then the core steps to it, as ntpd does. Until then it serves
        // what it knew, honestly: the bound grows by at least PHI a second.
        var rig = new Rig();
        for (int i = 0; i < 60; i++)
        {
            rig.Second(0);
        }
        double before = rig.State.RootDispersion;
        for (int i = 1; i < 300; i++)
        {
            rig.Second(1.0);
            Assert.True(rig.State.IsSynchronised, $"at {rig.Seconds} s: {rig.Core.Status}");
        }
        Assert.Empty(rig.Steps);
        Assert.True(rig.Lies.Count == 0, string.Join("\n", rig.Lies));
        Assert.True(rig.State.RootDispersion >= before + (ServerState.Phi * 290), $"{rig.State.RootDispersion} s after 300 s of spike, {before} s before");

        for (int i = 0; i < 10; i++)
        {
            rig.Second(1.0);
        }
        double step = Assert.Single(rig.Steps);
        Assert.InRange(step, 0.999, 1.001);
        Assert.Equal(ClockCoreStatus.Synchronised, rig.Core.Status);
    }

    [Fact]
    public void ASingleSourceThatJumpsAnHour_IsNeverFollowed_AndAfterTheStepout_SaysLI3()
    {
        // An hour is beyond the panic threshold (1000 s): past the stepout the core refuses it and
        // says it is not synchronised, rather than keep serving a time its only source contradicts.
        var rig = new Rig();
        for (int i = 0; i < 60; i++)
        {
            rig.Second(0);
        }
        for (int i = 0; i < 400; i++)
        {
            rig.Second(3600);
        }
        Assert.Empty(rig.Steps);
        Assert.True(rig.Lies.Count == 0, string.Join("\n", rig.Lies));
        Assert.Equal(ClockCoreStatus.Panic, rig.Core.Status);
        Assert.Equal(LeapIndicator.Unsynchronised, rig.State.Leap);
        Assert.Equal(ServerState.UnsynchronisedStratum, rig.State.Stratum);
    }
}
