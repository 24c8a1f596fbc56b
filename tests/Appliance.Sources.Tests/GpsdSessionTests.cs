using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Appliance.Protocol.Client;
using Appliance.Sources;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace Appliance.Sources.Tests;

/// <summary>Alone: the test counts the bytes the whole process allocates.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public static class AllocationCounting
{
    public const string Name = "allocation counting";
}

/// <summary>The gpsd driver against a scripted "gpsd" on loopback TCP: what a hostile or broken peer can cost.</summary>
[Collection(AllocationCounting.Name)]
public class GpsdSessionTests(ITestOutputHelper output)
{
    private const long Second = 1_000_000_000;

    private static string Pps(long at) =>
        $"{{\"class\":\"PPS\",\"device\":\"/dev/ttyS0\",\"real_sec\":{at / Second},\"real_nsec\":0,\"clock_sec\":{at / Second},\"clock_nsec\":1500,\"precision\":-20}}\n";

    private const string Fix = "{\"class\":\"TPV\",\"device\":\"/dev/ttyS0\",\"mode\":3,\"ept\":0.005}\n";

    [Fact]
    public async Task APeerThatNeverEndsItsLine_CostsOneBuffer_IsOneBadLine_AndTheSessionGoesOn()
    {
        const int junkBytes = 32 << 20;
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        int accepted = 0;
        long now = 1_795_435_200 * Second;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        async Task ServeAsync(TcpClient client, int connection)
        {
            using (client)
            {
                NetworkStream stream = client.GetStream();
                int watch = await stream.ReadAsync(new byte[256], stop.Token); // the ?WATCH (one segment on loopback)
                Assert.True(watch > 0);
                await stream.WriteAsync(Encoding.ASCII.GetBytes(Fix), stop.Token);
                if (connection == 1)
                {
                    byte[] junk = new byte[64 << 10];
                    Array.Fill(junk, (byte)'x');
                    for (int sent = 0; sent < junkBytes; sent += junk.Length)
                    {
                        await stream.WriteAsync(junk, stop.Token);
                    }
                    await stream.WriteAsync("\n"u8.ToArray(), stop.Token);
                }
                await stream.WriteAsync(Encoding.ASCII.GetBytes(Pps(now)), stop.Token);
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
        }

        // The peer: a fix, then 32 MiB with no newline, then a newline and a PPS edge; a second
        // connection (a driver that gave up on the first) gets the fix and the edge at once.
        var served = new ConcurrentBag<Task>();
        Task peer = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                TcpClient client = await listener.AcceptTcpClientAsync(stop.Token);
                served.Add(ServeAsync(client, Interlocked.Increment(ref accepted)));
            }
        });

        var gpsd = new GpsdSource(new GpsdOptions { Host = "127.0.0.1", Port = port }, NullLogger.Instance);
        var measurements = new ConcurrentQueue<Measurement>();
        using var run = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
        long before = GC.GetTotalAllocatedBytes(precise: true);
        Task session = gpsd.RunAsync((_, m) =>
        {
            measurements.Enqueue(m);
            return true;
        }, run.Token);
        while (measurements.IsEmpty && !stop.IsCancellationRequested)
        {
            await Task.Delay(20);
        }
        long allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        await run.CancelAsync();
        try
        {
            await session;
        }
        catch (OperationCanceledException)
        {
        }
        await stop.CancelAsync();
        listener.Stop();
        await Task.WhenAny(Task.WhenAll([peer, .. served]), Task.Delay(2000));

        output.WriteLine($"{allocated} bytes allocated while {junkBytes} bytes of one line arrived");
        Assert.Single(measurements);
        Assert.Equal(1, accepted); // the session went on after the bad line
        Assert.Equal(1, gpsd.Counters.Invalid);
        // 32 MiB arrived; what the driver allocated meanwhile is a small fraction of it (a line
        // buffer, the two good lines' JSON documents, the socket's operations).
        Assert.True(allocated < 4 << 20, $"{allocated / 1024} KiB allocated while {junkBytes >> 20} MiB of one line arrived");
    }
}

/// <summary>The bounded line reader under gpsd's session, on streams that hand out bytes as a socket may.</summary>
public class LineReaderTests
{
    /// <summary>Hands out its bytes at most <c>chunk</c> at a time.</summary>
    private sealed class Trickle(byte[] bytes, int chunk) : Stream
    {
        private int _position;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => bytes.Length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, chunk), bytes.Length - _position);
            bytes.AsSpan(_position, n).CopyTo(buffer.AsSpan(offset));
            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(4096)]
    public async Task Lines_InAnySplit_WithCrLf_AndAnOverlongOneSkippedToItsNewline(int chunk)
    {
        string text = "{\"a\":1}\r\n" + new string('x', 100) + "\n{\"b\":2}\n" + new string('y', 64) + "\n\ntail";
        var reader = new LineReader(new Trickle(Encoding.ASCII.GetBytes(text), chunk), maxLineBytes: 64);
        var seen = new List<string>();
        while (true)
        {
            (LineStatus status, ReadOnlyMemory<byte> line) = await reader.ReadLineAsync(CancellationToken.None);
            if (status == LineStatus.End)
            {
                break;
            }
            seen.Add(status == LineStatus.Overlong ? "<overlong>" : Encoding.ASCII.GetString(line.Span));
        }
        // A line of exactly the buffer's size has no room for its newline: too long as well.
        Assert.Equal(["{\"a\":1}", "<overlong>", "{\"b\":2}", "<overlong>", ""], seen);
    }
}
