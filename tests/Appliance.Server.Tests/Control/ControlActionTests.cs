using System.Text.Json;
using Appliance.Server.Configuration;
using Appliance.Server.Control;
using Appliance.Server.Hosting;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests.Control;

/// <summary>`appliance reload` and `appliance rotate-keys` through the control socket: what they print, and their exit codes.</summary>
public class ControlActionTests
{
    private static string Yaml(int port, string socket, string allow) => $$"""
        ntp: { listen: ["127.0.0.1:{{port}}"], workers: 1, rate-limit: off, access: { allow: [{{allow}}] } }
        clock: { mode: software, local: { stratum: 10 } }
        metrics: { listen: off }
        control: { socket: {{socket}} }
        """;

    [Fact]
    public async Task Reload_PrintsWhatApplied_WhatNeedsARestart_OrEveryErrorAndExits1()
    {
        string socket = ControlTests.NewSocketPath();
        int port = Ports.FreeUdpPort();
        string path = ApplianceProcess.WriteConfig(Yaml(port, socket, "\"127.0.0.0/8\""));
        ConfigResult result = ConfigLoader.LoadFile(path);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        await using ApplianceServer server = await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders(), configPath: path);
        Assert.NotNull(await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(1), TimeSpan.FromSeconds(2)));

        // A live change and a restart change: the first applies, the second is named.
        await File.WriteAllTextAsync(path, Yaml(port, socket, "\"192.0.2.0/24\"").Replace("workers: 1", "workers: 2", StringComparison.Ordinal));
        CommandResult reload = await ApplianceProcess.RunAsync("reload", "--socket", socket);
        Assert.True(reload.ExitCode == 0, reload.ToString());
        Assert.Contains("applied: ntp.access.allow", reload.StdOut, StringComparison.Ordinal);
        Assert.Contains("needs a restart: ntp.workers", reload.StdOut, StringComparison.Ordinal);
        Assert.Null(await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(2), TimeSpan.FromMilliseconds(500)));

        // An invalid file: every error with its line and column, exit 1, and the running configuration kept.
        await File.WriteAllTextAsync(path, Yaml(port, socket, "\"127.0.0.0/8\"").Replace("stratum: 10", "stratum: 99", StringComparison.Ordinal) + "\nbogus: 1\n");
        CommandResult invalid = await ApplianceProcess.RunAsync("reload", "--socket", socket, "--json");
        Assert.Equal(ControlCommands.ExitFailed, invalid.ExitCode);
        JsonElement report = ControlTests.AssertMatchesSchema("reload", invalid.StdOut);
        Assert.False(report.GetProperty("ok").GetBoolean());
        string[] lines = [.. report.GetProperty("lines").EnumerateArray().Select(l => l.GetString()!)];
        Assert.Contains(lines, l => l.StartsWith($"error: {path}:2:", StringComparison.Ordinal) && l.Contains("stratum", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"error: {path}:5:1:", StringComparison.Ordinal) && l.Contains("bogus", StringComparison.Ordinal));
        Assert.Null(await NtpQuery.ExchangeAsync(server.NtpEndPoints[0], NtpQuery.ClientRequest(3), TimeSpan.FromMilliseconds(500)));
        CommandResult human = await ApplianceProcess.RunAsync("reload", "--socket", socket);
        Assert.Equal(ControlCommands.ExitFailed, human.ExitCode);
        Assert.Contains($"error: {path}:5:1:", human.StdErr, StringComparison.Ordinal);
        File.Delete(path);
    }

    [Fact]
    public async Task RotateKeys_MakesAFreshKeyCurrent_ThatKeysShows_AndIsRefusedWithoutNts()
    {
        string socket = ControlTests.NewSocketPath();
        var fixture = new NtsServerFixture(extraNtsKe: $"control: {{ socket: {socket} }}");
        await using (ApplianceServer server = await fixture.StartAsync())
        {
            JsonElement before = await ControlTests.JsonVerbAsync(socket, "keys");
            uint current = Current(before);

            CommandResult rotate = await ApplianceProcess.RunAsync("rotate-keys", "--socket", socket);
            Assert.True(rotate.ExitCode == 0, rotate.ToString());
            Assert.StartsWith("rotated", rotate.StdOut, StringComparison.Ordinal);

            JsonElement after = await ControlTests.JsonVerbAsync(socket, "keys");
            Assert.NotEqual(current, Current(after));
            Assert.Contains(after.GetProperty("keys").EnumerateArray(), k => k.GetProperty("id").GetUInt32() == current && !k.GetProperty("current").GetBoolean());
        }

        (ApplianceServer plain, string plainSocket) = await StartPlainAsync();
        await using (plain)
        {
            CommandResult refused = await ApplianceProcess.RunAsync("rotate-keys", "--socket", plainSocket);
            Assert.Equal(ControlCommands.ExitFailed, refused.ExitCode);
            Assert.Contains("NTS is not configured", refused.StdErr, StringComparison.Ordinal);
        }
    }

    private static uint Current(JsonElement keys) =>
        keys.GetProperty("keys").EnumerateArray().Single(k => k.GetProperty("current").GetBoolean()).GetProperty("id").GetUInt32();

    private static async Task<(ApplianceServer, string)> StartPlainAsync()
    {
        string socket = ControlTests.NewSocketPath();
        ConfigResult result = ConfigLoader.Parse(Yaml(Ports.FreeUdpPort(), socket, "\"127.0.0.0/8\""));
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return (await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders()), socket);
    }
}
