using System.Net;
using System.Net.Sockets;
using Appliance.Testing;

namespace Appliance.Engine.Tests;

/// <summary>The worker's heartbeat, which the systemd watchdog reads: it moves while the loop turns, idle or not, and only then.</summary>
public class HeartbeatTests
{
    [Fact]
    public async Task IdleWorker_BeatsAtEveryReceiveTimeout()
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options());
        NtpWorker worker = engine.Workers[0];
        await Task.Delay(300);
        long before = worker.Heartbeat;
        await Task.Delay(2000);
        long beats = worker.Heartbeat - before;
        // Four receive timeouts (250 ms) a second, and an idle worker does little else.
        Assert.InRange(beats, 6, 24);
    }

    [Fact]
    public async Task Burst_IsOneBeatPerBatch_NotPerPacket()
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options());
        NtpWorker worker = engine.Workers[0];
        using var release = new ManualResetEventSlim();
        using var entered = new ManualResetEventSlim();
        bool hold = true;
        worker.BeforeBatch = _ =>
        {
            if (Volatile.Read(ref hold))
            {
                entered.Set();
                release.Wait(TimeSpan.FromSeconds(10)); // the first batch waits while the rest queue up
            }
        };
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        byte[] request = NtpQuery.ClientRequest(1);
        await socket.SendToAsync(request, engine.LocalEndPoints[0]);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(5)), "the worker never took the first batch");
        const int Packets = 200; // well inside the socket's receive buffer
        for (int i = 0; i < Packets; i++)
        {
            socket.SendTo(request, engine.LocalEndPoints[0]);
        }
        long before = worker.Heartbeat;
        Volatile.Write(ref hold, false);
        release.Set();
        await Eventually.TrueAsync(() => worker.Counters.Received >= Packets, TimeSpan.FromSeconds(5), () => $"{worker.Counters.Received} received");
        long beats = worker.Heartbeat - before;
        Assert.InRange(beats, 1, worker.Counters.Received / 4);
    }

    [Fact]
    public async Task WorkerBlockedInABatch_HeartbeatStandsStill()
    {
        using NtpEngine engine = EngineFixture.Start(EngineFixture.Options());
        NtpWorker worker = engine.Workers[0];
        using var release = new ManualResetEventSlim();
        worker.BeforeBatch = _ => release.Wait(TimeSpan.FromSeconds(10));
        try
        {
            Assert.Null(await NtpQuery.ExchangeAsync(engine.LocalEndPoints[0], NtpQuery.ClientRequest(2), TimeSpan.FromMilliseconds(300)));
            long stuck = worker.Heartbeat;
            await Task.Delay(1000);
            Assert.Equal(stuck, worker.Heartbeat);
            release.Set();
            await Eventually.TrueAsync(() => worker.Heartbeat > stuck, TimeSpan.FromSeconds(2), () => "no beat after the release");
        }
        finally
        {
            release.Set();
        }
    }
}
