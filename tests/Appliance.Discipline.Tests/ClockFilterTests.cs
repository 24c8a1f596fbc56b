namespace Appliance.Discipline.Tests;

public class ClockFilterTests
{
    [Fact]
    public void TheSampleOfLeastDelayIsChosen_RFC5905Section10()
    {
        var filter = new ClockFilter();
        filter.Add(Samples.Make(0, offset: 100e-6, delay: 900e-6));
        filter.Add(Samples.Make(16, offset: 5e-6, delay: 310e-6));
        filter.Add(Samples.Make(32, offset: -80e-6, delay: 700e-6));

        Assert.Equal(5e-6, filter.Best!.Value.Offset);
        Assert.Equal(310e-6, filter.MinimumDelay);
        // Jitter: RMS of the other offsets from the chosen one, over n − 1.
        double expected = Math.Sqrt((Math.Pow(95e-6, 2) + Math.Pow(85e-6, 2)) / 2);
        Assert.Equal(expected, filter.Jitter, 12);
    }

    [Fact]
    public void Add_SaysWhetherTheChoiceMovedToANewerSample()
    {
        var filter = new ClockFilter();
        Assert.True(filter.Add(Samples.Make(0, 0, delay: 300e-6)));
        Assert.False(filter.Add(Samples.Make(16, 1e-3, delay: 800e-6))); // noisier: the old choice stands
        Assert.True(filter.Add(Samples.Make(32, 2e-6, delay: 290e-6)));
        Assert.Equal(Samples.At(32), filter.Best!.Value.LocalTime);
    }

    [Fact]
    public void KeepsEightStages_TheOldestFallsOut()
    {
        var filter = new ClockFilter();
        filter.Add(Samples.Make(0, 0, delay: 100e-6));
        for (int i = 1; i <= 8; i++)
        {
            filter.Add(Samples.Make(16 * i, i * 1e-6, delay: 300e-6 + (i * 1e-6)));
        }
        Assert.Equal(8, filter.Count);
        Assert.Equal(1e-6, filter.Best!.Value.Offset); // the 100 µs sample is gone
    }

    [Fact]
    public void FirstSamples_AreTrustedOnlyAsFarAsTheirDelayAllows()
    {
        var filter = new ClockFilter();
        filter.Add(Samples.Make(0, 0, delay: 20e-3));
        // One sample on a 20 ms path: |error| ≤ 10 ms, uniform → variance δ²/12.
        Assert.Equal(20e-3 * 20e-3 / 12, filter.VarianceOf(filter.Best!.Value), 12);
        for (int i = 1; i < 8; i++)
        {
            filter.Add(Samples.Make(64 * i, 0, delay: 20e-3));
        }
        Assert.True(filter.VarianceOf(filter.Best!.Value) < 1e-12, "eight agreeing samples at the minimum delay are trusted");
    }

    [Fact]
    public void Clear_ForgetsEverything()
    {
        var filter = new ClockFilter();
        filter.Add(Samples.Make(0, 0.2));
        filter.Clear();
        Assert.Null(filter.Best);
        Assert.Equal(0, filter.Count);
        Assert.True(double.IsPositiveInfinity(filter.MinimumDelay));
    }
}
