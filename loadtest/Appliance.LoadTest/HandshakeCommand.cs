using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using Appliance.Protocol.Crypto;
using Appliance.Sources;

namespace Appliance.LoadTest;

/// <summary>
/// `appliance-loadtest ntske`: NTS-KE handshakes per second, closed loop with C concurrent clients,
/// each a full TLS 1.3 handshake, request, eight cookies and keys exported; optionally against a
/// second server in the same run.
/// </summary>
internal static class HandshakeCommand
{
    public static Command Build()
    {
        var target = new Argument<string>("TARGET") { Description = "NTS-KE address:port" };
        var name = new Option<string>("--name") { DefaultValueFactory = _ => "localhost", Description = "name the certificate must carry" };
        var ca = new Option<string?>("--ca") { Description = "PEM certificates to trust" };
        var versus = new Option<string?>("--vs") { Description = "a second NTS-KE server, measured right after" };
        var vsName = new Option<string>("--vs-name") { DefaultValueFactory = _ => "localhost" };
        var vsCa = new Option<string?>("--vs-ca");
        var duration = new Option<string>("--duration") { DefaultValueFactory = _ => "5s" };
        var concurrency = new Option<int>("--concurrency") { DefaultValueFactory = _ => 8, Description = "handshakes in flight" };
        var allowRemote = new Option<bool>("--allow-remote");
        var command = new Command("ntske", "Measure NTS-KE handshakes per second.") { target, name, ca, versus, vsName, vsCa, duration, concurrency, allowRemote };
        command.SetAction(async (p, token) =>
        {
            TimeSpan length = Program.ParseDuration(p.GetValue(duration)!);
            var runs = new List<(IPEndPoint, string, string?)> { (Program.ParseEndPoint(p.GetValue(target)!), p.GetValue(name)!, p.GetValue(ca)) };
            if (p.GetValue(versus) is { } v)
            {
                runs.Add((Program.ParseEndPoint(v), p.GetValue(vsName)!, p.GetValue(vsCa)));
            }
            var results = new List<(IPEndPoint Server, double Rate, long Ok, long Failed, double P50, double P99)>();
            foreach ((IPEndPoint server, string host, string? caFile) in runs)
            {
                if (!p.GetValue(allowRemote) && !TargetGuard.IsSafe(server.Address))
                {
                    Console.Error.WriteLine($"appliance-loadtest: refusing {server}: only {TargetGuard.SafeRanges} without --allow-remote");
                    return 2;
                }
                X509Certificate2Collection? trust = null;
                if (caFile is not null)
                {
                    trust = [];
                    trust.ImportFromPemFile(caFile);
                }
                results.Add(await Measure(server, host, trust, p.GetValue(concurrency), length, token));
            }
            Console.WriteLine("| server | handshakes/s | ok | failed | latency p50 ms | p99 ms |");
            Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
            foreach (var r in results)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {r.Server} | {r.Rate:0} | {r.Ok} | {r.Failed} | {r.P50:0.00} | {r.P99:0.00} |"));
            }
            if (results.Count == 2 && results[1].Rate > 0)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"\nratio {results[0].Server} / {results[1].Server}: {results[0].Rate / results[1].Rate:0.00}×"));
            }
            return results.All(r => r.Failed == 0) ? 0 : 1;
        });
        return command;
    }

    private static async Task<(IPEndPoint, double, long, long, double, double)> Measure(IPEndPoint server, string host, X509Certificate2Collection? trust,
        int concurrency, TimeSpan duration, CancellationToken token)
    {
        long ok = 0, failed = 0;
        var latencies = new Reservoir(100_000);
        var gate = new object();
        var watch = Stopwatch.StartNew();
        async Task Worker()
        {
            while (watch.Elapsed < duration && !token.IsCancellationRequested)
            {
                long start = Stopwatch.GetTimestamp();
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
                    timeout.CancelAfter(TimeSpan.FromSeconds(10));
                    NtsKeResult result = await NtsKeClient.ExchangeAsync(server, host, trust, [AeadAlgorithm.AesSivCmac256], timeout.Token);
                    if (result.Succeeded)
                    {
                        Interlocked.Increment(ref ok);
                    }
                    else
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException || !token.IsCancellationRequested)
                {
                    Interlocked.Increment(ref failed);
                }
                lock (gate)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(Worker, token)));
        double seconds = watch.Elapsed.TotalSeconds;
        double[] q = latencies.Quantiles([0.5, 0.99]);
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{server}: {ok / seconds:0} handshakes/s ({ok} ok, {failed} failed in {seconds:0.0} s)"));
        return (server, ok / seconds, ok, failed, q[0], q[1]);
    }
}
