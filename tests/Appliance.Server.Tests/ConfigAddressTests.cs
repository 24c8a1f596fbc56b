using System.Net;
using Appliance.Server.Configuration;

namespace Appliance.Server.Tests;

/// <summary>The one address parser: every address of the configuration goes through it.</summary>
public class ConfigAddressTests
{
    [Theory]
    [InlineData("127.0.0.1:123", "127.0.0.1", 123)]
    [InlineData("0.0.0.0:0", "0.0.0.0", 0)]
    [InlineData("[::1]:11123", "::1", 11123)]
    [InlineData("[::]:123", "::", 123)]
    public void Listen_IpLiteralAndPort_Parses(string text, string ip, int port)
    {
        Assert.True(AddressText.TryParse(text, AddressRules.Listen, out HostPort address, out string problem), problem);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(ip), port), address.EndPoint);
    }

    [Theory]
    [InlineData("127.0.0.1", "has no port")]
    [InlineData("[::1]", "has no port")]
    [InlineData("localhost:9975", "'localhost' is not an IP address")]
    [InlineData("1:123", "'1' is not an IP address")]
    [InlineData("010.0.0.1:123", "is not an IP address")]
    [InlineData("::1:123", "has no port")] // a bare IPv6 literal (::0.1.1.35): its colons are its own
    [InlineData("127.0.0.1:65536", "the port '65536' is not a number from 0 to 65535")]
    [InlineData("127.0.0.1:-1", "the port '-1'")]
    [InlineData("[::1:123", "the '[' has no ']'")]
    public void Listen_Rejected_WithTheReason(string text, string reason)
    {
        Assert.False(AddressText.TryParse(text, AddressRules.Listen, out _, out string problem));
        Assert.Contains(reason, problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ntp.example.net", "ntp.example.net", 123, false)]
    [InlineData("ntp.example.net:1123", "ntp.example.net", 1123, true)]
    [InlineData("192.0.2.1", "192.0.2.1", 123, false)]
    [InlineData("[2001:db8::1]:4460", "2001:db8::1", 4460, true)]
    [InlineData("2001:db8::1", "2001:db8::1", 123, false)]
    [InlineData("gps.local", "gps.local", 123, false)]
    public void Remote_NameOrIpWithOptionalPort_Parses(string text, string host, int port, bool written)
    {
        Assert.True(AddressText.TryParse(text, AddressRules.Remote(123), out HostPort address, out string problem), problem);
        Assert.Equal((host, port, written), (address.Host, address.Port, address.PortWritten));
    }

    [Theory]
    [InlineData("ntp.example.net:0", "the port '0' is not a number from 1 to 65535")]
    [InlineData("ntp.example.net:99999", "the port '99999'")]
    [InlineData("ntp.example.net:", "the port ''")]
    [InlineData(":123", "has no host")]
    [InlineData("[ntp.example.net]:123", "in brackets is not an IPv6 address")]
    [InlineData("2001:db8::zz", "not an IPv6 address")]
    [InlineData("tïme.example.net", "not ASCII")]
    [InlineData("ntp example.net", "is not a host name")]
    public void Remote_Rejected_WithTheReason(string text, string reason)
    {
        Assert.False(AddressText.TryParse(text, AddressRules.Remote(123), out _, out string problem));
        Assert.Contains(reason, problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ntp: { listen: [\"127.0.0.1:70000\"] }", "'ntp.listen'")]
    [InlineData("ntp: { listen: [{ address: \"127.0.0.1:70000\" }] }", "'ntp.listen[].address'")]
    [InlineData("metrics: { listen: \"127.0.0.1:70000\" }", "'metrics.listen'")]
    [InlineData("nts-ke: { listen: [\"127.0.0.1:70000\"], certificate: /c, private-key: /k }", "'nts-ke.listen'")]
    [InlineData("nts-ke: { ntp-server: \"ntp.example.net:70000\", certificate: /c, private-key: /k }", "'nts-ke.ntp-server'")]
    [InlineData("sources: [ntp: \"ntp.example.net:70000\"]", "'sources[].ntp.address'")]
    [InlineData("sources: [gpsd: \"gps.local:70000\"]", "'sources[].gpsd.address'")]
    public void EveryAddressKey_SaysTheSameOfABadPort(string yaml, string key)
    {
        ConfigResult result = ConfigLoader.Bind(yaml + "\nclock: { local: {} }\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
        Assert.Contains("the port '70000' is not a number from", error.Message, StringComparison.Ordinal);
    }

    /// <summary>A DNS name of <paramref name="length"/> characters: labels of 63 joined by dots.</summary>
    internal static string LongName(int length) =>
        string.Join('.', Enumerable.Range(0, (length / 64) + 1).Select(i => new string((char)('a' + (i % 26)), 63)))[..length];

    [Fact]
    public void NtsKeNtpServer_LongestDnsName_IsTaken_OneLongerIsRefusedAtTheValue()
    {
        // Security review (issue #14): names past ~198 characters once passed validate, then made every
        // NTS-KE exchange throw. 253 characters is the longest DNS name (RFC 1035 §2.3.4).
        string longest = LongName(AddressText.MaxNameLength);
        string yaml = $"nts-ke: {{ ntp-server: \"{longest}:1123\", certificate: /c, private-key: /k }}\nclock: {{ local: {{}} }}\n";
        ConfigResult result = ConfigLoader.Bind(yaml);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal((longest, (ushort?)1123), (result.Config!.NtsKe!.NtpServer, result.Config.NtsKe.NtpPort));
        Assert.True(AddressText.TryParse(longest + ".", AddressRules.Remote(123), out _, out string problem), problem);

        string tooLong = LongName(AddressText.MaxNameLength + 1);
        ConfigError error = Assert.Single(ConfigLoader.Bind(yaml.Replace(longest, tooLong, StringComparison.Ordinal)).Errors);
        Assert.Contains("'nts-ke.ntp-server'", error.Message, StringComparison.Ordinal);
        Assert.Contains("the name has 254 characters; a DNS name has at most 253", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, error.Line);
        Assert.Equal(ConfigKeys.NtsKeNtpServer.Fix, error.Fix);
    }

    [Fact]
    public void NtsKeNtpServer_BareIpv6_IsTheServerRecordWithNoPort()
    {
        // The old nts-ke.ntp-server parser read the last group of a bare IPv6 address as a port.
        NtsKeConfig nts = ConfigLoader.Bind("nts-ke: { ntp-server: \"2001:db8::1\", certificate: /c, private-key: /k }\nclock: { local: {} }\n").Config!.NtsKe!;
        Assert.Equal(("2001:db8::1", (ushort?)null), (nts.NtpServer, nts.NtpPort));
        nts = ConfigLoader.Bind("nts-ke: { ntp-server: \"[2001:db8::1]:1123\", certificate: /c, private-key: /k }\nclock: { local: {} }\n").Config!.NtsKe!;
        Assert.Equal(("2001:db8::1", (ushort?)1123), (nts.NtpServer, nts.NtpPort));
    }
}
