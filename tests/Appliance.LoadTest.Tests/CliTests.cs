using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.LoadTest.Tests;

/// <summary>appliance-loadtest as a person (or a script) uses it.</summary>
public class CliTests
{
    private static string Dll => Path.Combine(AppContext.BaseDirectory, "appliance-loadtest.dll");

    private static Task<CommandResult> LoadTest(params string[] args) => Run.CommandAsync("dotnet", [Dll, .. args], TimeSpan.FromSeconds(120));

    [Theory]
    [InlineData("8.8.8.8:123")]
    [InlineData("[2001:4860::8888]:123")]
    public async Task RemoteTarget_IsRefusedWithoutAllowRemote(string target)
    {
        CommandResult result = await LoadTest("run", target, "--rate", "10", "--duration", "1s");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("refusing", result.StdErr, StringComparison.Ordinal);
        Assert.Contains("--allow-remote", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NtskeCommand_MeasuresHandshakesPerSecond()
    {
        TestCertificate certificate = TestCertificate.Create("ntp.test", "127.0.0.1");
        int ke = Ports.FreeTcpPort();
        string yaml = $"ntp: {{ listen: [\"127.0.0.1:{Ports.FreeUdpPort()}\"], workers: 1 }}\nnts-ke: {{ listen: [\"127.0.0.1:{ke}\"], certificate: {certificate.CertificatePath}, private-key: {certificate.KeyPath}, keys: {{ storage: {certificate.Directory}/k.json }}, client-limit: {{ connections: 100000, interval: 1s }} }}\nclock: {{ mode: software, local: {{}} }}\nmetrics: {{ listen: off }}\n";
        var config = Appliance.Server.Configuration.ConfigLoader.Parse(yaml);
        Assert.True(config.IsValid, string.Join("\n", config.Errors));
        await using var server = await Appliance.Server.Hosting.ApplianceServer.StartAsync(config.Config!, l => l.ClearProviders());

        CommandResult result = await LoadTest("ntske", $"127.0.0.1:{ke}", "--name", "ntp.test", "--ca", certificate.CertificatePath, "--duration", "1s", "--concurrency", "2");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Matches(@"\| 127\.0\.0\.1:\d+ \| [1-9]\d* \| [1-9]\d* \| 0 \|", result.StdOut);
    }

    [Fact]
    public async Task StepLongerThanTenMinutes_IsRefused()
    {
        CommandResult result = await LoadTest("run", "127.0.0.1:9", "--rate", "10", "--duration", "11m");
        Assert.Equal(2, result.ExitCode);
    }

    [Fact]
    public async Task Ramp_VersusTwoServers_WritesTableRatioJsonAndPlot()
    {
        using var a = new MisbehavingServer(Misbehaviour.Correct);
        using var b = new MisbehavingServer(Misbehaviour.Silent);
        string json = Path.GetTempFileName();
        string svg = Path.ChangeExtension(json, ".svg");
        CommandResult result = await LoadTest("ramp", a.EndPoint.ToString(), "--vs", b.EndPoint.ToString(),
            "--from", "500", "--factor", "2", "--to", "2000", "--step-duration", "500ms", "--warmup", "0s", "--clients", "16", "--ports", "1",
            "--json", json, "--plot", svg);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("| rate/s |", result.StdOut, StringComparison.Ordinal);
        Assert.Contains("ratio", result.StdOut, StringComparison.Ordinal);
        Assert.Contains($"{a.EndPoint}: highest rate held with loss ≤ 1%: 2000/s", result.StdOut, StringComparison.Ordinal);
        Assert.Contains($"{b.EndPoint}: highest rate held with loss ≤ 1%: none", result.StdOut, StringComparison.Ordinal);
        using var doc = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(json));
        Assert.Equal(2000, doc.RootElement.GetProperty("MaxHeldRate").GetProperty(a.EndPoint.ToString()).GetDouble());
        // The silent server fails at the first step, so the ramp stops sending to it: 3 + 1 steps.
        Assert.Equal(4, doc.RootElement.GetProperty("Steps").GetArrayLength());
        string plot = await File.ReadAllTextAsync(svg);
        Assert.StartsWith("<svg", plot, StringComparison.Ordinal);
        Assert.Contains("polyline", plot, StringComparison.Ordinal);
    }
}
