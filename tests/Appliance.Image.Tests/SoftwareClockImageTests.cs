using System.Globalization;
using System.Text.RegularExpressions;
using Appliance.Testing;
using Xunit.Abstractions;

namespace Appliance.Image.Tests;

/// <summary>The image with clock.mode software and the software-clock drop-in (<see cref="ImageVm"/>, booted once more).</summary>
public sealed class SoftwareClockImageVm() : ImageVm(softwareClock: true);

/// <summary>
/// The software-clock appliance (appliance-image/systemd/software-clock.conf): no CAP_SYS_TIME, no clock
/// calls, a private /dev, and still serving; the exposure issue #17 asks for, in force in a booted image.
/// </summary>
[Collection(ImageVms.Name)]
public sealed partial class SoftwareClockImageTests(SoftwareClockImageVm vm, ITestOutputHelper output) : IClassFixture<SoftwareClockImageVm>
{
    /// <summary>CAP_NET_BIND_SERVICE (10) alone.</summary>
    private const string PortCapability = "0000000000000400";

    [GeneratedRegex(@"System clock wrong by (-?[0-9.]+) seconds")]
    private static partial Regex ChronyOffset();

    [Fact]
    public void Service_IsActive_WithoutTheClock_AndWithAPrivateDev()
    {
        string show = vm.Section("show");
        Assert.Contains("ActiveState=active", show, StringComparison.Ordinal);
        Assert.Contains("NRestarts=0", show, StringComparison.Ordinal);
        Assert.Contains("ProtectClock=yes", show, StringComparison.Ordinal);
        Assert.Contains("PrivateDevices=yes", show, StringComparison.Ordinal);
        Assert.Contains("CapabilityBoundingSet=cap_net_bind_service\n", show + "\n", StringComparison.Ordinal);
        Assert.Contains("AmbientCapabilities=cap_net_bind_service\n", show + "\n", StringComparison.Ordinal);
        string filter = show.Split('\n').Single(l => l.StartsWith("SystemCallFilter=", StringComparison.Ordinal));
        Assert.DoesNotContain(" clock_adjtime ", filter + " ", StringComparison.Ordinal);
        Assert.DoesNotContain(" adjtimex ", filter + " ", StringComparison.Ordinal);
    }

    [Fact]
    public void Process_HoldsOnlyThePortCapability()
    {
        string status = vm.Section("status");
        foreach (string set in new[] { "CapEff", "CapPrm", "CapAmb", "CapBnd" })
        {
            Assert.Matches($@"(?m)^{set}:\s+{PortCapability}$", status);
        }
    }

    [Fact]
    public async Task SystemdAnalyzeSecurity_InTheGuest_ScoresAtMost1_5_AsOffline()
    {
        double score = Hardening.Exposure(vm.Section("security"));
        double offline = Hardening.Exposure((await Hardening.AnalyzeSoftwareClockOfflineAsync()).StdOut);
        output.WriteLine($"software-clock exposure in the guest: {score}; offline: {offline}");
        Assert.True(score <= Hardening.SoftwareClockExposureBound, vm.Section("security"));
        Assert.Equal(offline, score);
    }

    [Fact]
    public async Task Chronyd_GetsTheTime_AndNothingWasDeniedOrKilled()
    {
        CommandResult result = await vm.ChronyQuery.Value;
        Assert.True(result.ExitCode == 0 && ChronyOffset().IsMatch(result.Output), result.ToString());
        double offset = double.Parse(ChronyOffset().Match(result.Output).Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(Math.Abs(offset) < 5, result.ToString());
        await vm.ScrapeAsync();
        IReadOnlyDictionary<string, string> late = await vm.RequestAsync("report");
        string[] lines = late["denials"].Split('\n').Where(l => l.Length > 0 && !l.StartsWith("sigsys:", StringComparison.Ordinal)).ToArray();
        Assert.True(lines.Length == 0, late["denials"] + "\n" + late["journal"]);
        Assert.Contains("sigsys: 0", late["denials"], StringComparison.Ordinal);
    }
}

/// <summary>One VM at a time: two emulated guests on a 2-core machine would each slow the other past its timeouts.</summary>
[CollectionDefinition(Name)]
public static class ImageVms
{
    public const string Name = "image VMs";
}
