using System.Text.RegularExpressions;
using Appliance.Server.Configuration;
using Appliance.Testing;

namespace Appliance.Server.Tests.Deployment;

/// <summary>The image's other files: the shipped configuration and the first boot agree on the TLS paths.</summary>
public partial class ImageFilesTests
{
    [GeneratedRegex(@"^(cert|key)=(\S+)$", RegexOptions.Multiline)]
    private static partial Regex FirstBootPath();

    [Fact]
    public void ShippedConfig_NamesTheTlsFiles_TheFirstBootCreates()
    {
        ConfigResult result = ConfigLoader.BindFile(Repo.Path("appliance-image", "etc", "appliance.yaml"));
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Dictionary<string, string> made = FirstBootPath().Matches(File.ReadAllText(Repo.Path("appliance-image", "firstboot", "appliance-firstboot")))
            .ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value, StringComparer.Ordinal);
        NtsKeConfig nts = result.Config!.NtsKe!;
        Assert.Equal(made["cert"], nts.Certificate);
        Assert.Equal(made["key"], nts.PrivateKey);
    }

    [Fact]
    public void Sysusers_CreatesTheUserTheUnitRunsAs()
    {
        string sysusers = File.ReadAllText(Repo.Path("appliance-image", "sysusers.d", "appliance.conf"));
        string unit = File.ReadAllText(Hardening.UnitPath);
        Assert.Matches(@"(?m)^u appliance - ", sysusers);
        Assert.Matches(@"(?m)^User=appliance$", unit);
        Assert.Matches(@"(?m)^Group=appliance$", unit);
    }
}
