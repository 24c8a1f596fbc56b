using System.Net;
using System.Net.Sockets;

namespace Appliance.Testing;

/// <summary>
/// Ephemeral ports for test servers. Never a fixed port: SO_REUSEPORT would let a stray process on
/// the machine share it silently (../shared/NOTES-dotnet.md).
/// </summary>
public static class Ports
{
    /// <summary>A UDP port free on both 127.0.0.1 and ::1 right now (bound without SO_REUSEPORT, then released).</summary>
    public static int FreeUdpPort()
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            using var v4 = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            v4.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            int port = ((IPEndPoint)v4.LocalEndPoint!).Port;
            try
            {
                using var v6 = new Socket(AddressFamily.InterNetworkV6, SocketType.Dgram, ProtocolType.Udp);
                v6.Bind(new IPEndPoint(IPAddress.IPv6Loopback, port));
                return port;
            }
            catch (SocketException)
            {
            }
        }
        throw new InvalidOperationException("no UDP port free on both 127.0.0.1 and ::1");
    }

    /// <summary>A TCP port free on 127.0.0.1 right now.</summary>
    public static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
