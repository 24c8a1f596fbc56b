using System.Net;
using Appliance.Protocol;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Testing;
using Appliance.Timestamping;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>
/// A simulated leap second through the whole appliance (software mode, so the host clock is never
/// touched): its only source serves 2016-12-31 23:59:30 UTC and inserts the leap second at midnight,
/// the appliance has the real leap-seconds.list. The main listener announces the leap and serves
/// 23:59:59 twice; the smear listener announces nothing, never steps, and follows the noon-to-noon
/// curve, against a model written in the source's continuous clock.
/// </summary>
public class LeapSmearServerTests
{
    private const long Second = 1_000_000_000;

    /// <summary>2017-01-01 00:00:00 UTC: TAI − UTC became 37 s.</summary>
    private const long Leap = 1_483_228_800 * Second;

    /// <summary>The source's UTC for its continuous clock <paramref name="c"/>: the second before midnight served twice.</summary>
    private static long Utc(long c) => c >= Leap ? c - Second : c;

    private static long Smeared(long c)
    {
        long start = Leap - (43_200 * Second);
        if (c < start || c >= Leap + (43_201 * Second))
        {
            return Utc(c);
        }
        Int128 elapsed = c - start;
        return start + (long)(elapsed * 86_400 / 86_401);
    }

    /// <summary>A stratum-1 source whose continuous clock is the host's plus <paramref name="shift"/>, inserting the leap second as the kernel does.</summary>
    /// <param name="firstLate">Added to the first answer's receive and transmit timestamps: a source read late once, so that the appliance sets its clock that far off.</param>
    private static TestNtpServer LeapingSource(long shift, long firstLate)
    {
        int answered = 0;
        return new((request, received) =>
        {
            long late = Interlocked.Increment(ref answered) == 1 ? firstLate : 0;
            return LeapingAnswer(request, received, shift + late);
        });
    }

    private static byte[] LeapingAnswer(NtpHeader request, long received, long shift)
    {
        long now = SystemClock.RealtimeNanoseconds() + shift;
        return TestNtpServer.Answer(request, new NtpHeader
        {
            // RFC 5905 §7.3: announced through the last second of the day, the repeated one too.
            Leap = now < Leap + Second ? LeapIndicator.InsertSecond : LeapIndicator.NoWarning,
            Stratum = 1,
            Precision = -20,
            RootDispersion = NtpShort.FromSeconds(0.0001),
            ReferenceId = 0x4C454150, // "LEAP"
            Reference = NtpTimestamp.FromUnixNanoseconds(Utc(now) - Second),
            Receive = NtpTimestamp.FromUnixNanoseconds(Utc(received + shift)),
        }, Utc(now) - now + shift);
    }

    private sealed record Reading(long Continuous, double HalfRoundTrip, NtpHeader Answer)
    {
        public long Served => Answer.Transmit.ToUnixNanoseconds(Leap);
    }

    private static async Task<Reading> QueryAsync(IPEndPoint server, long shift, ulong nonce)
    {
        long sent = SystemClock.RealtimeNanoseconds();
        byte[]? reply = await NtpQuery.ExchangeAsync(server, NtpQuery.ClientRequest(nonce), TimeSpan.FromSeconds(2));
        long received = SystemClock.RealtimeNanoseconds();
        Assert.NotNull(reply);
        return new Reading(((sent + received) / 2) + shift, (received - sent) / 2e9, NtpHeader.Read(reply));
    }

