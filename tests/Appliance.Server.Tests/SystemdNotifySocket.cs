using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Appliance.Server.Hosting;

namespace Appliance.Server.Tests;

/// <summary>One datagram the service sent, and when it arrived (monotonic).</summary>
internal sealed record Notification(string Text, TimeSpan At)
{
    public bool Has(string assignment) => Text.Split('\n').Contains(assignment);

    public string? Status => Text.Split('\n').FirstOrDefault(l => l.StartsWith("STATUS=", StringComparison.Ordinal))?["STATUS=".Length..];
}

/// <summary>
/// A real NOTIFY_SOCKET, as systemd listens on one: a Unix datagram socket in a temporary directory
/// (or in the abstract namespace) that keeps every datagram with its arrival time. On each arrival
/// <see cref="OnMessage"/> runs on the receive loop first, so a test can look at the world at the
/// moment READY=1 came.
/// </summary>
internal sealed class SystemdNotifySocket : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    private readonly List<Notification> _messages = [];
    private readonly string? _directory;
    private readonly Thread _thread;
    private volatile bool _closed;

    public SystemdNotifySocket(bool @abstract = false, Action<Notification>? onMessage = null)
    {
        OnMessage = onMessage;
        if (@abstract)
        {
            string name = $"appliance-test-{Guid.NewGuid():N}";
            _socket.Bind(new UnixDomainSocketEndPoint("\0" + name));
            Address = "@" + name;
        }
        else
        {
            _directory = Directory.CreateTempSubdirectory("appliance-notify").FullName;
            Address = Path.Combine(_directory, "notify.sock");
            _socket.Bind(new UnixDomainSocketEndPoint(Address));
        }
        _socket.ReceiveTimeout = 200; // the loop looks at _closed between waits
        _thread = new Thread(Receive) { IsBackground = true, Name = "notify socket" };
        _thread.Start();
    }

    /// <summary>What NOTIFY_SOCKET says: the path, or '@' and the abstract name.</summary>
    public string Address { get; }

    public Action<Notification>? OnMessage { get; }

    public SystemdEnvironment Environment(long? watchdogUsec = null, int? watchdogPid = null) =>
        new(Address, watchdogUsec?.ToString(System.Globalization.CultureInfo.InvariantCulture),
            watchdogPid?.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public IReadOnlyList<Notification> Messages
    {
        get
        {
            lock (_messages)
            {
                return [.. _messages];
            }
        }
    }

    public static TimeSpan Now => Stopwatch.GetElapsedTime(0);

    /// <summary>The first message (from <paramref name="from"/> on) that <paramref name="match"/> accepts; throws with every message on timeout.</summary>
    public async Task<Notification> WaitForAsync(Func<Notification, bool> match, TimeSpan timeout, TimeSpan? from = null)
    {
        TimeSpan deadline = Now + timeout;
        while (true)
        {
            Notification? found = Messages.FirstOrDefault(m => m.At >= (from ?? TimeSpan.Zero) && match(m));
            if (found is not null)
            {
                return found;
            }
            if (Now > deadline)
            {
                throw new TimeoutException($"no matching notification within {timeout.TotalSeconds} s; got:\n{Describe()}");
            }
            await Task.Delay(20);
        }
    }

    public string Describe() => string.Join("\n", Messages.Select(m => $"{m.At.TotalSeconds:F3} {m.Text.Replace("\n", " | ", StringComparison.Ordinal)}"));

    private void Receive()
    {
        var buffer = new byte[8192];
        while (!_closed)
        {
            int n;
            try
            {
                n = _socket.Receive(buffer);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut)
            {
                continue;
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            var message = new Notification(Encoding.UTF8.GetString(buffer, 0, n), Now);
            OnMessage?.Invoke(message);
            lock (_messages)
            {
                _messages.Add(message);
            }
        }
    }

    public void Dispose()
    {
        _closed = true;
        _thread.Join(TimeSpan.FromSeconds(2));
        _socket.Dispose();
        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }
}
