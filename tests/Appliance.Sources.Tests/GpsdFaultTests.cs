using Appliance.Protocol.Client;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Appliance.Sources.Tests;

/// <summary>The gpsd driver against a gpsd that keeps its connection but stops giving time.</summary>
public class GpsdFaultTests
{
    [Theory]
    [InlineData(FakeGpsdBehaviour.Stall)]
    [InlineData(FakeGpsdBehaviour.Garbage)]
    public async Task AGpsdThatStallsOrSendsOnlyGarbage_EmptiesItsReach_AndIsUnreachable_UntilReportsComeBack(FakeGpsdBehaviour fault)
    {
        await using var gpsd = new FakeGpsd();
        var source = new GpsdSource(new GpsdOptions { Host = "127.0.0.1", Port = gpsd.Port }, NullLogger.Instance);
        int samples = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        Task run = source.RunAsync((_, _) =>
        {
            Interlocked.Increment(ref samples);
            return true;
        }, stop.Token);
        string Describe() => $"{source.State}, reach {source.Reach:X2}, {Volatile.Read(ref samples)} samples, {source.Counters.Invalid} invalid, {gpsd.Connections} connections";

        await Eventually.TrueAsync(() => source.State == SourceState.Reachable && Volatile.Read(ref samples) >= 3, TimeSpan.FromSeconds(20), Describe);
        Assert.NotEqual(0, source.Reach);

        gpsd.Behaviour = fault;
        await Task.Delay(500); // a report already on its way
        int before = Volatile.Read(ref samples);
        // Before the fix the register only moved when a sample came, so it stayed full and the source
        // "reachable" for as long as the connection stayed up. Eight missed seconds empty it.
        await Eventually.TrueAsync(() => source.State == SourceState.Unreachable, TimeSpan.FromSeconds(15), Describe);
        Assert.Equal(0, source.Reach);
        Assert.Equal(before, Volatile.Read(ref samples));
        if (fault == FakeGpsdBehaviour.Garbage)
        {
            Assert.True(source.Counters.Invalid >= 5, Describe()); // every bad line counted
        }

        gpsd.Behaviour = FakeGpsdBehaviour.Reports;
        await Eventually.TrueAsync(() => source.State == SourceState.Reachable && Volatile.Read(ref samples) > before, TimeSpan.FromSeconds(20), Describe);
        Assert.Equal(1, source.Reach & 1);

        await stop.CancelAsync();
        try
        {
            await run;
        }
        catch (OperationCanceledException)
        {
            // a read cancelled mid-session ends the run this way
        }
    }
}
