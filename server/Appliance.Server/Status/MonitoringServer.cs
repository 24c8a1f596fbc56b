using System.Net;
using System.Net.Sockets;
using System.Text;
using Appliance.Server.Ntp;
using Prometheus;

namespace Appliance.Server.Status;

/// <summary>
/// The metrics listener: <c>/metrics</c> (the Prometheus text exposition of the registry) and <c>/</c>
/// (the status page), over HttpListener (no ASP.NET, as prometheus-net's MetricServer was). Read-only:
/// GET and HEAD only (405 otherwise), 404 for any other path, and no request body is ever read. At most
/// <see cref="MaxConcurrentRequests"/> requests are served at once (the rest get 503 at once) and each
/// has <see cref="RequestTimeout"/> to be answered, after which its connection is aborted.
/// </summary>
public sealed class MonitoringServer : IAsyncDisposable
{
    public const int MaxConcurrentRequests = 4;
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The Prometheus text format, version 0.0.4 (what prometheus-net's MetricServer served).</summary>
    public const string MetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly HttpListener _listener;
    private readonly CollectorRegistry _registry;
    private readonly SemaphoreSlim _slots = new(MaxConcurrentRequests, MaxConcurrentRequests);
    private readonly CancellationTokenSource _stop = new();
    private volatile Func<string>? _page;
    private Task _accepting = Task.CompletedTask;

    private MonitoringServer(HttpListener listener, CollectorRegistry registry, IPEndPoint endPoint)
    {
        _listener = listener;
        _registry = registry;
        EndPoint = endPoint;
    }

    public IPEndPoint EndPoint { get; }

    /// <summary>
    /// Binds <paramref name="listen"/> and starts serving /metrics (the page answers 503 until
    /// <see cref="ServePage"/>). Throws <see cref="BindFailedException"/> when the address cannot be bound.
    /// </summary>
    public static MonitoringServer Start(IPEndPoint listen, CollectorRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(listen);
        // HttpListener cannot bind port 0: for port 0 pick a free port the kernel offers. The probe
        // must close before HttpListener binds, so another socket (an outgoing connection's ephemeral
        // port is drawn from the same range) may take the port in between: then ask for another.
        const int attempts = 8;
        for (int attempt = 1; ; attempt++)
        {
            int port = listen.Port == 0 ? FreeTcpPort(listen.Address) : listen.Port;
            string host = listen.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{listen.Address}]" : listen.Address.ToString();
            var listener = new HttpListener();
            listener.Prefixes.Add($"http://{host}:{port}/");
            try
            {
                listener.Start();
            }
            catch (HttpListenerException e)
            {
                CloseUnstarted(listener);
                if (listen.Port == 0 && attempt < attempts)
                {
                    continue;
                }
                throw new BindFailedException("metrics on TCP", new IPEndPoint(listen.Address, port),
                    $"{e.Message} (stop the other program, or change metrics.listen)", e);
            }
            var server = new MonitoringServer(listener, registry, new IPEndPoint(listen.Address, port));
            server._accepting = server.AcceptAsync();
            return server;
        }
    }

    /// <summary>
    /// Releases a listener whose Start failed. The managed HttpListener's Close looks its endpoint up
    /// by port and, finding none, binds the port anew to remove it: on the port that was just taken,
    /// that throws again. Nothing is held by a listener that never started, so that failure is moot.
    /// </summary>
    private static void CloseUnstarted(HttpListener listener)
    {
        try
        {
            listener.Close();
        }
        catch (HttpListenerException)
        {
        }
    }

    private static int FreeTcpPort(IPAddress address)
    {
        using var probe = new TcpListener(address, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>From now on <c>/</c> answers with <paramref name="page"/>'s HTML.</summary>
    public void ServePage(Func<string> page) => _page = page;

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
                continue;
            }
            if (!_slots.Wait(0))
            {
                Refuse(context);
                continue;
            }
            // On the pool, not inline: the page and the collection are synchronous, and the accept loop
            // must go on taking (or refusing) the next request meanwhile.
            _ = Task.Run(() => ServeAsync(context));
        }
    }

    private static void Refuse(HttpListenerContext context)
    {
        try
        {
            HttpListenerResponse response = context.Response;
            response.StatusCode = (int)HttpStatusCode.ServiceUnavailable;
            response.Headers["Retry-After"] = "1";
            response.KeepAlive = false;
            response.ContentLength64 = 0;
            response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            context.Response.Abort();
        }
    }

    private async Task ServeAsync(HttpListenerContext context)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(RequestTimeout);
            // A client that stops reading holds its slot until the deadline, then loses the connection.
            await using CancellationTokenRegistration abort = timeout.Token.Register(() => Abort(context));
            await AnswerAsync(context, timeout.Token).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // whatever fails (a collector, the page, the client going away), the connection ends and the slot is given back
        catch (Exception)
