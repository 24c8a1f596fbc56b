namespace Appliance.Server.Configuration;

/// <summary>
/// Every key the configuration accepts, by dotted path. The loader rejects any other key, and a test
/// fails when one of these is missing from docs/configuration.md.
/// </summary>
public static class ConfigSchema
{
    public static IReadOnlyList<string> Keys { get; } =
    [
        "ntp",
        "ntp.listen",
        "ntp.listen[].address",
        "ntp.listen[].require-nts",
        "ntp.require-nts",
        "ntp.workers",
        "ntp.batch",
        "ntp.cpu-affinity",
        "ntp.hardware-timestamps",
        "ntp.busy-poll",
        "ntp.rate-limit",
        "ntp.rate-limit.interval",
        "ntp.rate-limit.burst",
        "ntp.rate-limit.leak",
        "ntp.rate-limit.kod",
        "ntp.rate-limit.clients",
        "ntp.access",
        "ntp.access.allow",
        "ntp.access.deny",
        "ntp.access.deny-action",
        "nts-ke",
        "nts-ke.listen",
        "nts-ke.certificate",
        "nts-ke.private-key",
        "nts-ke.keys",
        "nts-ke.keys.storage",
        "nts-ke.keys.rotation",
        "nts-ke.keys.keep",
        "nts-ke.keys.fleet-secret",
        "nts-ke.ntp-server",
        "nts-ke.max-connections",
        "nts-ke.handshake-timeout",
        "nts-ke.idle-timeout",
        "nts-ke.max-request",
        "nts-ke.client-limit",
        "nts-ke.client-limit.connections",
        "nts-ke.client-limit.interval",
        "clock",
        "clock.mode",
        "clock.local",
        "clock.local.stratum",
        "clock.leap-seconds",
        "clock.holdover",
        "clock.step-threshold",
        "clock.panic-threshold",
        "clock.min-sources",
        "sources",
        "sources[].ntp",
        "sources[].ntp.address",
        "sources[].ntp.nts",
        "sources[].ntp.name",
        "sources[].ntp.trust",
        "sources[].ntp.iburst",
        "sources[].ntp.minpoll",
        "sources[].ntp.maxpoll",
        "sources[].gpsd",
        "sources[].gpsd.address",
        "sources[].gpsd.pps",
        "sources[].gpsd.delay",
        "sources[].gpsd.offset",
        "sources[].gpsd.min-satellites",
        "sources[].pps",
        "sources[].pps.device",
        "sources[].pps.edge",
        "sources[].pps.lock",
        "sources[].pps.max-deviation",
        "sources[].phc",
        "sources[].phc.device",
        "sources[].phc.poll",
        "sources[].phc.utc-offset",
        "sources[].ptp",
        "sources[].ptp.interface",
        "sources[].ptp.domain",
        "sources[].ptp.delay-interval",
        "metrics",
        "metrics.listen",
    ];

    /// <summary>The names allowed directly under <paramref name="path"/> ("" for the top level).</summary>
    public static IReadOnlyList<string> ChildrenOf(string path)
    {
        string prefix = path.Length == 0 ? "" : path + ".";
        var children = new List<string>();
        foreach (string key in Keys)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal) && key.IndexOf('.', prefix.Length) < 0)
            {
                children.Add(key[prefix.Length..]);
            }
        }
        return children;
    }
}