    /// <param name="firstLateMilliseconds">0, or a first answer read half a second late (as a loaded CI host once did): the appliance then keeps its clock that far off, and the leap must still be inserted once and smeared.</param>
    [Theory]
    [InlineData(0)]
    [InlineData(500)]
    public async Task TheMainListenerInsertsTheLeap_TheSmearListenerSmearsIt(int firstLateMilliseconds)
    {
        long shift = Leap - (30 * Second) - SystemClock.RealtimeNanoseconds();
        await using TestNtpServer source = LeapingSource(shift, firstLateMilliseconds * 1_000_000L);
        ConfigResult config = ConfigLoader.Parse($$"""
            ntp: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"], workers: 1, rate-limit: off, smear: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"] } }
            clock: { mode: software, leap-seconds: "{{Repo.TestData("leap-seconds.list")}}" }
            sources:
              - ntp: { address: "{{source.EndPoint}}", minpoll: 0, maxpoll: 1 }
            metrics: { listen: off }
            control: { socket: off }
            """);
        Assert.True(config.IsValid, string.Join("\n", config.Errors));
        await using ApplianceServer server = await ApplianceServer.StartAsync(config.Config!);
        IPEndPoint main = server.NtpEndPoints.Single();
        IPEndPoint smear = server.SmearEndPoints.Single();

        await Eventually.TrueAsync(() => server.State.Current.Stratum == 2, TimeSpan.FromSeconds(20), () => $"stratum {server.State.Current.Stratum}");
        long left = Leap - (SystemClock.RealtimeNanoseconds() + shift);
        Assert.True(left > 4 * Second, $"synchronised only {left / 1e9:F1} s before the leap: too late to watch it");

        var mains = new List<Reading>();
        var smears = new List<Reading>();
        ulong nonce = 1;
        while (SystemClock.RealtimeNanoseconds() + shift < Leap + (5 * Second))
        {
            mains.Add(await QueryAsync(main, shift, nonce++));
            smears.Add(await QueryAsync(smear, shift, nonce++));
            await Task.Delay(mains[^1].Continuous < Leap - (4 * Second) || mains[^1].Continuous > Leap + (3 * Second) ? 500 : 50);
        }

        // The appliance's own clock is off its source's by what its first sample got wrong (on a
        // loaded host the in-process source answers late: half a second was seen in CI, which the
        // core keeps until its step-out) and slews that away: each reading is checked against the
        // clock the appliance kept, its offset from the source taken from the main reading before
        // it. That offset must not jump at the leap: it would by a second if the main listener did
        // not repeat 23:59:59, or repeated it twice.
        // Offsets are kept in continuous time (SI seconds): the appliance's served time plus the
        // second it has repeated once past its own midnight, minus the source's continuous clock.
        long previousOffset = mains[0].Served - mains[0].Continuous;
        double behindBefore = 0, aheadAfter = 0;
        int precise = 0;
        for (int i = 0; i < mains.Count; i++)
        {
            Reading r = mains[i];
            double tolerance = r.HalfRoundTrip + 0.001;
            long kept = r.Continuous + previousOffset; // the appliance's continuous clock at this reading
            // Away from the instant of its step, where the reading's midpoint cannot say which side it is on.
            if (Math.Abs(kept - Leap) > (tolerance * 1e9) + 1e6)
            {
                long now = r.Served + (kept >= Leap ? Second : 0) - r.Continuous;
                Assert.True(Math.Abs(now - previousOffset) / 1e9 <= tolerance + mains[Math.Max(0, i - 1)].HalfRoundTrip + 0.001,
                    $"main at its leap {(kept - Leap) / 1e9:+0.000;-0.000} s: {(now - previousOffset) / 1e6:F3} ms from UTC as served before it");
                previousOffset = now;
            }
            Assert.True(Math.Abs(previousOffset) < 0.9e9, $"the appliance is {previousOffset / 1e6:F1} ms off its source");
            Assert.NotEqual(0x534D4552u, r.Answer.ReferenceId);

            Reading s = smears[i];
            long smearKept = s.Continuous + previousOffset; // the appliance's continuous clock at the smear reading
            double smearTolerance = r.HalfRoundTrip + s.HalfRoundTrip + 0.001;
            Assert.True(Math.Abs(s.Served - Smeared(smearKept)) / 1e9 <= smearTolerance,
                $"smeared at leap {(smearKept - Leap) / 1e9:+0.000;-0.000} s: {(s.Served - Smeared(smearKept)) / 1e6:F3} ms from the curve (UTC + {(Smeared(smearKept) - Utc(smearKept)) / 1e6:F1} ms)");
            // What the smear listener served against UTC as the appliance kept it, either side of the
            // leap, from the readings precise enough to say (a loaded host stretches some round trips).
            if (smearTolerance > 0.006)
            {
                continue;
            }
            precise++;
            if (smearKept < Leap - (Second / 10))
            {
                behindBefore = Math.Min(behindBefore, (s.Served - Utc(smearKept)) / 1e9);
            }
            else if (smearKept > Leap + (Second / 10))
            {
                aheadAfter = Math.Max(aheadAfter, (s.Served - Utc(smearKept)) / 1e9);
            }
        }
        // Half a second off UTC either side of the leap: the curve was really followed, not UTC.
        Assert.True(precise > 10, $"only {precise} smear readings with both round trips under 10 ms");
        Assert.InRange(behindBefore, -0.506, -0.45);
        Assert.InRange(aheadAfter, 0.45, 0.506);
        Assert.Contains(mains, r => r.Continuous < Leap && r.Answer.Leap == LeapIndicator.InsertSecond);
        Assert.Contains(mains, r => r.Continuous > Leap + (3 * Second) && r.Answer.Leap == LeapIndicator.NoWarning);
        // The second repeated: the main listener's time went back once, by about a second.
        Assert.Contains(mains.Zip(mains.Skip(1)), p => p.Second.Served < p.First.Served && p.First.Served - p.Second.Served > 800_000_000);

        long previous = 0;
        foreach (Reading r in smears)
        {
            Assert.Equal(LeapIndicator.NoWarning, r.Answer.Leap);
            Assert.Equal(0x534D4552u, r.Answer.ReferenceId); // "SMER"
            Assert.True(r.Served > previous, "the smeared time went back");
            previous = r.Served;
        }
        Assert.InRange(server.Clock.SmearOffset!.Value, 0.49, 0.51);
    }
}
