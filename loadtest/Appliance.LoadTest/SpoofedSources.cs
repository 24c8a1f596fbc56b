using System.Net;
using Appliance.Protocol;

namespace Appliance.LoadTest;

/// <summary>
/// N distinct source addresses drawn at random from 127.0.0.0/8 for a flood from many spoofed
/// sources: every address of that block is local on loopback (RFC 1122 §3.2.1.3), so the generator
/// can send from any of them (IP_PKTINFO) and their answers come back to its wildcard sockets.
/// The host part is an affine bijection of the 24-bit index, x ↦ (a·x + b) mod 2^24 with a odd: N
/// distinct addresses in a random-looking order, with nothing to remember but a and b (no set of
/// millions of addresses to keep distinct). Skipped: .0.0.0 and .255.255.255, 127.0.0.1 (the host
/// itself) and the addresses the caller reserves (the target, the legitimate client).
/// </summary>
internal sealed class SpoofedSources
{
    /// <summary>Addresses the block holds, less the two reserved ends and 127.0.0.1.</summary>
    public const int MaxCount = (1 << 24) - 3;

    private const uint HostMask = (1u << 24) - 1;
    private const uint Network = 127u << 24;

    private readonly NetAddress[] _addresses;

    public SpoofedSources(int count, int seed, IEnumerable<IPAddress> reserved)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var skip = new HashSet<uint> { Network, Network | HostMask, Network | 1 };
        foreach (IPAddress address in reserved)
        {
            skip.Add(NetAddress.FromIPAddress(address).IPv4);
        }
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, (1 << 24) - skip.Count);
        var random = new Random(seed);
        uint a = ((uint)random.Next() << 1) | 1;
        uint b = (uint)random.Next();
        _addresses = new NetAddress[count];
        int n = 0;
        for (uint x = 0; n < count; x++)
        {
            uint address = Network | (((a * x) + b) & HostMask);
            if (!skip.Contains(address))
            {
                _addresses[n++] = NetAddress.FromIPv4(address);
            }
        }
    }

    public int Count => _addresses.Length;

    public NetAddress this[int index] => _addresses[index];
}
