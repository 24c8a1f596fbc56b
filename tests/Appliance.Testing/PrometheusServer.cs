using System.Globalization;
using System.Net;
using System.Text.Json;

namespace Appliance.Testing;

/// <summary>One sample of an instant query: the series' labels (with <c>__name__</c> when it has one) and its value.</summary>
public sealed record PromSample(IReadOnlyDictionary<string, string> Labels, double Value)
{
    public override string ToString() =>
        "{" + string.Join(", ", Labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}=\"{l.Value}\"")) + "} "
        + Value.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary>
/// A real Prometheus (Debian's 2.42, from tests/peers/install.sh) scraping one target every second:
/// its own temporary directory (configuration and TSDB), a free loopback port for its web listener,
/// ready when /-/ready answers. Its first sample lands about 6 s after start whatever the interval
/// (target sync is throttled: ../shared/PEERS.md §5), so callers poll (<see cref="WaitForAsync"/>).
/// Disposing kills its own process (by its id, never by name) and deletes the directory. A missing
/// binary fails the test: it is a peer, not an option.
/// </summary>
public sealed class PrometheusServer : IAsyncDisposable
{
    public const string Binary = "/usr/bin/prometheus";

    /// <summary>The job name the target is scraped under (its <c>job</c> label).</summary>
    public const string Job = "appliance";

    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private readonly PeerProcess _process;

    private PrometheusServer(PeerProcess process, string directory, int port, string target)
    {
        _process = process;
        Directory = directory;
        Port = port;
        Target = target;
    }

    /// <summary>The private directory: <see cref="ConfigPath"/> and the TSDB (data/).</summary>
    public string Directory { get; }

    public string ConfigPath => Path.Combine(Directory, "prometheus.yml");

    public int Port { get; }

    /// <summary>The scraped target as host:port: the <c>instance</c> label of its series.</summary>
    public string Target { get; }

    public Uri BaseAddress => new($"http://127.0.0.1:{Port}/");

    public string Log => _process.Output;

    /// <summary>The configuration this fixture runs: one job scraping <paramref name="target"/> every second.</summary>
    public static string Config(string target, IEnumerable<string>? ruleFiles = null)
    {
        string rules = ruleFiles is null ? "" : "rule_files:\n" + string.Concat(ruleFiles.Select(f => $"  - '{f}'\n"));
        return $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            {rules}scrape_configs:
              - job_name: {Job}
                static_configs:
                  - targets: ['{target}']

            """;
    }

    /// <summary>Starts Prometheus scraping <paramref name="target"/> (host:port, path /metrics) and waits until it is ready.</summary>
    /// <param name="ruleFiles">Rule files to load (absolute paths), evaluated every second.</param>
    public static async Task<PrometheusServer> StartAsync(string target, IEnumerable<string>? ruleFiles = null, TimeSpan? timeout = null)
    {
        if (!File.Exists(Binary))
        {
            throw new InvalidOperationException($"{Binary} is missing: run tests/peers/install.sh (Debian package prometheus)");
        }
        string dir = System.IO.Directory.CreateTempSubdirectory("prometheus").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "prometheus.yml"), Config(target, ruleFiles));
            // A free port can be taken between the probe and Prometheus's bind: then it exits at once, and we ask again.
            for (int attempt = 1; ; attempt++)
            {
                int port = Ports.FreeTcpPort();
                var process = new PeerProcess(Binary,
                [
                    $"--config.file={Path.Combine(dir, "prometheus.yml")}",
                    $"--storage.tsdb.path={Path.Combine(dir, "data")}",
                    $"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ]);
                var server = new PrometheusServer(process, dir, port, target);
                try
                {
                    await server.WaitReadyAsync(timeout ?? TimeSpan.FromSeconds(20));
                    return server;
                }
                catch (InvalidOperationException) when (attempt < 3 && process.HasExited && process.Output.Contains("address already in use", StringComparison.Ordinal))
                {
                    await process.DisposeAsync();
                }
                catch
                {
                    await process.DisposeAsync();
                    throw;
                }
            }
        }
        catch
        {
            System.IO.Directory.Delete(dir, recursive: true);
            throw;
        }
    }

    private async Task WaitReadyAsync(TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"prometheus exited ({_process.ExitCode}) before it was ready:\n{_process.Output}");
            }
            try
            {
                using HttpResponseMessage response = await s_http.GetAsync(new Uri(BaseAddress, "-/ready"));
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"prometheus not ready within {timeout.TotalSeconds} s:\n{_process.Output}");
            }
            await Task.Delay(100);
        }
    }

    /// <summary>
    /// An instant query through /api/v1/query: the vector's samples (a scalar comes back as one
    /// sample without labels). Throws with Prometheus's own error text when the query is refused.
    /// </summary>
    public async Task<IReadOnlyList<PromSample>> QueryAsync(string promql)
    {
        var uri = new Uri(BaseAddress, "api/v1/query?query=" + Uri.EscapeDataString(promql));
        using HttpResponseMessage response = await s_http.GetAsync(uri);
        string body = await response.Content.ReadAsStringAsync();
        using JsonDocument document = JsonDocument.Parse(body);
        JsonElement root = document.RootElement;
        if (root.GetProperty("status").GetString() != "success")
        {
            throw new InvalidOperationException($"query refused: {promql}\n{body}");
        }
        JsonElement data = root.GetProperty("data");
        JsonElement result = data.GetProperty("result");
        switch (data.GetProperty("resultType").GetString())
        {
            case "vector":
                return [.. result.EnumerateArray().Select(s => new PromSample(
                    s.GetProperty("metric").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal),
                    Value(s.GetProperty("value"))))];
            case "scalar":
                return [new PromSample(new Dictionary<string, string>(), Value(result))];
            default:
                throw new InvalidOperationException($"not an instant vector or scalar: {promql}\n{body}");
        }
    }

    /// <summary>Polls <paramref name="promql"/> until it returns at least one sample; throws, with the log and the targets' state, on timeout.</summary>
    public async Task<IReadOnlyList<PromSample>> WaitForAsync(string promql, TimeSpan timeout)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            IReadOnlyList<PromSample> samples = await QueryAsync(promql);
            if (samples.Count > 0)
            {
                return samples;
            }
            if (DateTime.UtcNow >= deadline)
            {
                string targets = await s_http.GetStringAsync(new Uri(BaseAddress, "api/v1/targets"));
                throw new TimeoutException($"no result for {promql} within {timeout.TotalSeconds} s\ntargets: {targets}\n{_process.Output}");
            }
            await Task.Delay(250);
        }
    }

    /// <summary>[unix time, "value"]: the value, with Prometheus's NaN and ±Inf spellings.</summary>
    private static double Value(JsonElement pair) => pair[1].GetString() switch
    {
        "+Inf" => double.PositiveInfinity,
        "-Inf" => double.NegativeInfinity,
        string text => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
        null => throw new InvalidOperationException("a sample without a value"),
    };

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // The TSDB may still be flushing a file as the process dies: one retry after a moment.
            await Task.Delay(200);
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }
}
