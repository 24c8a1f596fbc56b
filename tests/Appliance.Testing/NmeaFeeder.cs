using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Appliance.Testing;

/// <summary>
/// A fake GPS receiver on an ephemeral loopback TCP port, for gpsd's <c>tcp://</c> source: at every
/// second boundary of the host clock it sends RMC and GGA sentences (valid XOR checksums, a 3D fix
/// with eight satellites) naming that second plus <see cref="ShiftSeconds"/>, as a receiver whose
/// time differs from the host's would.
/// </summary>
public sealed class NmeaFeeder : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public NmeaFeeder(double shiftSeconds)
    {
        ShiftSeconds = shiftSeconds;
        _listener.Start();
        _loop = Task.Run(AcceptAsync);
    }

    public double ShiftSeconds { get; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>One sentence with its checksum: $BODY*CS (NMEA 0183).</summary>
    public static string Sentence(string body)
    {
        byte sum = 0;
        foreach (char c in body)
        {
            sum ^= (byte)c;
        }
        return string.Create(CultureInfo.InvariantCulture, $"${body}*{sum:X2}\r\n");
    }

    public static string Fix(DateTime utc)
    {
        string time = utc.ToString("HHmmss.ff", CultureInfo.InvariantCulture);
        string date = utc.ToString("ddMMyy", CultureInfo.InvariantCulture);
        return Sentence($"GPRMC,{time},A,4807.038,N,01131.000,E,000.0,000.0,{date},003.1,W")
            + Sentence($"GPGGA,{time},4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,");
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = Task.Run(() => FeedAsync(client));
        }
    }

    private async Task FeedAsync(TcpClient client)
    {
        using (client)
        {
            NetworkStream stream = client.GetStream();
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    DateTime now = DateTime.UtcNow;
                    DateTime next = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerSecond), DateTimeKind.Utc).AddSeconds(1);
                    await Task.Delay(next - now, _stop.Token);
                    byte[] bytes = Encoding.ASCII.GetBytes(Fix(next.AddSeconds(ShiftSeconds)));
                    await stream.WriteAsync(bytes, _stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or SocketException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}
