using System.Net;

namespace Appliance.Testing;

/// <summary>
/// A chronyd serving its host clock as <c>local stratum 1</c> on an ephemeral loopback port, never
/// touching the clock (-x), with its own control socket; optionally an NTS server too.
/// </summary>
public sealed class ChronyServer : IAsyncDisposable
{
    private readonly PeerProcess _process;

    private ChronyServer(PeerProcess process, string directory, int port, int? ntsPort)
    {
        _process = process;
        Directory = directory;
        Port = port;
        NtsKePort = ntsPort;
    }

    public string Directory { get; }

    public int Port { get; }

    /// <summary>The NTS-KE port, when started with a certificate.</summary>
    public int? NtsKePort { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, Port);

    public string Log => _process.Output;

    /// <param name="nts">A certificate for NTS-KE (ntsservercert/ntsserverkey), or null for plain NTP.</param>
    /// <param name="ntsNtpServer">The NTP server NTS-KE names (ntsntpserver): where its clients send NTP, e.g. a VM's host alias.</param>
    public static async Task<ChronyServer> StartAsync(TestCertificate? nts = null, string ntsNtpServer = "127.0.0.1")
    {
        string dir = System.IO.Directory.CreateTempSubdirectory("chrony-server").FullName;
        await Run.CheckedAsync("chmod", "755", dir);
        string run = Path.Combine(dir, "run");
        System.IO.Directory.CreateDirectory(run);
        await Run.CheckedAsync("chown", "_chrony:_chrony", run);
        await Run.CheckedAsync("chmod", "750", run);
        int port = Ports.FreeUdpPort();
        int? ntsPort = nts is null ? null : Ports.FreeTcpPort();
        string ntsLines = nts is null ? "" : $"ntsport {ntsPort}\nntsservercert {nts.CertificatePath}\nntsserverkey {nts.KeyPath}\nntsdumpdir {run}\nntsntpserver {ntsNtpServer}\n";
        string conf = Path.Combine(dir, "chrony.conf");
        await File.WriteAllTextAsync(conf,
            $"port {port}\nbindaddress 127.0.0.1\nlocal stratum 1\nallow 127.0.0.0/8\ncmdport 0\nbindcmdaddress {run}/chronyd.sock\npidfile {run}/chronyd.pid\n{ntsLines}");
        var process = new PeerProcess("chronyd", ["-x", "-d", "-f", conf]);
        await process.WaitForOutputAsync("chronyd version", TimeSpan.FromSeconds(10));
        return new ChronyServer(process, run, port, ntsPort);
    }

    /// <summary>Runs chronyc against this server's control socket.</summary>
    public Task<CommandResult> ChronycAsync(params string[] args) =>
        Run.CommandAsync("chronyc", ["-h", $"{Directory}/chronyd.sock", .. args], TimeSpan.FromSeconds(10));

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
