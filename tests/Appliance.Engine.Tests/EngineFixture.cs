using System.Net;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Engine.Tests;

internal static class EngineFixture
{
    public static ServerStateCell SyncedCell() => new(new ServerState
    {
        Leap = LeapIndicator.NoWarning,
        Stratum = 3,
        ReferenceId = 0x0A000001,
        ReferenceTime = NtpTimestamp.FromUnixNanoseconds(SystemClock.RealtimeNanoseconds() - 1_000_000_000),
        UpdatedAtUnixNanoseconds = SystemClock.RealtimeNanoseconds(),
        Precision = -20,
    });

    public static NtpEngine Start(EngineOptions options, ServerStateCell? state = null)
    {
        NtpEngine engine = NtpEngine.Bind(options, state ?? SyncedCell());
        engine.Start();
        return engine;
    }

    public static EngineOptions Options(string address = "127.0.0.1", int workers = 1) => new()
    {
        Listen = [new IPEndPoint(IPAddress.Parse(address), 0)],
        Workers = workers,
    };
}
