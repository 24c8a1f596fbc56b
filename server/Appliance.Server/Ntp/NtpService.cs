using Appliance.Engine;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Ntp;

/// <summary>Runs the NTP listeners for the lifetime of the host.</summary>
internal sealed class NtpService(NtpListeners listeners, IHostApplicationLifetime lifetime, ILogger<NtpService> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (NtpWorker worker in listeners.Workers)
        {
            worker.OnFault = e =>
            {
                logger.LogCritical(e, "NTP listener {EndPoint} failed; stopping", worker.LocalEndPoint);
                lifetime.StopApplication();
            };
            worker.Start();
        }
        logger.LogInformation("serving NTP on UDP {EndPoints}", string.Join(", ", listeners.Workers.Select(r => r.LocalEndPoint)));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        listeners.Dispose();
        logger.LogInformation("NTP listeners closed");
        return Task.CompletedTask;
    }
}
