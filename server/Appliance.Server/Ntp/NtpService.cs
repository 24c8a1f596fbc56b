using Appliance.Engine;
using Appliance.Server.Configuration;
using Appliance.Sources;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Ntp;

/// <summary>Runs the packet engine for the lifetime of the host.</summary>
internal sealed class NtpService(NtpEngine engine, ApplianceConfig config, ILogger<NtpService> logger) : IHostedService, IDisposable
{
    /// <summary>A fault a packet triggers can come back with every packet once the back-off is short (a test's): summarised.</summary>
    private readonly LogSummary _faults = new(logger, LogLevel.Error, "NTP worker failures");

    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (NtpWorker worker in engine.Workers)
        {
            worker.OnFault = (w, e) =>
            {
                if (_faults.Occurred($"worker {w.Index}: {e.Message}"))
                {
                    logger.LogError(e, "NTP worker {Worker} failed; restarting it in {Pause}", w.Index, w.RestartPause);
                }
            };
            worker.OnWarning = (w, problem) => logger.LogWarning("NTP worker {Worker}: {Problem}", w.Index, problem);
        }
        engine.Start();
        int main = config.Ntp.Listen.Count;
        logger.LogInformation("serving NTP on UDP {EndPoints} with {Workers} worker(s){Smear}",
            string.Join(", ", engine.LocalEndPoints.Take(main)), engine.Workers.Count,
            engine.LocalEndPoints.Count > main
                ? $"; leap-smeared time (never for the main listeners, docs/leap-smear.md) on UDP {string.Join(", ", engine.LocalEndPoints.Skip(main))}"
                : "");
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        engine.Dispose();
        logger.LogInformation("NTP workers stopped");
        return Task.CompletedTask;
    }

    public void Dispose() => _faults.Dispose();
}
