using System.Net;
using Appliance.Protocol;

namespace Appliance.LoadTest;

/// <summary>
/// A load generator is a flood tool: it only aims at loopback and the ranges test namespaces use,
/// unless the operator says --allow-remote.
/// </summary>
internal static class TargetGuard
{
    private static readonly AccessList s_safe = new(
        new[] { "127.0.0.0/8", "::1/128", "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "fd00::/8" }
            .Select(p => AccessRule.TryParse(p, true, out AccessRule r) ? r : throw new InvalidOperationException(p)));

    public static string SafeRanges => "127.0.0.0/8, ::1, the TEST-NETs 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32 and fd00::/8";

    public static bool IsSafe(IPAddress address) => s_safe.Allows(NetAddress.FromIPAddress(address));
}
