using System.Text;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Sources;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging.Abstractions;

namespace Appliance.Sources.Tests;

/// <summary>
/// The reference-clock drivers against recorded and simulated device data through the same
/// interfaces the kernel devices implement: this machine has no /dev/pps* and no /dev/ptp*.
/// </summary>
public class ReferenceClockTests
{
    private const long Second = 1_000_000_000;
    private const long Start = 1_795_435_200 * Second; // 2026-11-23

    private static double Offset(Measurement m) => ((m.T2 - m.T1) + (double)(m.T3 - m.T4)) / 2e9;

    private static double Delay(Measurement m) => ((m.T4 - m.T1) - (double)(m.T3 - m.T2)) / 1e9;

    /// <summary>Edges as a PPS device would deliver them: system time of each true second, for a clock off by <c>offset</c> and drifting.</summary>
    private sealed class SimulatedPps(double offset, double drift, double jitter, int seed) : IPpsDevice
    {
        private readonly Random _random = new(seed);
        private uint _sequence;

        public string Path => "/dev/pps-simulated";

        /// <summary>Seconds whose pulse is missing, and an extra pulse 300 µs off once.</summary>
        public HashSet<uint> Missing { get; } = [];

        public uint? Spurious { get; set; }

        /// <summary>True (offset true − system) at pulse <paramref name="n"/>.</summary>
        public double TrueOffset(uint n) => offset + (drift * n);

        public PpsEdge? Fetch(bool clear, TimeSpan timeout)
        {
            _sequence++;
            if (Missing.Contains(_sequence))
            {
                return null;
            }
            long trueTime = Start + (_sequence * Second);
            double noise = jitter * ((_random.NextDouble() * 2) - 1);
            double error = _sequence == Spurious ? 300e-6 : 0;
            return new PpsEdge(_sequence, trueTime - (long)Math.Round((TrueOffset(_sequence) + noise + error) * 1e9));
        }

        public void Dispose()
        {
        }
    }

    [Fact]
    public void Pps_NumberedByTimeOfDay_GivesTheTrueOffset_AndDropsASpuriousPulse()
    {
        // The system clock is 0.25 s behind and drifts 20 ppm; the time of day (serial GPS) is 30 ms off.
        var device = new SimulatedPps(offset: 0.25, drift: 20e-6, jitter: 50e-9, seed: 1) { Spurious = 10 };
        var pps = new PpsSource(device, new PpsOptions(), _ => 0.25 + 0.030, NullLogger.Instance);

        var measurements = new List<(uint, Measurement)>();
        for (uint n = 1; n <= 30; n++)
        {
            if (device.Fetch(false, TimeSpan.Zero) is { } edge && pps.Process(edge) is { } m)
            {
                measurements.Add((n, m));
            }
        }

        Assert.Equal(29, measurements.Count);
        Assert.DoesNotContain(measurements, x => x.Item1 == 10);
        Assert.Equal(1, pps.Counters.Invalid);
        foreach ((uint n, Measurement m) in measurements)
        {
            Assert.InRange(Offset(m) - device.TrueOffset(n), -60e-9, 60e-9);
            Assert.Equal(0, Delay(m));
            Assert.Equal(0, m.Response.Stratum);
            Assert.Equal(ReferenceIds.Pps, m.Response.ReferenceId);
            Assert.Equal(0, m.T2 % Second); // on a whole second
        }
    }

    [Fact]
    public void Pps_WithoutTimeOfDay_OrOneTooFarOff_IsNotUsed()
    {
        var device = new SimulatedPps(offset: 0.25, drift: 0, jitter: 50e-9, seed: 2);
        var unknown = new PpsSource(device, new PpsOptions(), _ => null, NullLogger.Instance);
        Assert.Null(unknown.Process(device.Fetch(false, TimeSpan.Zero)!.Value));
        Assert.Equal(1, unknown.Counters.Invalid);

        // A time of day 0.45 s from the pulse's offset could name the wrong second: refused.
        var far = new PpsSource(device, new PpsOptions(), _ => 0.25 + 0.45, NullLogger.Instance);
        for (int i = 0; i < 5; i++)
        {
            Assert.Null(far.Process(device.Fetch(false, TimeSpan.Zero)!.Value));
        }
        Assert.Equal(5, far.Counters.Invalid);
    }

