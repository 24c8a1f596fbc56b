using System.Globalization;
using System.Net;

namespace Appliance.Server.Configuration;

/// <summary>An address as written in the configuration: a host (name or IP literal) and a port.</summary>
/// <param name="Host">The host without brackets: "ntp.example.net", "192.0.2.1", "2001:db8::1".</param>
/// <param name="Port">The port written, or the default port when none was.</param>
/// <param name="Ip">The host as an IP address when it is an IP literal; null for a name.</param>
/// <param name="PortWritten">Whether the text named the port.</param>
public readonly record struct HostPort(string Host, int Port, IPAddress? Ip, bool PortWritten)
{
    public IPEndPoint? EndPoint => Ip is null ? null : new IPEndPoint(Ip, Port);
}

/// <summary>
/// The one parser for every address in the configuration: <c>host</c>, <c>host:port</c>,
/// <c>a.b.c.d:port</c>, <c>[IPv6]:port</c> and a bare IPv6 literal. What a key accepts beyond
/// that (an IP literal only, a port required, port 0) is the caller's <see cref="AddressRules"/>.
/// </summary>
public static class AddressText
{
    /// <summary>The longest DNS name in text, without a final dot: 255 octets on the wire (RFC 1035 §2.3.4).</summary>
    public const int MaxNameLength = 253;

    /// <summary>Parses <paramref name="text"/>; on failure <paramref name="problem"/> says what is wrong in a few words.</summary>
    public static bool TryParse(string text, AddressRules rules, out HostPort address, out string problem)
    {
        address = default;
        string host;
        string? portText = null;
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                problem = "the '[' has no ']'";
                return false;
            }
            host = text[1..close];
            string rest = text[(close + 1)..];
            if (rest.Length > 0)
            {
                if (rest[0] != ':')
                {
                    problem = "only ':port' may follow ']'";
                    return false;
                }
                portText = rest[1..];
            }
            if (!IPAddress.TryParse(host, out IPAddress? bracketed) || bracketed.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                problem = $"'{host}' in brackets is not an IPv6 address";
                return false;
            }
        }
        else if (text.Count(c => c == ':') > 1)
        {
            // A bare IPv6 literal: it cannot carry a port, the colons are its own.
            host = text;
            if (!IPAddress.TryParse(host, out _))
            {
                problem = "it is not an IPv6 address (with a port, write it in brackets: [2001:db8::1]:123)";
                return false;
            }
        }
        else
        {
            int colon = text.IndexOf(':', StringComparison.Ordinal);
            host = colon < 0 ? text : text[..colon];
            portText = colon < 0 ? null : text[(colon + 1)..];
        }

        IPAddress? ip = ParseIp(host);
        if (host.Length == 0)
        {
            problem = "it has no host";
            return false;
        }
        if (ip is null && rules.IpLiteral)
        {
            problem = $"'{host}' is not an IP address (a name is not resolved here: use 0.0.0.0 or [::] for every address)";
            return false;
        }
        if (ip is null && !System.Text.Ascii.IsValid(host))
        {
            // Resolvers and the NTS-KE Server record (RFC 8915 §4.1.7) take ASCII names.
            problem = $"'{host}' is not ASCII (write an internationalised name in its xn-- form)";
            return false;
        }
        if (ip is null && (host.EndsWith('.') ? host.Length - 1 : host.Length) > MaxNameLength)
        {
            // No resolver takes it, and an NTS-KE Server record (RFC 8915 §4.1.7) naming it would send clients nowhere.
            problem = $"the name has {host.Length} characters; a DNS name has at most {MaxNameLength} (RFC 1035 §2.3.4)";
            return false;
        }
        if (ip is null && Uri.CheckHostName(host) != UriHostNameType.Dns)
        {
            problem = $"'{host}' is not a host name or IP address";
            return false;
        }
        int port = rules.DefaultPort;
        if (portText is not null)
        {
            int lowest = rules.AllowPortZero ? 0 : 1;
            if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out port) || port < lowest || port > 65535)
            {
                problem = $"the port '{portText}' is not a number from {lowest} to 65535";
                return false;
            }
        }
        else if (rules.DefaultPort < 0)
        {
            problem = "it has no port";
            return false;
        }
        address = new HostPort(host, port, ip, portText is not null);
        problem = "";
        return true;
    }

    /// <summary>An IP literal as written: IPv4 only in dotted-quad form (IPAddress also reads "1" as 0.0.0.1).</summary>
    private static IPAddress? ParseIp(string host)
    {
        if (!IPAddress.TryParse(host, out IPAddress? ip))
        {
            return null;
        }
        return ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 || ip.ToString() == host ? ip : null;
    }
}

/// <summary>What a key accepts of an address.</summary>
/// <param name="DefaultPort">The port when none is written; negative when a port is required.</param>
/// <param name="IpLiteral">Only an IP literal (what the appliance binds to), not a name.</param>
/// <param name="AllowPortZero">Port 0: an ephemeral port (listen addresses only).</param>
public readonly record struct AddressRules(int DefaultPort, bool IpLiteral, bool AllowPortZero)
{
    /// <summary>What the appliance listens on: an IP literal and a port (0 picks a free one).</summary>
    public static AddressRules Listen { get; } = new(-1, IpLiteral: true, AllowPortZero: true);

    /// <summary>What the appliance connects to: a name or an IP literal, the port optional.</summary>
    public static AddressRules Remote(int defaultPort) => new(defaultPort, IpLiteral: false, AllowPortZero: false);
}
