namespace Appliance.Protocol;

/// <summary>An allow or deny rule for a CIDR prefix.</summary>
public readonly record struct AccessRule(NetAddress Prefix, int PrefixLength, bool Allow)
{
    /// <summary>
    /// Parses "a.b.c.d/n" or "x:y::/n" (a bare address is a host rule). IPv4 prefixes become
    /// IPv4-mapped IPv6 prefixes (/n → /96+n), so one matcher serves both families.
    /// </summary>
    public static bool TryParse(string text, bool allow, out AccessRule rule)
    {
        rule = default;
        string[] parts = text.Split('/');
        if (parts.Length > 2 || !System.Net.IPAddress.TryParse(parts[0], out System.Net.IPAddress? address))
        {
            return false;
        }
        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out int written);
        bool v4 = written == 4;
        int max = v4 ? 32 : 128;
        int length = max;
        if (parts.Length == 2 && (!int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out length) || length > max))
        {
            return false;
        }
        if (v4)
        {
            length += 96;
        }
        var prefix = NetAddress.FromBytes(bytes[..written]);
        rule = new AccessRule(new NetAddress(prefix.Value & Mask(length)), length, allow);
        return true;
    }

    public bool Matches(NetAddress address) => (address.Value & Mask(PrefixLength)) == Prefix.Value;

    internal static UInt128 Mask(int length) => length == 0 ? UInt128.Zero : UInt128.MaxValue << (128 - length);
}

/// <summary>
/// Access control by client address: the most specific matching rule decides (as in chrony's
/// allow/deny), a deny wins over an allow of the same length, and an address no rule matches is denied.
/// Immutable; rules are kept longest prefix first so the first match is the answer.
/// </summary>
public sealed class AccessList
{
    private readonly AccessRule[] _rules;

    public AccessList(IEnumerable<AccessRule> rules)
    {
        _rules = rules.OrderByDescending(r => r.PrefixLength).ThenBy(r => r.Allow).ToArray();
    }

    /// <summary>Everything allowed: 0.0.0.0/0 and ::/0.</summary>
    public static AccessList AllowAll { get; } = new([new AccessRule(default, 0, true)]);

    public IReadOnlyList<AccessRule> Rules => _rules;

    public bool Allows(NetAddress client)
    {
        foreach (AccessRule rule in _rules)
        {
            if (rule.Matches(client))
            {
                return rule.Allow;
            }
        }
        return false;
    }
}
