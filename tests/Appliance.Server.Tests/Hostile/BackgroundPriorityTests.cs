using System.Globalization;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests.Hostile;

/// <summary>
/// Issue #18: a key-exchange flood must not take the NTP path's CPU. The real executable keeps every
/// thread but its NTP workers <c>ntp.background-nice</c> nice steps below them (read from
/// /proc/PID/task/TID/stat, as the scheduler sees them); the effect under an attack is measured in
/// docs/benchmarks.md ("NTS-KE under attack").
/// </summary>
public sealed class BackgroundPriorityTests
{
    [Theory]
    [InlineData(null, 10)]
    [InlineData(4, 4)]
    [InlineData(0, 0)]
    public async Task EveryThreadButTheWorkers_RunsTheConfiguredStepsLower_TheWorkersKeepTheProcesssNice(int? configured, int steps)
    {
        int port = Ports.FreeUdpPort();
        string nice = configured is { } n ? $", background-nice: {n}" : "";
        string path = ApplianceProcess.WriteConfig(
            $"ntp: {{ listen: [\"127.0.0.1:{port}\"], workers: 2{nice} }}\nclock: {{ mode: software, local: {{}} }}\nmetrics: {{ listen: off }}\ncontrol: {{ socket: off }}\n");
        int own = Nice(Environment.ProcessId, Environment.ProcessId); // what the appliance inherits (the main thread's TID is the PID)
        await using PeerProcess server = ApplianceProcess.Start("serve", "--config", path);
        await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(30));
        Assert.True(own + Math.Max(steps, 1) <= 19, $"the test runs at nice {own}: nothing can be lowered below it, so nothing would be shown");
        int expected = own + steps;

        List<(string Name, int Nice)> threads = [];
        await Eventually.TrueAsync(() =>
        {
            threads = Threads(server.Id);
            return threads.Count(t => t.Name.StartsWith("ntp worker ", StringComparison.Ordinal)) == 2
                && threads.Where(t => !t.Name.StartsWith("ntp worker ", StringComparison.Ordinal)).All(t => t.Nice == expected);
        }, TimeSpan.FromSeconds(10), () => string.Join("\n", threads.Select(t => $"{t.Name}: nice {t.Nice}")) + "\n" + server.Output);

        Assert.All(threads.Where(t => t.Name.StartsWith("ntp worker ", StringComparison.Ordinal)), t => Assert.Equal(own, t.Nice));
        Assert.True(threads.Count > 5, $"only {threads.Count} threads: the runtime's own were not seen");
        // The workers still answer.
        Assert.NotNull(await NtpQuery.ExchangeAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port), NtpQuery.ClientRequest(7), TimeSpan.FromSeconds(5)));
        if (steps > 0)
        {
            Assert.Contains($"run at nice {expected}, the workers at {own}", server.Output, StringComparison.Ordinal);
        }
        File.Delete(path);
    }

    [Fact]
    public async Task AServerHostedInAnotherProcess_LeavesThatProcesssThreadsAlone()
    {
        // The tests host servers in their own process: lowering its threads would slow every test after (and all it starts).
        int own = Nice(Environment.ProcessId, Environment.ProcessId);
        ConfigResult config = ConfigLoader.Parse($"ntp: {{ listen: [\"127.0.0.1:{Ports.FreeUdpPort()}\"], workers: 1 }}\nclock: {{ mode: software, local: {{}} }}\nmetrics: {{ listen: off }}\ncontrol: {{ socket: off }}\n");
        Assert.True(config.IsValid, string.Join("; ", config.Errors));
        await using (ApplianceServer server = await ApplianceServer.StartAsync(config.Config!, l => l.ClearProviders()))
        {
            await Task.Delay(TimeSpan.FromSeconds(3)); // three sweeps of a serve process's BackgroundPriorityService
            Assert.All(Threads(Environment.ProcessId), t => Assert.Equal(own, t.Nice));
        }
    }

    private static List<(string Name, int Nice)> Threads(int pid)
    {
        var threads = new List<(string, int)>();
        foreach (string task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            try
            {
                threads.Add((File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n'), Nice(pid, int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture))));
            }
            catch (IOException)
            {
                // the thread ended meanwhile
            }
        }
        return threads;
    }

    /// <summary>Field 19 of /proc/PID/task/TID/stat (proc(5)), counted after the command name, which may hold spaces.</summary>
    private static int Nice(int pid, int tid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/task/{tid}/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[16], CultureInfo.InvariantCulture); // field 3 is fields[0]
    }
}
