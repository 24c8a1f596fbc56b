using System.Net;
using System.Net.Sockets;
using Appliance.Server.Ntp;
using Appliance.Sources;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Hosting;

/// <summary>The TCP listeners' shared shell (NTS-KE, Roughtime): binding one address, and the accept loop.</summary>
internal static class TcpListeners
{
    /// <summary>A listening socket on <paramref name="endPoint"/> (IPv6 only on an IPv6 address); <see cref="BindFailedException"/> naming <paramref name="what"/> otherwise.</summary>
    public static Socket Bind(IPEndPoint endPoint, string what)
    {
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endPoint.AddressFamily == AddressFamily.InterNetworkV6)
            {
                socket.DualMode = false; // one socket per family, as the UDP listeners
            }
            socket.Bind(endPoint);
            socket.Listen(1024);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new BindFailedException(what, endPoint, Engine.EngineBindException.Describe(e), e);
        }
    }

    /// <summary>
    /// Accepts on <paramref name="listener"/> until <paramref name="stop"/>, handing each connection to
    /// <paramref name="accepted"/>. A failing accept (EMFILE and the like fail every accept at once) is
    /// logged through <paramref name="failures"/>, summarised, and the loop goes on.
    /// </summary>
    public static async Task AcceptAsync(Socket listener, LogSummary failures, ILogger logger, string what, Action<Socket> accepted, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stop);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException || (e is SocketException && stop.IsCancellationRequested))
            {
                return;
            }
            catch (SocketException e)
            {
                if (failures.Occurred(e.Message))
                {
                    logger.LogWarning("{What} accept failed: {Error}", what, e.Message);
                }
                continue;
            }
            accepted(client);
        }
    }
}