#pragma warning restore CA1031
        {
            Abort(context);
        }
        finally
        {
            _slots.Release();
        }
    }

    private static void Abort(HttpListenerContext context)
    {
        try
        {
            context.Response.Abort();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task AnswerAsync(HttpListenerContext context, CancellationToken cancellationToken)
    {
        HttpListenerRequest request = context.Request;
        HttpListenerResponse response = context.Response;
        response.Headers["Cache-Control"] = "no-store";
        response.Headers["X-Content-Type-Options"] = "nosniff";
        if (request.HasEntityBody)
        {
            // The body is never read: the connection cannot carry another request after it.
            response.KeepAlive = false;
        }
        bool head = request.HttpMethod == "HEAD";
        if (!head && request.HttpMethod != "GET")
        {
            response.Headers["Allow"] = "GET, HEAD";
            await SendAsync(response, HttpStatusCode.MethodNotAllowed, "text/plain; charset=utf-8",
                Encoding.UTF8.GetBytes($"{request.HttpMethod} is not allowed here: the metrics listener is read-only (GET or HEAD)\n"), head, cancellationToken).ConfigureAwait(false);
            return;
        }
        switch (request.Url?.AbsolutePath)
        {
            case "/metrics" or "/metrics/":
                byte[] metrics;
                try
                {
                    using var buffer = new MemoryStream();
                    await _registry.CollectAndExportAsTextAsync(buffer, cancellationToken).ConfigureAwait(false);
                    metrics = buffer.ToArray();
                }
                catch (ScrapeFailedException e)
                {
                    await SendAsync(response, HttpStatusCode.ServiceUnavailable, "text/plain; charset=utf-8",
                        Encoding.UTF8.GetBytes($"scrape failed: {e.Message}\n"), head, cancellationToken).ConfigureAwait(false);
                    return;
                }
                await SendAsync(response, HttpStatusCode.OK, MetricsContentType, metrics, head, cancellationToken).ConfigureAwait(false);
                return;
            case "/":
                if (_page is not { } page)
                {
                    await SendAsync(response, HttpStatusCode.ServiceUnavailable, "text/plain; charset=utf-8",
                        "starting\n"u8.ToArray(), head, cancellationToken).ConfigureAwait(false);
                    return;
                }
                // No script and no external assets: nothing but inline styles and the page's own SVG may load.
                response.Headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";
                await SendAsync(response, HttpStatusCode.OK, "text/html; charset=utf-8", Encoding.UTF8.GetBytes(page()), head, cancellationToken)
                    .ConfigureAwait(false);
                return;
            default:
                await SendAsync(response, HttpStatusCode.NotFound, "text/plain; charset=utf-8",
                    "not found: this listener serves / (the status page) and /metrics\n"u8.ToArray(), head, cancellationToken).ConfigureAwait(false);
                return;
        }
    }

    private static async Task SendAsync(HttpListenerResponse response, HttpStatusCode status, string contentType, byte[] body, bool head,
        CancellationToken cancellationToken)
    {
        response.StatusCode = (int)status;
        response.ContentType = contentType;
        response.ContentLength64 = body.Length;
        if (!head)
        {
            await response.OutputStream.WriteAsync(body, cancellationToken).ConfigureAwait(false);
        }
        response.Close();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        // Close once, never Stop and then Close: the managed HttpListener's second removal finds no
        // endpoint for the port and binds it anew, which fails ("Address already in use") when another
        // socket took the port in between (CI saw it). Close aborts the requests in flight, which the
        // stop cancels anyway.
        _listener.Close();
        await _accepting.ConfigureAwait(false);
        // Requests in flight end within their deadline; the semaphore is left to the GC rather than
        // disposed under one that ends later still and releases its slot.
        for (int i = 0; i < MaxConcurrentRequests; i++)
        {
            await _slots.WaitAsync(RequestTimeout).ConfigureAwait(false);
        }
    }
}
