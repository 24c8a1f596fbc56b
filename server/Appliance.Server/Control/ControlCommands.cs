using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Appliance.Server.Configuration;

namespace Appliance.Server.Control;

/// <summary>
/// The CLI verbs that talk to a running appliance over its control socket (chronyc's verbs:
/// docs/migrating-from-chrony.md has the table). Each prints a table, or with <c>--json</c> the
/// report's JSON (docs/control.md: the schema).
/// </summary>
public static class ControlCommands
{
    /// <summary>Exit code: the daemon answered that the verb failed (an invalid file on reload, a refused rotation, a refused permission).</summary>
    public const int ExitFailed = 1;

    /// <summary>Exit code: no daemon could be reached.</summary>
    public const int ExitUnavailable = 3;

    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(40);

    public static IEnumerable<Command> Build()
    {
        yield return Verb("status", "Show the clock: stratum, reference, offset, frequency, root delay and dispersion, leap, uptime (chronyc tracking).",
            ControlJson.Default.StatusReport, ControlText.Status);
        yield return Verb("sources", "Show every source: kind, state, reach, poll, offset, delay, jitter, selection (chronyc sources -v, sourcestats).",
            ControlJson.Default.SourcesReport, ControlText.Sources);
        var limit = new Option<int>("--limit", "-n")
        {
            Description = $"How many clients to list, busiest first (1 to {ControlVerbs.MaxClientLimit})",
            DefaultValueFactory = _ => ControlVerbs.DefaultClientLimit,
        };
        yield return Verb("clients", "Show the busiest clients: requests, rate limited, KoD sent, NTS, last seen (chronyc clients).",
            ControlJson.Default.ClientsReport, ControlText.Clients, limit);
        yield return Verb("serverstats", "Show the server's counters: received, answered, dropped by reason, rate limited, KoD, NTS-KE (chronyc serverstats).",
            ControlJson.Default.ServerStatsReport, ControlText.ServerStats);
        yield return Verb("keys", "Show the NTS key ring (ids, ages, which key seals, next rotation) and the Roughtime public key to publish; never private key bytes.",
            ControlJson.Default.KeysReport, ControlText.Keys);
        yield return Verb("reload", "Re-read the configuration file and apply what can change live; print what needs a restart, or every error (then nothing changes).",
            ControlJson.Default.ActionReport, ControlText.Action);
        yield return Verb("rotate-keys", "Turn the NTS key ring now: a fresh key seals new cookies, the old ones still open theirs.",
            ControlJson.Default.ActionReport, ControlText.Action);
    }

    private static Command Verb<T>(string name, string description, JsonTypeInfo<T> info, Func<T, string> human, Option<int>? limit = null)
    {
        var json = new Option<bool>("--json") { Description = "Print the report as JSON (schema: docs/control.md)" };
        var socket = new Option<string?>("--socket", "-s")
        {
            Description = $"The control socket (default: control.socket of --config, else {ControlConfig.AutoPath()})",
        };
        var config = new Option<FileInfo?>("--config", "-c") { Description = "Take the control socket from this configuration file" };
        var command = new Command(name, description) { json, socket, config };
        if (limit is not null)
        {
            command.Options.Add(limit);
        }
        command.SetAction((parse, token) => RunAsync(name, parse.GetValue(json), parse.GetValue(socket), parse.GetValue(config),
            limit is null ? null : parse.GetValue(limit), info, human, parse.InvocationConfiguration.Output, parse.InvocationConfiguration.Error, token));
        return command;
    }

    private static async Task<int> RunAsync<T>(string verb, bool json, string? socket, FileInfo? config, int? limit, JsonTypeInfo<T> info,
        Func<T, string> human, TextWriter output, TextWriter error, CancellationToken token)
    {
        bool configFailed = false;
        string? path = socket ?? SocketOf(config, error, out configFailed);
        if (path is null)
        {
            if (!configFailed)
            {
                await error.WriteLineAsync($"appliance {verb}: the configuration turns the control socket off (control.socket: off); turn it on, restart, and try again");
            }
            return ExitUnavailable;
        }
        ControlAnswer answer;
        try
        {
            answer = await ControlClient.RequestAsync(path, new ControlRequest(verb, limit), s_timeout, token);
        }
        catch (ControlUnavailableException e)
        {
            await error.WriteLineAsync($"appliance {verb}: {e.Message}");
            return ExitUnavailable;
        }
        if (answer.Error is { } refused)
        {
            if (json)
            {
                await output.WriteLineAsync(answer.Data);
            }
            await error.WriteLineAsync($"appliance {verb}: {refused}");
            return ExitFailed;
        }
        if (json)
        {
            await output.WriteLineAsync(answer.Data);
        }
        else
        {
            T report = JsonSerializer.Deserialize(answer.Data, info)!;
            await (answer.Ok ? output : error).WriteAsync(human(report));
        }
        return answer.Ok ? 0 : ExitFailed;
    }

    /// <summary>The socket the configuration names (or auto's place when there is none); null when off or the file is bad.</summary>
    private static string? SocketOf(FileInfo? config, TextWriter error, out bool failed)
    {
        failed = false;
        if (config is null)
        {
            return ControlConfig.AutoPath();
        }
        ConfigResult result = ConfigLoader.BindFile(config.FullName);
        if (!result.IsValid)
        {
            failed = true;
            error.WriteLine($"{config.Name}: invalid (check it with `appliance validate {config.FullName}`); give the socket with --socket PATH instead");
            return null;
        }
        return result.Config!.Control.Socket;
    }
}
