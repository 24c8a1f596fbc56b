using System.Globalization;
using Appliance.Discipline;
using Xunit.Abstractions;

namespace Appliance.Simulation;

/// <summary>
/// The clock core's numeric limits (issue 6, docs/clock.md), each over the seeds of
/// <see cref="Seeds"/>. Every run prints one line per seed, which is where the figures in
/// docs/clock.md come from (`make check`).
/// </summary>
public class ScenarioTests(ITestOutputHelper output)
{
    private static readonly ClockCoreOptions s_defaults = new() { Precision = -24 };

    private static string F(double seconds) =>
        (seconds * 1e6).ToString(Math.Abs(seconds) < 1e-6 ? "0.000" : "0.0", CultureInfo.InvariantCulture) + " µs";

    private SimResult Run(string scenario, SimSettings settings, int seed, ClockCoreOptions? options = null)
    {
        SimResult r = Simulator.Run(settings, seed, options ?? s_defaults);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{scenario} seed {seed}: |error| p50 {F(r.ServedErrorP50)} p99 {F(r.ServedErrorP99)} max {F(r.ServedErrorMax)}, frequency error {r.FrequencyError * 1e6:0.000} ppm, within 25 µs from {r.ConvergedAfter / 60:0.0} min"));
        return r;
    }

    /// <summary>Null when the published root dispersion bounded the true error at every synchronised second.</summary>
    private static string? Understated(SimResult r)
    {
        var p = r.Trace.FirstOrDefault(p => p.Synchronised && Math.Abs(p.Error) > p.RootDispersion);
        return p == default ? null : $"at {p.Time / 3600:0.00} h the error {F(p.Error)} exceeded the root dispersion {F(p.RootDispersion)}";
    }

    private static string? LanLimits(SimResult r) =>
        r.ServedErrorP99 >= 25e-6 || Math.Abs(r.FrequencyError) >= 0.1e-6
            ? $"p99 {F(r.ServedErrorP99)}, frequency error {r.FrequencyError * 1e6:0.000} ppm"
            : Understated(r);

    [Fact]
    public void Lan_ThreeUpstreams_100usJitter_ServedErrorP99Under25us_FrequencyWithin0p1ppm() =>
        Seeds.Check("LAN, software mode", seed => LanLimits(Run("lan-software", new SimSettings(), seed)));

    [Fact]
    public void Lan_KernelMode_SteeredClock_MeetsTheSameLimits() =>
        Seeds.Check("LAN, kernel mode", seed => LanLimits(Run("lan-kernel", new SimSettings { SteerClock = true }, seed)));

    [Fact]
    public void Wan_10msPaths_1msJitter_Poll64_StaysWithin200usAndHonest() =>
        Seeds.Check("WAN", seed =>
        {
            SimResult r = Run("wan", new SimSettings { BaseDelay = 10e-3, Jitter = 1e-3, Poll = 64 }, seed);
            return r.ServedErrorP99 >= 200e-6 ? $"p99 {F(r.ServedErrorP99)}" : Understated(r);
        });

    [Fact]
    public void FrequencyJumpsBy1ppm_Reconverges_Within30Minutes() =>
        Seeds.Check("frequency step", seed =>
        {
            var at = TimeSpan.FromHours(3);
            SimResult r = Run("frequency-step", new SimSettings { FrequencyStepAt = at, FrequencyStep = 1e-6 }, seed);
            double after = r.ConvergedAfter - at.TotalSeconds;
            return after >= 1800 || r.ServedErrorMax >= 1e-3
                ? $"within 25 µs again only {after / 60:0.0} min after the step, max {F(r.ServedErrorMax)}"
                : Understated(r);
        });

    [Fact]
    public void Stratum1_GpsWithPps_50nsJitter_ServedErrorP99Under1us() =>
        Seeds.Check("GPS + PPS", seed =>
        {
            SimResult r = Run("gps-pps", new SimSettings { PpsJitter = 50e-9, Loss = 0.001 }, seed);
            return r.ServedErrorP99 >= 1e-6 ? $"p99 {F(r.ServedErrorP99)}" : Understated(r);
        });

