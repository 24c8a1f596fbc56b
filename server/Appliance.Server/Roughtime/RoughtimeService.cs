using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Roughtime;

/// <summary>Runs the Roughtime listener for the lifetime of the host.</summary>
internal sealed class RoughtimeService(RoughtimeServer server, ILogger<RoughtimeService> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        server.Start();
        logger.LogInformation("serving Roughtime (RFC 10049, versions 1 and draft 0x8000000c) on UDP {Udp}{Tcp}; {Key}",
            string.Join(", ", server.UdpEndPoints),
            server.TcpEndPoints.Count > 0 ? $" and TCP {string.Join(", ", server.TcpEndPoints)}" : "",
            server.Keys.Describe());
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await server.DisposeAsync();
}
