namespace Appliance.Server.Tests;

/// <summary>
/// The tests that time real peers (chronyd, ntpdig, gpsd, ptp4l) run one class at a time: on a
/// 2-core machine, parallel classes load the CPUs and a one-shot client's own scheduling delay shows
/// up as offset.
/// </summary>
[CollectionDefinition(Name)]
public static class RealPeers
{
    public const string Name = "real peers";
}
