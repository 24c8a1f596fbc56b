using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Nts;

/// <summary>Runs the NTS-KE listener for the lifetime of the host.</summary>
internal sealed class NtsKeService(NtsKeServer server, CertificateStore certificates, ILogger<NtsKeService> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        server.Start();
        logger.LogInformation("serving NTS-KE (TLS 1.3, ALPN ntske/1) on TCP {EndPoints}; certificate {Certificate}",
            string.Join(", ", server.LocalEndPoints), certificates.Describe());
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await server.DisposeAsync();
        certificates.Dispose();
    }
}