    [Fact]
    public async Task Pps_RunLoop_CountsMissingPulsesInReach()
    {
        var device = new SimulatedPps(offset: 0.1, drift: 0, jitter: 0, seed: 3);
        device.Missing.UnionWith([3, 5]);
        var pps = new PpsSource(device, new PpsOptions(), _ => 0.1, NullLogger.Instance);
        int samples = 0;
        using var stop = new CancellationTokenSource();
        Task run = pps.RunAsync((_, _) =>
        {
            if (++samples == 6)
            {
                stop.Cancel();
            }
            return true;
        }, stop.Token);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0b11010111, pps.Reach & 0xff); // pulses 1 2 _ 4 _ 6 7 8 → 1101 0111
        Assert.Equal(SourceState.Reachable, pps.State);
    }

    /// <summary>PTP_SYS_OFFSET as a PHC on TAI would answer: readings bracketed by system times of varying width.</summary>
    private sealed class SimulatedPhc(double phcMinusUtc) : IPhcDevice
    {
        public string Path => "/dev/ptp-simulated";

        public IReadOnlyList<PhcReading> Read(int samples)
        {
            var readings = new List<PhcReading>();
            long system = Start;
            for (int i = 0; i < samples; i++)
            {
                long before = system;
                long width = i == 3 ? 1_200 : 4_000 + (i * 500); // ns; the fourth is the narrowest
                long after = before + width;
                // The PHC was read somewhere inside the bracket (not at its middle, except for the best).
                long readAt = i == 3 ? before + (width / 2) : before + (width / 5);
                readings.Add(new PhcReading(before, readAt + (long)Math.Round(phcMinusUtc * 1e9), after));
                system = after + 300;
            }
            return readings;
        }

        public void Dispose()
        {
        }
    }

    [Fact]
    public void Phc_UsesTheNarrowestBracket_AndTheUtcOffset()
    {
        var phc = new PhcSource(new SimulatedPhc(37 + 2.5e-6), new PhcOptions { UtcOffset = 37 }, NullLogger.Instance);
        Measurement m = phc.Take();
        Assert.Equal(1.2e-6, Delay(m), 9);
        Assert.Equal(2.5e-6, Offset(m), 9);
        Assert.Equal(ReferenceIds.Phc, m.Response.ReferenceId);
        Assert.Equal(0, m.Response.Stratum);
    }

    private static GpsdSource Gpsd() => new(new GpsdOptions { Host = "127.0.0.1", SerialDelay = 0.2 }, NullLogger.Instance);

    private static string Toff(long real, long clock, string kind = "TOFF") =>
        $"{{\"class\":\"{kind}\",\"device\":\"/dev/ttyS0\",\"real_sec\":{real / Second},\"real_nsec\":{real % Second},\"clock_sec\":{clock / Second},\"clock_nsec\":{clock % Second},\"precision\":-20}}";

    private const string Fix3D = "{\"class\":\"TPV\",\"device\":\"/dev/ttyS0\",\"mode\":3,\"time\":\"2026-11-23T00:00:01.000Z\",\"ept\":0.005}";

    [Fact]
    public void Gpsd_RecordedSession_TimeFromTheMedianOfFiveSerialReports_PpsEdgesDirect()
    {
        GpsdSource gpsd = Gpsd();
        Assert.Null(gpsd.Handle("{\"class\":\"VERSION\",\"release\":\"3.22\",\"proto_major\":3,\"proto_minor\":14}"));
        Assert.Null(gpsd.Handle(Fix3D));
        Assert.Null(gpsd.Handle("{\"class\":\"SKY\",\"device\":\"/dev/ttyS0\",\"satellites\":[{\"PRN\":1,\"used\":true},{\"PRN\":2,\"used\":true},{\"PRN\":3,\"used\":true},{\"PRN\":4,\"used\":true},{\"PRN\":5,\"used\":false}]}"));
        // Serial reports arrive 20 ms after their second, one of them 450 ms late (gpsd's first cycle).
        long[] latency = [450_000_000, 20_000_000, 21_000_000, 19_000_000, 20_500_000, 20_000_000];
        Measurement? last = null;
        for (int i = 0; i < latency.Length; i++)
        {
            long real = Start + (i * Second);
            last = gpsd.Handle(Toff(real, real + latency[i]));
            if (i < 4)
            {
                Assert.Null(last); // the median needs five
            }
        }
        Assert.NotNull(last);
        Assert.InRange(Offset(last!.Value), -0.021, -0.020); // the late one is never the median
        Assert.Equal(0.2, Delay(last.Value), 6);
        Assert.Equal(ReferenceIds.Gps, gpsd.ReferenceId);

        Measurement pps = gpsd.Handle(Toff(Start + (9 * Second), Start + (9 * Second) - 1_500, "PPS"))!.Value;
        Assert.Equal(1.5e-6, Offset(pps), 9);
        Assert.Equal(0, Delay(pps));
        Assert.Equal(ReferenceIds.Pps, gpsd.ReferenceId);
    }

    [Fact]
    public void Gpsd_NoFix_OrTooFewSatellites_GivesNoTime()
    {
        GpsdSource gpsd = Gpsd();
        gpsd.Handle("{\"class\":\"TPV\",\"mode\":1}");
        Assert.Null(gpsd.Handle(Toff(Start, Start, "PPS")));
        gpsd.Handle(Fix3D);
        gpsd.Handle("{\"class\":\"SKY\",\"uSat\":3}");
        Assert.Null(gpsd.Handle(Toff(Start, Start, "PPS")));
        gpsd.Handle("{\"class\":\"SKY\",\"uSat\":7}");
        Assert.NotNull(gpsd.Handle(Toff(Start, Start, "PPS")));
    }

    [Fact]
    public void Gpsd_WeekRollover_IsMovedForwardBy1024Weeks()
    {
        GpsdSource gpsd = Gpsd();
        gpsd.Handle(Fix3D);
        long reported = Start - (GpsdSource.WeekRolloverSeconds * Second); // a receiver stuck in the previous epoch
        Measurement m = gpsd.Handle(Toff(reported, Start, "PPS"))!.Value;
        Assert.Equal(0, Offset(m), 9);
    }

    [Theory]
    [InlineData("{\"class\":\"TPV\",\"mode\":\"3\"}")]                       // a number as a string
    [InlineData("{\"class\":\"TPV\",\"mode\":3,\"ept\":\"fast\"}")]
    [InlineData("{\"class\":\"TPV\",\"mode\":7}")]                          // no such mode
    [InlineData("{\"class\":\"SKY\",\"uSat\":\"7\"}")]
    [InlineData("{\"class\":\"SKY\",\"satellites\":{\"used\":true}}")]
    [InlineData("{\"class\":\"SKY\",\"satellites\":[1,2,3]}")]
    [InlineData("{\"class\":\"SKY\",\"satellites\":[{\"used\":1}]}")]
    [InlineData("{\"class\":\"PPS\",\"real_sec\":\"1795435200\",\"real_nsec\":0,\"clock_sec\":1795435200,\"clock_nsec\":0}")]
    [InlineData("{\"class\":\"PPS\",\"real_sec\":1795435200,\"real_nsec\":0,\"clock_nsec\":0}")]          // clock_sec missing
    [InlineData("{\"class\":\"PPS\",\"real_sec\":1795435200,\"real_nsec\":2000000000,\"clock_sec\":1795435200,\"clock_nsec\":0}")]
    [InlineData("{\"class\":\"PPS\",\"real_sec\":1795435200.5,\"real_nsec\":0,\"clock_sec\":1795435200,\"clock_nsec\":0}")]
    [InlineData("{\"class\":\"PPS\",\"real_sec\":99999999999999999999,\"real_nsec\":0,\"clock_sec\":1795435200,\"clock_nsec\":0}")]
    [InlineData("{\"class\":\"PPS\",\"real_sec\":1795435200,\"real_nsec\":0,\"clock_sec\":1795435200,\"clock_nsec\":0,\"precision\":\"-20\"}")]
    [InlineData("{\"class\":5}")]
    [InlineData("[\"TPV\"]")]
    [InlineData("{\"class\":\"TPV\"")]                                     // cut short
    [InlineData("")]
    public void Gpsd_ALineThatIsNotWhatGpsdSends_IsOneBadLine_ThatNeverThrows_AndChangesNothing(string line)
    {
        GpsdSource gpsd = Gpsd();
        gpsd.Handle(Fix3D);
        gpsd.Handle("{\"class\":\"SKY\",\"uSat\":7}");

        Assert.Null(gpsd.Handle(line));

        Assert.Equal(1, gpsd.Counters.Invalid);
        // The fix before it still stands: the next good edge is time.
        Measurement edge = gpsd.Handle(Toff(Start, Start - 2_000, "PPS"))!.Value;
        Assert.Equal(2e-6, Offset(edge), 9);
        Assert.Equal(1, gpsd.Counters.Invalid);
    }

    [Fact]
    public async Task Gpsd_AHugelyNegativeRealSec_IsABadLine_AtOnce()
    {
        GpsdSource gpsd = Gpsd();
        gpsd.Handle(Fix3D);
        string line = "{\"class\":\"PPS\",\"real_sec\":-9000000000000000000,\"real_nsec\":0,\"clock_sec\":1795435200,\"clock_nsec\":0}";
        // Moved forward one rollover at a time, this would take ~10^10 turns (seconds of CPU).
        Measurement? m = await Task.Run(() => gpsd.Handle(line)).WaitAsync(TimeSpan.FromSeconds(2));
        Assert.Null(m);
        Assert.Equal(1, gpsd.Counters.Invalid);
    }

    [Fact]
    public void Gpsd_TwoWeekRolloversBehind_IsMovedForwardBy2048Weeks()
    {
        GpsdSource gpsd = Gpsd();
        gpsd.Handle(Fix3D);
        long reported = Start - (2 * GpsdSource.WeekRolloverSeconds * Second);
        Measurement m = gpsd.Handle(Toff(reported, Start, "PPS"))!.Value;
        Assert.Equal(0, Offset(m), 9);
        Assert.Equal(0, gpsd.Counters.Invalid);
    }

    [Fact]
    public void Gpsd_MutatedReports_NeverThrow_AndEveryRefusedOneIsCounted()
    {
        // gpsd's own reports with bytes replaced (by JSON's own characters, digits, signs and bytes
        // that are not UTF-8), cut short and spliced: whatever arrives, the driver answers with a
        // sample, nothing, or one bad line.
        string[] seeds =
        [
            Fix3D,
            "{\"class\":\"SKY\",\"device\":\"/dev/ttyS0\",\"uSat\":7,\"satellites\":[{\"PRN\":1,\"used\":true},{\"PRN\":2,\"used\":false}]}",
            Toff(Start, Start + 20_000_000),
            Toff(Start, Start - 1_500, "PPS"),
        ];
        byte[] alphabet = "{}[]:,\"-.0123456789eE+ tfnul\\"u8.ToArray().Concat(new byte[] { 0x00, 0x80, 0xC3, 0xFF }).ToArray();
        var random = new Random(14);
        GpsdSource gpsd = Gpsd();
        long refused = 0;
        for (int i = 0; i < 20_000; i++)
        {
            byte[] line = Encoding.UTF8.GetBytes(seeds[random.Next(seeds.Length)]);
            for (int flips = random.Next(1, 4); flips > 0; flips--)
            {
                line[random.Next(line.Length)] = alphabet[random.Next(alphabet.Length)];
            }
            if (random.Next(4) == 0)
            {
                line = line[..random.Next(line.Length)];
            }
            else if (random.Next(4) == 0)
            {
                byte[] other = Encoding.UTF8.GetBytes(seeds[random.Next(seeds.Length)]);
                line = [.. line[..random.Next(line.Length)], .. other[random.Next(other.Length)..]];
            }
            long before = gpsd.Counters.Invalid;
            Measurement? m = gpsd.Handle(line);
            refused += gpsd.Counters.Invalid - before;
            Assert.True(gpsd.Counters.Invalid - before <= 1 && (m is null || gpsd.Counters.Invalid == before), $"line {i}: {Encoding.UTF8.GetString(line)}");
        }
        Assert.InRange(refused, 1000, 20_000); // most mutations break something, and each is one bad line
    }
}
