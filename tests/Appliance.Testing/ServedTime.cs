using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Appliance.Protocol;

namespace Appliance.Testing;

/// <summary>
/// One NTP answer read as a client reads it, against the truth: the host clock that the test's fake
/// sources are derived from. The served time's error is known to within half the exchange's round
/// trip (RFC 5905 §8), so "never a lie" is |served − truth| ≤ root delay / 2 + root dispersion
/// (+ half our round trip), or LI = 3 (RFC 5905 §7.3: the server says it is not synchronised).
/// </summary>
/// <param name="ReferenceTime">When the server's clock was last set or corrected (RFC 5905 §7.3), served time.</param>
public sealed record ServedTime(LeapIndicator Leap, byte Stratum, uint ReferenceId, double RootDelay, double RootDispersion,
    double Error, double RoundTrip, DateTime At, DateTime ReferenceTime)
{
    public bool IsSynchronised => Leap != LeapIndicator.Unsynchronised && Stratum is > 0 and < 16;

    /// <summary>What the answer claims: the served time is within this of the truth (RFC 5905 root distance).</summary>
    public double Bound => (RootDelay / 2) + RootDispersion;

    /// <summary>Unsynchronised, or the truth within the bound the answer gives.</summary>
    public bool IsHonest => !IsSynchronised || Math.Abs(Error) <= Bound + (RoundTrip / 2);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{At:HH:mm:ss.fff} LI={(int)Leap} stratum {Stratum} refid 0x{ReferenceId:X8} root delay {RootDelay * 1e3:F3} ms root dispersion {RootDispersion * 1e3:F3} ms, served − truth {Error * 1e3:F3} ms (± {RoundTrip * 1e3 / 2:F3} ms)");

    /// <summary>The least-delay of <paramref name="tries"/> exchanges from a fresh loopback socket (null: no answer).</summary>
    public static async Task<ServedTime?> QueryAsync(IPEndPoint server, int tries = 1)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(server.AddressFamily == AddressFamily.InterNetwork ? IPAddress.Loopback : IPAddress.IPv6Loopback, 0));
        return await QueryAsync(socket, server, tries);
    }

    /// <summary>The same from <paramref name="socket"/> (one made inside a network namespace, say).</summary>
    public static async Task<ServedTime?> QueryAsync(Socket socket, IPEndPoint server, int tries = 1)
    {
        ServedTime? best = null;
        var buffer = new byte[2048];
        for (int i = 0; i < tries; i++)
        {
            ulong nonce = (ulong)Random.Shared.NextInt64();
            long t1 = Now();
            await socket.SendToAsync(NtpQuery.ClientRequest(nonce), server);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            while (true)
            {
                int length;
                try
                {
                    length = (await socket.ReceiveFromAsync(buffer, SocketFlags.None, server, timeout.Token)).ReceivedBytes;
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                long t4 = Now();
                if (!NtpHeader.TryRead(buffer.AsSpan(0, length), out NtpHeader answer) || answer.Origin.Value != nonce)
                {
                    continue; // a late answer to an earlier try
                }
                long served = answer.Transmit.ToUnixNanoseconds(t1);
                var reading = new ServedTime(answer.Leap, answer.Stratum, answer.ReferenceId, answer.RootDelay.ToSeconds(), answer.RootDispersion.ToSeconds(),
                    (served - (t1 + ((t4 - t1) / 2))) / 1e9, (t4 - t1) / 1e9, DateTime.UtcNow,
                    answer.Reference.IsZero ? default : DateTime.UnixEpoch.AddTicks(answer.Reference.ToUnixNanoseconds(t1) / 100));
                best = best is null || reading.RoundTrip < best.RoundTrip ? reading : best;
                break;
            }
        }
        return best;
    }

    private static long Now() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) * 100;
}

/// <summary>
/// Queries a server several times a second for as long as it runs and keeps every answer, so a test
/// can say "at every query": no answer it got was a lie (<see cref="ServedTime.IsHonest"/>).
/// </summary>
public sealed class HonestyWatch : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Lock _lock = new();
    private readonly List<ServedTime> _answers = [];

    public HonestyWatch(Func<Task<ServedTime?>> query, TimeSpan? interval = null)
    {
        TimeSpan every = interval ?? TimeSpan.FromMilliseconds(200);
        _loop = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                if (await query() is { } answer)
                {
                    lock (_lock)
                    {
                        _answers.Add(answer);
                    }
                }
                try
                {
                    await Task.Delay(every, _stop.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        });
    }

    public static HonestyWatch Of(IPEndPoint server) => new(() => ServedTime.QueryAsync(server));

    public IReadOnlyList<ServedTime> Answers
    {
        get
        {
            lock (_lock)
            {
                return [.. _answers];
            }
        }
    }

    /// <summary>Every answer so far that claimed more than it knew.</summary>
    public IReadOnlyList<ServedTime> Lies => [.. Answers.Where(a => !a.IsHonest)];

    /// <summary>Stops querying; returns every answer.</summary>
    public async Task<IReadOnlyList<ServedTime>> StopAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        return Answers;
    }

    /// <summary>The lies among <paramref name="answers"/>, one a line (at most ten), for an assertion's message.</summary>
    public static string Describe(IReadOnlyList<ServedTime> answers)
    {
        ServedTime[] lies = [.. answers.Where(a => !a.IsHonest)];
        return $"{lies.Length} of {answers.Count} answers were lies:\n" + string.Join("\n", lies.Take(10));
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