    [Fact]
    public void Falseticker_HalfASecondOff_AmongThree_IsNeverSelected() =>
        Seeds.Check("falseticker", seed =>
        {
            SimResult r = Run("falseticker", new SimSettings { ServerOffsets = [0, 0, 0.5], Duration = TimeSpan.FromHours(4) }, seed);
            if (r.EverSelected.Contains("server2"))
            {
                return "the falseticker was selected";
            }
            return r.FinalStatus["server2"] != PeerStatus.Falseticker || r.ServedErrorP99 >= 25e-6
                ? $"status {r.FinalStatus["server2"]}, p99 {F(r.ServedErrorP99)}"
                : null;
        }, toleratedFailureFraction: 0);

    [Fact]
    public void Holdover_24Hours_RootDispersionAlwaysBoundsTheTrueError() =>
        Seeds.Check("holdover", seed =>
        {
            var settings = new SimSettings
            {
                Duration = TimeSpan.FromHours(27),
                Settle = TimeSpan.FromHours(2),
                LoseSourcesAfter = TimeSpan.FromHours(3),
            };
            SimResult r = Run("holdover", settings, seed, s_defaults with { Holdover = TimeSpan.FromHours(48) });
            var end = r.Trace[^1];
            output.WriteLine($"  after 24 h of holdover: error {F(end.Error)}, root dispersion {F(end.RootDispersion)}");
            return Understated(r) ?? (end.Synchronised ? null : "lost synchronisation inside the holdover budget");
        }, toleratedFailureFraction: 0);

    [Fact]
    public void HoldoverBudgetSpent_ServesUnsynchronised()
    {
        var settings = new SimSettings { Duration = TimeSpan.FromHours(5), Settle = TimeSpan.FromHours(1), LoseSourcesAfter = TimeSpan.FromHours(2) };
        SimResult r = Run("holdover-budget", settings, 1, s_defaults with { Holdover = TimeSpan.FromHours(1) });
        Assert.True(r.Trace.Single(p => p.Time == 3600).Synchronised);
        Assert.True(r.Trace.Single(p => p.Time == 2.5 * 3600).Synchronised); // in holdover, within budget
        Assert.False(r.Trace.Single(p => p.Time == 3.5 * 3600).Synchronised); // budget spent: LI = 3, stratum 16
        Assert.False(r.Trace[^1].Synchronised);
    }

    [Fact]
    public void LocalClockTwoSecondsOff_SoftwareModeServesTrueTime_KernelModeStepsOnce() =>
        Seeds.Check("initial offset", seed =>
        {
            SimResult soft = Run("2s-off-software", new SimSettings { InitialOffset = 2, Duration = TimeSpan.FromHours(4) }, seed);
            SimResult kernel = Run("2s-off-kernel", new SimSettings { InitialOffset = 2, SteerClock = true, Duration = TimeSpan.FromHours(4) }, seed);
            return soft.ServedErrorP99 >= 25e-6 || kernel.ServedErrorP99 >= 25e-6
                ? $"software p99 {F(soft.ServedErrorP99)}, kernel p99 {F(kernel.ServedErrorP99)}"
                : Understated(soft) ?? Understated(kernel);
        });

    [Fact]
    public void PanicOffset_IsRefusedUnlessAllowedAtStart()
    {
        var settings = new SimSettings { InitialOffset = 5000, Duration = TimeSpan.FromHours(4), Settle = TimeSpan.FromHours(2) };
        SimResult refused = Run("panic-refused", settings, 1, s_defaults with { AllowPanicStepAtStart = false });
        Assert.All(refused.Trace, p => Assert.False(p.Synchronised));
        SimResult allowed = Run("panic-allowed", settings, 1, s_defaults with { AllowPanicStepAtStart = true });
        Assert.True(allowed.Trace[^1].Synchronised);
        Assert.True(allowed.ServedErrorP99 < 25e-6, F(allowed.ServedErrorP99));
    }
}
