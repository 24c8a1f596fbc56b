using System.Globalization;
using System.Text.RegularExpressions;
using Appliance.Testing;
using Xunit.Abstractions;

namespace Appliance.Image.Tests;

public sealed class HonestRoughtimeColdStartVm() : ImageVm(softwareClock: false, ColdStartRoughtime.Honest);

public sealed class StoppedRoughtimeColdStartVm() : ImageVm(softwareClock: false, ColdStartRoughtime.Stopped);

public sealed class LyingRoughtimeColdStartVm() : ImageVm(softwareClock: false, ColdStartRoughtime.AnHourAhead);

/// <summary>
/// A cold start for real (issue #21, docs/deploying.md#cold-start): the guest boots with its RTC in
/// 2019 (QEMU's -rtc base; systemd then moves the clock up to its own build time, months back), in kernel mode,
/// its only time an NTS server on the host whose certificate is two hours old, and a Roughtime
/// server on the host. The guest's appliance must see that its clock is wrong, bound the time, get
/// through NTS-KE, step and then discipline the guest's clock, and serve it within 1 ms to a chronyd
/// on the host. This is also the first end-to-end test of kernel-mode steering on a real kernel clock.
/// </summary>
public static partial class ColdStart
{
    [GeneratedRegex(@"System clock wrong by (-?[0-9.]+) seconds")]
    private static partial Regex ChronyOffset();

    /// <summary>The guest appliance's journal, as the reporter gives it now.</summary>
    public static async Task<string> JournalAsync(ImageVm vm) => (await vm.RequestAsync("report"))["journal"];

    /// <summary>Waits (bounded) until the guest appliance's journal holds <paramref name="text"/>; returns the journal.</summary>
    public static async Task<string> WaitForJournalAsync(ImageVm vm, string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        string journal;
        do
        {
            journal = await JournalAsync(vm);
            if (journal.Contains(text, StringComparison.Ordinal))
            {
                return journal;
            }
            await Task.Delay(5000);
        }
        while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"no '{text}' in the guest's journal within {timeout.TotalSeconds} s:\n{journal}");
    }

    /// <summary>
    /// The guest's served time against the host's clock, by `chronyd -Q` on the host (it never sets
    /// the clock) through the forwarded port: the smallest |offset| of up to three runs, each of a
    /// burst of samples (the emulated guest's scheduling adds jitter of its own). Seconds.
    /// </summary>
    public static async Task<double> HostChronydOffsetAsync(ImageVm vm, ITestOutputHelper output)
    {
        double best = double.PositiveInfinity;
        for (int run = 0; run < 3 && Math.Abs(best) >= 0.001; run++)
        {
            string pid = Path.Combine(vm.Directory, $"chronyq-{run}.pid");
            CommandResult result = await Run.CommandAsync("chronyd",
                ["-Q", "-t", "30", $"server 127.0.0.1 port {vm.NtpPort} iburst", $"pidfile {pid}", "cmdport 0"], TimeSpan.FromSeconds(60));
            Match match = ChronyOffset().Match(result.Output);
            Assert.True(result.ExitCode == 0 && match.Success, result.ToString());
            double offset = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
            output.WriteLine($"chronyd -Q run {run}: the host clock minus the guest's served time: {offset * 1e3:F3} ms");
            if (Math.Abs(offset) < Math.Abs(best))
            {
                best = offset;
            }
        }
        return best;
    }

    /// <summary>What every cold start that synchronises shows: the wrong clock seen, stepped to the floor, synchronised over NTS, stepped to the truth.</summary>
    public static async Task<string> AssertSynchronisedFromAWrongClockAsync(ImageVm vm)
    {
        string status = await vm.KernelSync.Value;
        Assert.True(ImageVm.IsKernelSynchronised(status), status);
        Assert.Matches(@"Stratum\s+:\s+2\b", status);
        string journal = await JournalAsync(vm);
        // The system clock at start: not the RTC's 2019, but the build time of the image's systemd, to
        // which PID 1 moves a clock that is behind it (clock_apply_epoch; it cannot be set lower). Months
        // before the certificate, and before the floor.
        Match wrong = Regex.Match(journal, @"the system clock reads (\d{4}-\d\d-\d\d [0-9:]+) UTC, before ");
        Assert.True(wrong.Success, journal);
        DateTime read = DateTime.ParseExact(wrong.Groups[1].Value, "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal);
        // Before the upstream's certificate became valid (two hours ago): what makes this a cold start.
        Assert.True(read < vm.UpstreamCertificate.Certificate.NotBefore.ToUniversalTime(), $"the guest's clock read {read:u} at start\n{journal}");
        Assert.Contains("stepping it to that time first (kernel mode)", journal, StringComparison.Ordinal);
        Assert.Contains("synchronised to", journal, StringComparison.Ordinal);
        Assert.DoesNotContain("clock: refused", journal, StringComparison.Ordinal);
        return journal;
    }
}

[Collection(ImageVms.Name)]
public sealed class HonestRoughtimeColdStartTests(HonestRoughtimeColdStartVm vm, ITestOutputHelper output) : IClassFixture<HonestRoughtimeColdStartVm>
{
    [Fact]
    public async Task AGuestMonthsBehind_BoundsTheTimeByRoughtime_GetsThroughNtsKe_StepsAndServesWithin1ms()
    {
        string journal = await ColdStart.AssertSynchronisedFromAWrongClockAsync(vm);
        // The floor (a day before the commit) is before the certificate's start: NTS-KE got through on the bound.
        Assert.Contains("clock: Roughtime: 1 of 1 servers agree that now is", journal, StringComparison.Ordinal);
        double offset = await ColdStart.HostChronydOffsetAsync(vm, output);
        Assert.True(Math.Abs(offset) < 0.001, $"offset {offset * 1e3:F3} ms\n{journal}");
    }
}

[Collection(ImageVms.Name)]
public sealed class StoppedRoughtimeColdStartTests(StoppedRoughtimeColdStartVm vm, ITestOutputHelper output) : IClassFixture<StoppedRoughtimeColdStartVm>
{
    [Fact]
    public async Task WithRoughtimeSilent_ARecentLastKnownTime_CarriesNtsKeAlone()
    {
        string journal = await ColdStart.AssertSynchronisedFromAWrongClockAsync(vm);
        Assert.Contains("the last known good time, from /var/lib/appliance/last-known-time", journal, StringComparison.Ordinal);
        Assert.Contains("fewer than 1 of 1 servers agree", journal, StringComparison.Ordinal);
        double offset = await ColdStart.HostChronydOffsetAsync(vm, output);
        Assert.True(Math.Abs(offset) < 0.001, $"offset {offset * 1e3:F3} ms\n{journal}");
    }
}

[Collection(ImageVms.Name)]
public sealed class LyingRoughtimeColdStartTests(LyingRoughtimeColdStartVm vm) : IClassFixture<LyingRoughtimeColdStartVm>
{
    [Fact]
    public async Task ARoughtimeServerAnHourAhead_GetsTheFirstSynchronisation_Refused()
    {
        string journal = await ColdStart.WaitForJournalAsync(vm, "clock: refused", TimeSpan.FromMinutes(3));
        Assert.Contains("clock: Roughtime: 1 of 1 servers agree that now is", journal, StringComparison.Ordinal);
        Assert.Contains("it is wrong", journal, StringComparison.Ordinal);
        string status = (await vm.RequestAsync("status"))["status"];
        Assert.False(ImageVm.IsKernelSynchronised(status), status);
        Assert.DoesNotContain("synchronised to", await ColdStart.JournalAsync(vm), StringComparison.Ordinal);
    }
}
