using System.Net;
using System.Net.Sockets;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>The `appliance` executable as an operator meets it.</summary>
public class CliTests
{
    [Fact]
    public async Task Version_PrintsVersion()
    {
        CommandResult result = await ApplianceProcess.RunAsync("version");
        Assert.Equal(0, result.ExitCode);
        Assert.Matches(@"^appliance \d+\.\d+\.\d+", result.StdOut);
    }

    [Fact]
    public async Task Validate_GoodFile_ExitsZero()
    {
        string path = ApplianceProcess.WriteConfig("clock: { local: { stratum: 3 } }\n");
        CommandResult result = await ApplianceProcess.RunAsync("validate", path);
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("valid", result.StdOut, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Validate_BadFile_PrintsEveryErrorWithLineColumnAndFix()
    {
        string path = ApplianceProcess.WriteConfig("ntp:\n  listen: [\"nowhere\"]\nclock:\n  mode: sundial\n  local: {}\n");
        CommandResult result = await ApplianceProcess.RunAsync("validate", path);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"{path}:2:12: error:", result.StdErr, StringComparison.Ordinal);
        Assert.Contains($"{path}:4:9: error:", result.StdErr, StringComparison.Ordinal);
        Assert.Equal(2, result.StdErr.Split('\n').Count(l => l.TrimStart().StartsWith("fix:", StringComparison.Ordinal)));
        Assert.Contains("2 error(s)", result.StdErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_PortInUse_PrintsOneLineNamingThePortAndExitsNonZero()
    {
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int port = ((IPEndPoint)holder.LocalEndPoint!).Port;
        string path = ApplianceProcess.WriteConfig($"ntp: {{ listen: [\"127.0.0.1:{port}\"] }}\nclock: {{ mode: software, local: {{}} }}\nmetrics: {{ listen: off }}\n");

        CommandResult result = await ApplianceProcess.RunAsync("serve", "--config", path);

        Assert.Equal(2, result.ExitCode);
        string[] lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        string line = Assert.Single(lines);
        Assert.Contains($"127.0.0.1:{port}", line, StringComparison.Ordinal);
        Assert.Contains("in use", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_Sigterm_ShutsDownCleanly()
    {
        int port = Ports.FreeUdpPort();
        string path = ApplianceProcess.WriteConfig($"ntp: {{ listen: [\"127.0.0.1:{port}\"] }}\nclock: {{ mode: software, local: {{}} }}\nmetrics: {{ listen: off }}\n");
        await using PeerProcess server = ApplianceProcess.Start("serve", "--config", path);
        await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(30));
        byte[]? reply = await NtpQuery.ExchangeAsync(new IPEndPoint(IPAddress.Loopback, port), NtpQuery.ClientRequest(7), TimeSpan.FromSeconds(5));
        Assert.NotNull(reply);

        await server.TerminateAsync();

        Assert.Equal(0, await server.WaitForExitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("NTP workers stopped", server.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("fail", server.Output, StringComparison.OrdinalIgnoreCase);
    }
}
