using System.Buffers.Binary;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Appliance.Protocol.Roughtime;
using Appliance.Timestamping;

namespace Appliance.LoadTest;

/// <summary>
/// `appliance-loadtest roughtime`: Roughtime requests per second over UDP, closed loop: each client
/// socket keeps a window of requests in flight and sends the next when an answer comes back. Every
/// answer is matched to its request by nonce and checked for size; one in <c>--verify-every</c> is
/// verified in full by the client written from RFC 10049 §5.4 (both signatures, the Merkle path, the
/// delegation), which costs this side two Ed25519 verifications.
/// </summary>
internal static class RoughtimeCommand
{
    public static Command Build()
    {
        var target = new Argument<string>("TARGET") { Description = "Roughtime address:port (UDP)" };
        var key = new Option<string>("--public-key") { Required = true, Description = "the server's long-term public key, base64 (appliance keys)" };
        var duration = new Option<string>("--duration") { DefaultValueFactory = _ => "5s" };
        var clients = new Option<int>("--clients") { DefaultValueFactory = _ => 2, Description = "sockets, each on its own thread" };
        var window = new Option<int>("--window") { DefaultValueFactory = _ => 64, Description = "requests in flight per socket" };
        var verifyEvery = new Option<int>("--verify-every") { DefaultValueFactory = _ => 100, Description = "verify one answer in N in full" };
        var cpu = new Option<int?>("--cpu") { Description = "pin the generator's threads to this CPU" };
        var allowRemote = new Option<bool>("--allow-remote");
        var command = new Command("roughtime", "Measure Roughtime requests per second (UDP).") { target, key, duration, clients, window, verifyEvery, cpu, allowRemote };
        command.SetAction(p =>
        {
            IPEndPoint server = Program.ParseEndPoint(p.GetValue(target)!);
            if (!p.GetValue(allowRemote) && !TargetGuard.IsSafe(server.Address))
            {
                Console.Error.WriteLine($"appliance-loadtest: refusing {server}: only {TargetGuard.SafeRanges} without --allow-remote");
                return 2;
            }
            byte[] publicKey = Convert.FromBase64String(p.GetValue(key)!);
            Result r = Measure(server, publicKey, p.GetValue(clients), p.GetValue(window), Math.Max(1, p.GetValue(verifyEvery)),
                Program.ParseDuration(p.GetValue(duration)!), p.GetValue(cpu));
            Console.WriteLine("| server | answers/s | answered | verified in full | rejected | lost (re-sent) |");
            Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {server} | {r.Answered / r.Seconds:0} | {r.Answered} | {r.Verified} | {r.Rejected} | {r.Lost} |"));
            return r.Rejected == 0 && r.Verified > 0 ? 0 : 1;
        });
        return command;
    }

    private sealed record Result(double Seconds, long Answered, long Verified, long Rejected, long Lost);

    private static Result Measure(IPEndPoint server, byte[] publicKey, int clients, int window, int verifyEvery, TimeSpan duration, int? cpu)
    {
        long answered = 0, verified = 0, rejected = 0, lost = 0;
        var watch = Stopwatch.StartNew();
        void Client()
        {
            if (cpu is int c)
            {
                ThreadAffinity.PinCurrentThread(c, out _);
            }
            using var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            socket.Connect(server);
            socket.ReceiveTimeout = 200;
            // One request per slot of the window; its slot number in the nonce's first bytes finds it again.
            byte[][] requests = new byte[window][];
            byte[][] nonces = new byte[window][];
            for (int i = 0; i < window; i++)
            {
                nonces[i] = RandomNumberGenerator.GetBytes(32);
                BinaryPrimitives.WriteInt32LittleEndian(nonces[i], i);
                requests[i] = new byte[RoughtimeClient.RequestPacketLength];
                RoughtimeClient.WriteRequest(requests[i], nonces[i], publicKey, [RoughtimeVersion.Rfc]);
            }
            foreach (byte[] request in requests)
            {
                socket.Send(request);
            }
            var buffer = new byte[2048];
            long mine = 0, myVerified = 0, myRejected = 0, myLost = 0;
            while (watch.Elapsed < duration)
            {
                int n;
                try
                {
                    n = socket.Receive(buffer);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.ConnectionRefused)
                {
                    // Answers lost (a full receive queue on either side): the whole window goes again.
                    myLost += window;
                    foreach (byte[] request in requests)
                    {
                        socket.Send(request);
                    }
                    continue;
                }
                if (!RoughtimeMessage.TryParse(buffer.AsSpan(RoughtimePacket.HeaderLength, Math.Max(0, n - RoughtimePacket.HeaderLength)), out RoughtimeMessage message)
                    || !message.TryGet(RoughtimeTag.Nonc, out ReadOnlySpan<byte> nonce) || nonce.Length != 32
                    || BinaryPrimitives.ReadInt32LittleEndian(nonce) is not (>= 0 and var slot) || slot >= window)
                {
                    myRejected++;
                    continue;
                }
                byte[] sent = requests[slot];
                if (n > sent.Length || !nonce.SequenceEqual(nonces[slot]))
                {
                    myRejected++;
                }
                else if (++mine % verifyEvery == 0)
                {
                    if (RoughtimeClient.Verify(sent, buffer.AsSpan(0, n), publicKey, out _) == RoughtimeRejection.None)
                    {
                        myVerified++;
                    }
                    else
                    {
                        myRejected++;
                    }
                }
                socket.Send(sent);
            }
            Interlocked.Add(ref answered, mine);
            Interlocked.Add(ref verified, myVerified);
            Interlocked.Add(ref rejected, myRejected);
            Interlocked.Add(ref lost, myLost);
        }
        Thread[] threads = [.. Enumerable.Range(0, clients).Select(_ => new Thread(Client) { IsBackground = true })];
        Array.ForEach(threads, t => t.Start());
        Array.ForEach(threads, t => t.Join());
        return new Result(watch.Elapsed.TotalSeconds, answered, verified, rejected, lost);
    }
}
