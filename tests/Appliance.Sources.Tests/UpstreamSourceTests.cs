using System.Collections.Concurrent;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Appliance.Sources.Tests;

/// <summary>The upstream client against small scripted servers on loopback.</summary>
public class UpstreamSourceTests
{
    private static UpstreamSource Client(TestNtpServer server, int minPoll = -2, int maxPoll = -1) => new(new UpstreamOptions
    {
        Host = "127.0.0.1",
        Port = server.EndPoint.Port,
        MinPoll = minPoll,
        MaxPoll = maxPoll,
        Iburst = false,
        Timeout = TimeSpan.FromMilliseconds(300),
    }, NullLogger.Instance);

    /// <summary>Runs the client until <paramref name="until"/> holds (or 10 s), collecting its measurements.</summary>
    private static async Task<List<Measurement>> RunAsync(UpstreamSource client, Func<bool> until)
    {
        var measurements = new ConcurrentQueue<Measurement>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Task run = client.RunAsync((_, m) =>
        {
            measurements.Enqueue(m);
            return true;
        }, stop.Token);
        while (!until() && !run.IsCompleted && !stop.IsCancellationRequested)
        {
            await Task.Delay(20);
        }
        await stop.CancelAsync();
        await run;
        return [.. measurements];
    }

    [Fact]
    public async Task ShiftedServer_MeasurementsShowTheShift_WithKernelTimestampedDelay()
    {
        await using TestNtpServer server = TestNtpServer.Shifted(0.25);
        using UpstreamSource client = Client(server);

        List<Measurement> measurements = await RunAsync(client, () => client.Counters.Answers >= 3);

        Assert.True(measurements.Count >= 3);
        foreach (Measurement m in measurements)
        {
            double offset = ((m.T2 - m.T1) + (double)(m.T3 - m.T4)) / 2e9;
            double delay = ((m.T4 - m.T1) - (double)(m.T3 - m.T2)) / 1e9;
            Assert.InRange(delay, 0, 0.05);
            // The true offset lies within half the round-trip delay of the measured one (RFC 5905 §8):
            // a test server scheduled late on a busy host widens the delay, never breaks this bound.
            Assert.InRange(0.25, offset - (delay / 2) - 1e-6, offset + (delay / 2) + 1e-6);
            Assert.Equal(1, m.Response.Stratum);
        }
        Assert.Equal(SourceState.Reachable, client.State);
        Assert.Equal(0, client.Counters.Invalid);
    }

    [Fact]
    public async Task KodRate_SlowsThePoll()
    {
        await using var server = new TestNtpServer((request, _) => TestNtpServer.KissOfDeath(request, KissCode.Rate));
        using UpstreamSource client = Client(server);

        await RunAsync(client, () => client.Counters.KissOfDeath >= 1);

        Assert.Equal(1, client.Counters.KissOfDeath);
        Assert.Equal(SourceState.RateLimited, client.State);
        Assert.True(client.Schedule.Poll > -2, $"poll {client.Schedule.Poll}");
    }

    [Theory]
    [InlineData(KissCode.Deny)]
    [InlineData(KissCode.Restrict)]
    public async Task KodDenyOrRestrict_StopsPolling(KissCode code)
    {
        await using var server = new TestNtpServer((request, _) => TestNtpServer.KissOfDeath(request, code));
        using UpstreamSource client = Client(server);

        await RunAsync(client, () => false); // returns when the client stops by itself

        Assert.Equal(1, server.Requests);
        Assert.Equal(SourceState.Denied, client.State);
    }

    [Fact]
    public async Task WrongOrigin_IsIgnored_WrongMode_IsInvalid_NoMeasurement()
    {
        int n = 0;
        await using var server = new TestNtpServer((request, _) =>
        {
            n++;
            if (n % 2 == 0)
            {
                request.Transmit = new NtpTimestamp(request.Transmit.Value + 1); // not our request
                return TestNtpServer.Answer(request, new NtpHeader { Stratum = 2, Leap = LeapIndicator.NoWarning });
            }
            byte[] answer = TestNtpServer.Answer(request, new NtpHeader { Stratum = 2, Leap = LeapIndicator.NoWarning });
            answer[0] = NtpHeader.FirstOctet(LeapIndicator.NoWarning, 4, NtpMode.SymmetricActive);
            return answer;
        });
        using UpstreamSource client = Client(server);

        List<Measurement> measurements = await RunAsync(client, () => server.Requests >= 6);

        Assert.Empty(measurements);
        Assert.True(client.Counters.Answers == 0 && client.Counters.Invalid >= 2, $"answers {client.Counters.Answers}, invalid {client.Counters.Invalid}, requests {server.Requests}, n {n}");
    }

    [Fact]
    public async Task UnsynchronisedServer_IsReachableButGivesNoSample()
    {
        await using var server = new TestNtpServer((request, _) =>
            TestNtpServer.Answer(request, new NtpHeader { Stratum = 16, Leap = LeapIndicator.Unsynchronised }));
        using UpstreamSource client = Client(server);

        List<Measurement> measurements = await RunAsync(client, () => client.Counters.Answers >= 2);

        Assert.Empty(measurements);
        Assert.Equal(SourceState.Unsynchronised, client.State);
    }

    [Fact]
    public async Task SilentServer_BecomesUnreachable()
    {
        await using var server = new TestNtpServer((_, _) => null);
        using UpstreamSource client = Client(server);

        await RunAsync(client, () => client.State == SourceState.Unreachable);

        Assert.Equal(SourceState.Unreachable, client.State);
        Assert.Equal(0, client.Schedule.Reach);
    }
}
