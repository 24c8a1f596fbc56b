using System.Net;
using Appliance.Protocol;

namespace Appliance.Protocol.Tests;

public class AccessListTests
{
    private static NetAddress A(string ip) => NetAddress.FromIPAddress(IPAddress.Parse(ip));

    private static AccessRule Rule(string prefix, bool allow)
    {
        Assert.True(AccessRule.TryParse(prefix, allow, out AccessRule rule), prefix);
        return rule;
    }

    [Fact]
    public void AllowAll_AllowsBothFamilies()
    {
        Assert.True(AccessList.AllowAll.Allows(A("192.0.2.1")));
        Assert.True(AccessList.AllowAll.Allows(A("2001:db8::1")));
    }

    [Fact]
    public void MostSpecificRuleWins_LikeChrony()
    {
        var list = new AccessList([Rule("0.0.0.0/0", true), Rule("192.0.2.0/24", false), Rule("192.0.2.128/25", true)]);
        Assert.True(list.Allows(A("198.51.100.1")));
        Assert.False(list.Allows(A("192.0.2.5")));
        Assert.True(list.Allows(A("192.0.2.200")));
    }

    [Fact]
    public void DenyBeatsAllowOfSameLength()
    {
        var list = new AccessList([Rule("10.0.0.0/8", true), Rule("10.0.0.0/8", false)]);
        Assert.False(list.Allows(A("10.1.2.3")));
    }

    [Fact]
    public void NoMatchingRule_IsDenied()
    {
        var list = new AccessList([Rule("2001:db8::/32", true)]);
        Assert.True(list.Allows(A("2001:db8:1::5")));
        Assert.False(list.Allows(A("2001:db9::1")));
        Assert.False(list.Allows(A("192.0.2.1")));
    }

    [Fact]
    public void IPv4RuleNeverMatchesIPv6AndViceVersa()
    {
        var v4Only = new AccessList([Rule("0.0.0.0/0", true)]);
        Assert.False(v4Only.Allows(A("::1")));
        var v6Only = new AccessList([Rule("::/0", true), Rule("::ffff:0:0/96", false)]);
        Assert.False(v6Only.Allows(A("192.0.2.1")));
    }

    [Theory]
    [InlineData("192.0.2.0/33")]
    [InlineData("2001:db8::/129")]
    [InlineData("not-an-address")]
    [InlineData("192.0.2.0/-1")]
    [InlineData("192.0.2.0/24/1")]
    public void TryParse_Rejects(string text) => Assert.False(AccessRule.TryParse(text, true, out _));

    [Fact]
    public void TryParse_HostAddressIsFullLengthPrefix()
    {
        AccessRule rule = Rule("192.0.2.7", true);
        Assert.Equal(128, rule.PrefixLength);
        Assert.True(rule.Matches(A("192.0.2.7")));
        Assert.False(rule.Matches(A("192.0.2.8")));
    }
}
