using Appliance.Server.Configuration;

namespace Appliance.Server.Tests;

/// <summary>Parsing reads the text alone; the preflight checks the files it names, and can run again by itself.</summary>
public sealed class ConfigPreflightTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("appliance-preflight-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Yaml => $$"""
        nts-ke:
          certificate: {{_dir}}/cert.pem
          private-key: {{_dir}}/key.pem
          keys: { fleet-secret: {{_dir}}/fleet.key }
        clock: { leap-seconds: {{_dir}}/leap-seconds.list }
        sources:
          - pps: {{_dir}}/pps0
          - phc: { device: {{_dir}}/ptp0 }
          - ntp: { address: "a.example", nts: true, trust: {{_dir}}/ca.pem }
        """;

    [Fact]
    public void Bind_NamesEveryFileAndDevice_OpensNone()
    {
        ConfigResult bound = ConfigLoader.Bind(Yaml);
        Assert.True(bound.IsValid, string.Join("\n", bound.Errors));
        Assert.Equal(
            [
                ("nts-ke.certificate", "cert.pem", 2, 16),
                ("nts-ke.private-key", "key.pem", 3, 16),
                ("nts-ke.keys.fleet-secret", "fleet.key", 4, 25),
                ("clock.leap-seconds", "leap-seconds.list", 5, 24),
                ("sources[].pps.device", "pps0", 7, 10),
                ("sources[].phc.device", "ptp0", 8, 20),
                ("sources[].ntp.trust", "ca.pem", 9, 52),
            ],
            bound.Files.Select(f => (f.Key.Path, Path.GetFileName(f.Path), f.Line, f.Column)).ToArray());
    }

    [Fact]
    public void Parse_ReportsEachMissingOne_AtItsValue_WithItsOwnAdvice()
    {
        ConfigResult result = ConfigLoader.Parse(Yaml);
        Assert.Null(result.Config);
        Assert.Equal(
            [
                (2, 16, $"nts-ke.certificate: no file {_dir}/cert.pem", ConfigKeys.NtsKeCertificate.IfMissing),
                (3, 16, $"nts-ke.private-key: no file {_dir}/key.pem", ConfigKeys.NtsKePrivateKey.IfMissing),
                (4, 25, $"nts-ke.keys.fleet-secret: no file {_dir}/fleet.key", ConfigKeys.NtsKeKeysFleetSecret.IfMissing),
                (5, 24, $"clock.leap-seconds: no file {_dir}/leap-seconds.list", ConfigKeys.ClockLeapSeconds.IfMissing),
                (7, 10, $"sources[].pps.device: no device {_dir}/pps0", ConfigKeys.PpsSourceDevice.IfMissing),
                (8, 20, $"sources[].phc.device: no device {_dir}/ptp0", ConfigKeys.PhcSourceDevice.IfMissing),
                (9, 52, $"sources[].ntp.trust: no file {_dir}/ca.pem", ConfigKeys.NtpSourceTrust.IfMissing),
            ],
            result.Errors.Select(e => (e.Line, e.Column, e.Message, (string?)e.Fix)).ToArray());
    }

    [Fact]
    public void Check_RunAgainAlone_SeesTheFilesThatAppeared()
    {
        // What a reload does after a certificate renewal: the parse it holds, the preflight again.
        ConfigResult bound = ConfigLoader.Bind(Yaml);
        Assert.Equal(7, ConfigPreflight.Check(bound.Files).Count);
        foreach (FileReference file in bound.Files)
        {
            File.WriteAllText(file.Path, "x");
        }
        Assert.Empty(ConfigPreflight.Check(bound.Files));
        Assert.True(ConfigLoader.Parse(Yaml).IsValid);
    }

    [Fact]
    public void Check_ADirectory_IsNotAFile()
    {
        ConfigResult bound = ConfigLoader.Bind($"clock: {{ local: {{}}, leap-seconds: {_dir} }}\n");
        ConfigError error = Assert.Single(ConfigPreflight.Check(bound.Files));
        Assert.Equal($"clock.leap-seconds: {_dir} is a directory, not a file", error.Message);
    }
}
