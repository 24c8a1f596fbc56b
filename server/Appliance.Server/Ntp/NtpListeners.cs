using System.Net;
using System.Net.Sockets;
using Appliance.Engine;
using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Server.Ntp;

/// <summary>A listen address that could not be bound, with the operator-facing reason.</summary>
public sealed class BindFailedException(string what, IPEndPoint endPoint, string reason, Exception inner)
    : Exception($"cannot bind {what} {endPoint}: {reason}", inner)
{
    public BindFailedException(string what, IPEndPoint endPoint, SocketException inner)
        : this(what, endPoint, Describe(inner), inner)
    {
    }

    public IPEndPoint EndPoint { get; } = endPoint;

    private static string Describe(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.AddressAlreadyInUse => "the port is in use by another program (stop it, or change the listen address)",
        SocketError.AccessDenied => "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        SocketError.AddressNotAvailable => "no interface has this address (check the listen address)",
        _ => e.Message,
    };
}

/// <summary>The NTP sockets, bound before the host starts so that a bad address fails at once.</summary>
public sealed class NtpListeners : IDisposable
{
    private readonly List<NtpWorker> _workers = [];

    public IReadOnlyList<NtpWorker> Workers => _workers;

    /// <summary>Binds every listen address; throws <see cref="BindFailedException"/> naming the first that fails.</summary>
    public static NtpListeners Bind(IReadOnlyList<IPEndPoint> endPoints, ServerStateCell state)
    {
        var listeners = new NtpListeners();
        try
        {
            foreach (IPEndPoint endPoint in endPoints)
            {
                TimestampedSocket socket;
                try
                {
                    socket = TimestampedSocket.Open(endPoint, new TimestampedSocketOptions());
                }
                catch (SocketException e)
                {
                    throw new BindFailedException("NTP on UDP", endPoint, e);
                }
                listeners._workers.Add(new NtpWorker(socket, state));
            }
            return listeners;
        }
        catch
        {
            listeners.Dispose();
            throw;
        }
    }

    public IEnumerable<WorkerCounters> Counters => _workers.Select(r => r.Counters);

    public void Dispose()
    {
        foreach (NtpWorker worker in _workers)
        {
            worker.Dispose();
        }
    }
}
