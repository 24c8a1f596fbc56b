using System.Net;
using System.Net.Sockets;
using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Engine;

/// <summary>A listen address that could not be bound.</summary>
public sealed class EngineBindException(IPEndPoint endPoint, SocketException inner)
    : Exception($"cannot bind NTP on UDP {endPoint}: {Describe(inner)}", inner)
{
    public IPEndPoint EndPoint { get; } = endPoint;

    public static string Describe(SocketException e) => e.SocketErrorCode switch
    {
        SocketError.AddressAlreadyInUse => "the port is in use by another program (stop it, or change the listen address)",
        SocketError.AccessDenied => "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
        SocketError.AddressNotAvailable => "no interface has this address (check the listen address)",
        _ => e.Message,
    };
}

/// <summary>
/// The packet engine: for every listen address an SO_REUSEPORT group with one socket per worker and
/// a source-address steering program; the workers answer from the shared <see cref="ServerStateCell"/>.
/// </summary>
public sealed class NtpEngine : IDisposable
{
    private readonly NtpWorker[] _workers;

    private NtpEngine(NtpWorker[] workers, IReadOnlyList<IPEndPoint> endPoints)
    {
        _workers = workers;
        LocalEndPoints = endPoints;
    }

    public IReadOnlyList<NtpWorker> Workers => _workers;

    /// <summary>The bound addresses (ephemeral ports resolved).</summary>
    public IReadOnlyList<IPEndPoint> LocalEndPoints { get; }

    /// <summary>Binds every socket; throws <see cref="EngineBindException"/> naming the first address that fails.</summary>
    public static NtpEngine Bind(EngineOptions options, ServerStateCell state)
    {
        int workers = Math.Max(1, options.Workers);
        var perWorker = new List<TimestampedSocket>[workers];
        for (int w = 0; w < workers; w++)
        {
            perWorker[w] = [];
        }
        var endPoints = new List<IPEndPoint>();
        // Transmit timestamps serve the interleaved mode only: a basic-mode response cannot carry its own.
        var socketOptions = new TimestampedSocketOptions { HardwareTimestamps = options.HardwareTimestamps, TransmitTimestamps = options.InterleavedEntries > 0, ReceiveBufferBytes = options.ReceiveBufferBytes };
        try
        {
            foreach (IPEndPoint endPoint in options.Listen)
            {
                TimestampedSocket[] group;
                try
                {
                    group = ReusePortGroup.Open(endPoint, workers, socketOptions);
                }
                catch (SocketException e)
                {
                    throw new EngineBindException(endPoint, e);
                }
                endPoints.Add(group[0].LocalEndPoint);
                for (int w = 0; w < workers; w++)
                {
                    perWorker[w].Add(group[w]);
                }
            }
            var list = new NtpWorker[workers];
            for (int w = 0; w < workers; w++)
            {
                list[w] = new NtpWorker(w, perWorker[w], state, options with { Workers = workers });
            }
            return new NtpEngine(list, endPoints);
        }
        catch
        {
            foreach (TimestampedSocket socket in perWorker.SelectMany(s => s))
            {
                socket.Dispose();
            }
            throw;
        }
    }

    /// <summary>True when the workers were built with rate-limit tables (rate limiting was on at start).</summary>
    public bool HasRateLimitTables => _workers.Length > 0 && _workers[0].RateLimiter is not null;

    /// <summary>
    /// A new access list, deny action and rate-limit parameters for every worker, taken up at the
    /// start of each worker's next batch; the rate tables keep their clients. Returns false (and
    /// changes nothing) when <paramref name="rateLimit"/> asks for rate limiting but the workers have
    /// no tables (it was off at start): that takes a restart. The tables' size stays as built.
    /// </summary>
    public bool UpdatePolicy(AccessList? access, DenyAction denyAction, RateLimitSettings? rateLimit)
    {
        if (rateLimit is not null && !HasRateLimitTables)
        {
            return false;
        }
        foreach (NtpWorker worker in _workers)
        {
            // One record per worker: each worker's "have I applied it" compare is its own.
            worker.Policy = new WorkerPolicy(access, denyAction, rateLimit);
        }
        return true;
    }

    public void Start()
    {
        foreach (NtpWorker worker in _workers)
        {
            worker.Start();
        }
    }

    public void Dispose()
    {
        foreach (NtpWorker worker in _workers)
        {
            worker.Dispose();
        }
    }
}

/// <summary>What a worker answers by: access list, deny action, rate-limit parameters (null: off).</summary>
public sealed record WorkerPolicy(AccessList? Access, DenyAction DenyAction, RateLimitSettings? RateLimit);
