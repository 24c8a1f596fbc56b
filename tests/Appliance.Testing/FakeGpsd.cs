using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Appliance.Testing;

/// <summary>What a <see cref="FakeGpsd"/> sends on its connections.</summary>
public enum FakeGpsdBehaviour
{
    /// <summary>A TPV (3D fix) and a TOFF per report, the TOFF pairing the host clock (plus the shift) with the host clock: the truth.</summary>
    Reports,

    /// <summary>Connected, and nothing at all.</summary>
    Stall,

    /// <summary>Only what gpsd never sends: binary junk, a line over 16 KiB, JSON of the wrong shape, a TPV with an absurd time.</summary>
    Garbage,

    /// <summary>The garbage between good reports.</summary>
    GarbageAmongReports,
}

/// <summary>
/// A scriptable gpsd on an ephemeral loopback TCP port, speaking its JSON protocol (VERSION, then
/// TPV and TOFF several times a second after the client's ?WATCH), for faults a real gpsd cannot be
/// made to show: a stall, garbage, a reset, a listener that goes away and comes back on the same
/// port. Its TOFF says the receiver's time is the host clock plus <see cref="ShiftSeconds"/> at the
/// very moment it names as the arrival, so a client that follows it serves that exactly.
/// </summary>
public sealed class FakeGpsd : IAsyncDisposable
{
    /// <summary>Lines no gpsd sends for a working receiver: none of them may give a client time.</summary>
    public static IReadOnlyList<string> GarbageLines { get; } =
    [
        "\u0001\u00ff\u0000\u0017binary\u0080\u00fe junk",
        new string('{', 20 * 1024),                                          // over the 16 KiB line limit
        "[1,2,3]",
        "{\"class\":5}",
        "{\"class\":\"TOFF\",\"real_sec\":\"soon\",\"real_nsec\":0,\"clock_sec\":1,\"clock_nsec\":0}",
        "{\"class\":\"TOFF\",\"real_sec\":-5,\"real_nsec\":0,\"clock_sec\":1,\"clock_nsec\":0}",
        "{\"class\":\"TOFF\",\"real_sec\":1795435200,\"real_nsec\":2000000000,\"clock_sec\":1795435200,\"clock_nsec\":0}",
        "{\"class\":\"TPV\",\"mode\":\"3D\"}",
        "{\"class\":\"TPV\",\"mode\":3,\"ept\":-1}",
        "{\"class\":\"TPV\",\"mode\":3,\"time\":\"1900-01-01T00:00:00.000Z\",\"ept\":0.005}", // a fix with an absurd time: time comes from TOFF only
        "{\"class\":\"SKY\",\"satellites\":7}",
        "{\"class\":\"TOFF\"",
    ];

    private readonly IPAddress _address = IPAddress.Loopback;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private readonly List<TcpClient> _clients = [];
    private readonly List<Task> _tasks = [];
    private TcpListener? _listener;
    private volatile FakeGpsdBehaviour _behaviour = FakeGpsdBehaviour.Reports;
    private long _shiftNanoseconds;
    private int _connections;

    public FakeGpsd(int reportsPerSecond = 5)
    {
        ReportInterval = TimeSpan.FromSeconds(1.0 / reportsPerSecond);
        Listen(0);
    }

    public int Port { get; private set; }

    public TimeSpan ReportInterval { get; }

    public FakeGpsdBehaviour Behaviour
    {
        get => _behaviour;
        set => _behaviour = value;
    }

    /// <summary>The receiver's time minus the host clock's, seconds.</summary>
    public double ShiftSeconds
    {
        get => Interlocked.Read(ref _shiftNanoseconds) / 1e9;
        set => Interlocked.Exchange(ref _shiftNanoseconds, (long)Math.Round(value * 1e9));
    }

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Reports (TOFFs) sent so far.</summary>
    public long Reports => Interlocked.Read(ref _reports);

    private long _reports;

    private void Listen(int port)
    {
        var listener = new TcpListener(_address, port);
        listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        lock (_lock)
        {
            _listener = listener;
            _tasks.Add(Task.Run(() => AcceptAsync(listener)));
        }
    }

    /// <summary>gpsd goes away: the listener closes and so does every connection, in order (FIN) or reset (RST, as a crash or a middlebox does).</summary>
    public void Disappear(bool reset = false) => Drop(reset, closeListener: true);

    /// <summary>Every connection is reset (RST, as a crashed peer or a middlebox does); the listener stays.</summary>
    public void ResetConnections() => Drop(reset: true, closeListener: false);

    /// <summary>gpsd comes back on the same port.</summary>
    public void Reappear() => Listen(Port);

    private void Drop(bool reset, bool closeListener)
    {
        lock (_lock)
        {
            if (closeListener)
            {
                _listener?.Stop();
                _listener = null;
            }
            foreach (TcpClient client in _clients)
            {
                if (reset)
                {
                    client.Client.LingerState = new LingerOption(true, 0); // close(2) with SO_LINGER 0 sends RST
                }
                client.Close();
            }
            _clients.Clear();
        }
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException or InvalidOperationException)
            {
                return;
            }
            Interlocked.Increment(ref _connections);
            lock (_lock)
            {
                _clients.Add(client);
                _tasks.Add(Task.Run(() => ServeAsync(client)));
            }
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        try
        {
            NetworkStream stream = client.GetStream();
            await WriteAsync(stream, "{\"class\":\"VERSION\",\"release\":\"3.22\",\"rev\":\"3.22\",\"proto_major\":3,\"proto_minor\":14}\n");
            _ = await stream.ReadAsync(new byte[512], _stop.Token); // the ?WATCH
            int garbage = 0;
            using var timer = new PeriodicTimer(ReportInterval);
            while (await timer.WaitForNextTickAsync(_stop.Token))
            {
                FakeGpsdBehaviour behaviour = _behaviour;
                if (behaviour is FakeGpsdBehaviour.Garbage or FakeGpsdBehaviour.GarbageAmongReports)
                {
                    await WriteAsync(stream, GarbageLines[garbage++ % GarbageLines.Count] + "\n");
                }
                if (behaviour is FakeGpsdBehaviour.Reports or FakeGpsdBehaviour.GarbageAmongReports)
                {
                    await WriteAsync(stream, Report());
                    Interlocked.Increment(ref _reports);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            client.Dispose();
        }
    }

    private string Report()
    {
        long clock = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
        long real = clock + Interlocked.Read(ref _shiftNanoseconds);
        string time = DateTime.UnixEpoch.AddTicks(real / 100).ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);
        return string.Create(CultureInfo.InvariantCulture,
            $"{{\"class\":\"TPV\",\"device\":\"/dev/ttyS0\",\"mode\":3,\"time\":\"{time}\",\"ept\":0.005}}\n"
            + $"{{\"class\":\"TOFF\",\"device\":\"/dev/ttyS0\",\"real_sec\":{real / 1_000_000_000},\"real_nsec\":{real % 1_000_000_000},"
            + $"\"clock_sec\":{clock / 1_000_000_000},\"clock_nsec\":{clock % 1_000_000_000},\"precision\":-20}}\n");
    }

    private Task WriteAsync(NetworkStream stream, string text) => stream.WriteAsync(Encoding.Latin1.GetBytes(text), _stop.Token).AsTask();

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Drop(reset: false, closeListener: true);
        Task[] tasks;
        lock (_lock)
        {
            tasks = [.. _tasks];
        }
        await Task.WhenAll(tasks);
        _stop.Dispose();
    }
}
