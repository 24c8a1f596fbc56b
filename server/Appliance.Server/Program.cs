using System.CommandLine;
using Appliance.Server.Configuration;
using Appliance.Server.Control;
using Appliance.Server.Hosting;
using Appliance.Server.Ntp;
using Microsoft.Extensions.Logging;

namespace Appliance.Server;

/// <summary>The <c>appliance</c> command line: serve, validate, the control verbs (status, sources, …), version.</summary>
public static class Program
{
    /// <summary>Exit code for a configuration or start-up error the operator can fix.</summary>
    public const int ExitConfigError = 2;

    public static int Main(string[] args)
    {
        NativeLibraries.Register();
        return BuildCommand().Parse(args).Invoke();
    }

    public static RootCommand BuildCommand()
    {
        var root = new RootCommand("appliance: an NTP/NTS server. Run 'appliance serve' to serve the embedded default configuration.");

        var configOption = new Option<FileInfo?>("--config", "-c")
        {
            Description = "YAML configuration file (default: the embedded default: NTP on 127.0.0.1:11123 and [::1]:11123, metrics on 127.0.0.1:9975, local stratum 10)",
        };
        var serve = new Command("serve", "Serve time until SIGTERM or SIGINT.") { configOption };
        serve.SetAction((parse, token) => ServeAsync(parse.GetValue(configOption), token));
        root.Subcommands.Add(serve);

        var fileArgument = new Argument<FileInfo>("FILE") { Description = "the YAML configuration to check" };
        var noFilesOption = new Option<bool>("--no-files")
        {
            Description = "check the text alone, not that the files and devices it names exist (for a configuration meant for another machine)",
        };
        var validate = new Command("validate", "Check a configuration file; print every error with its line, column and fix.") { fileArgument, noFilesOption };
        validate.SetAction(parse => Validate(parse.GetValue(fileArgument)!, parse.GetValue(noFilesOption)));
        root.Subcommands.Add(validate);
        root.Subcommands.Add(Migration.MigrateCommand.Build());

        foreach (Command verb in ControlCommands.Build())
        {
            root.Subcommands.Add(verb);
        }

        var version = new Command("version", "Print the version.");
        version.SetAction(_ =>
        {
            Console.WriteLine($"appliance {Version}");
            return 0;
        });
        root.Subcommands.Add(version);
        return root;
    }

    public static string Version => BuildInfo.Version;

    private static int Validate(FileInfo file, bool noFiles)
    {
        ConfigResult result = noFiles ? ConfigLoader.BindFile(file.FullName) : ConfigLoader.LoadFile(file.FullName);
        if (result.IsValid)
        {
            Console.WriteLine($"{file.Name}: valid");
            return 0;
        }
        foreach (ConfigError error in result.Errors)
        {
            Console.Error.WriteLine(error.Format(file.FullName));
        }
        Console.Error.WriteLine($"{file.Name}: {result.Errors.Count} error(s)");
        return ExitConfigError;
    }

    /// <summary>Under systemd, a start-up failure is filed at error priority (sd-daemon(3) "&lt;3&gt;"), not as info.</summary>
    private static string StartupError => SystemdEnvironment.FromProcess().LogsToJournal ? "<3>" : "";

    private static async Task<int> ServeAsync(FileInfo? file, CancellationToken token)
    {
        ConfigResult result = file is null ? ConfigLoader.LoadEmbeddedDefault() : ConfigLoader.LoadFile(file.FullName);
        string source = file?.FullName ?? ConfigLoader.EmbeddedDefaultName;
        if (!result.IsValid)
        {
            foreach (ConfigError error in result.Errors)
            {
                Console.Error.WriteLine(StartupError + error.Format(source));
            }
            return ExitConfigError;
        }
        // Before anything is opened, bound or started: as root with `user:` this executes the appliance
        // again and the new image switches to the user (ServiceUser).
        ServiceUserOutcome user = ServiceUser.Enter(result.Config!);
        if (user.Error is not null)
        {
            Console.Error.WriteLine($"{StartupError}appliance: {user.Error}");
            return ExitConfigError;
        }
        LogServiceUser(user);
        ApplianceServer server;
        try
        {
            server = await ApplianceServer.StartAsync(result.Config!, configPath: file?.FullName, ownsProcess: true, cancellationToken: token);
        }
        catch (StartupFailedException e)
        {
            Console.Error.WriteLine($"{StartupError}appliance: {e.Message}");
            return ExitConfigError;
        }
        await using (server)
        {
            // Every thread is made by now (workers, the pool, the listeners): each must still be confined.
            if (user.Switched is { } account && ServiceUser.Check(account) is { Count: > 0 } problems)
            {
                Console.Error.WriteLine($"{StartupError}appliance: refusing to serve: {string.Join("; ", problems)}");
                return ExitConfigError;
            }
            await server.RunUntilShutdownAsync(token);
        }
        return 0;
    }

    private static void LogServiceUser(ServiceUserOutcome user)
    {
        if (user.Warning is null && user.Information is null)
        {
            return;
        }
        using ILoggerFactory logs = LoggerFactory.Create(b => b.AddApplianceConsole(SystemdEnvironment.FromProcess(), timestamps: false));
        ILogger logger = logs.CreateLogger(typeof(ServiceUser).FullName!);
        if (user.Warning is not null)
        {
            logger.LogWarning("{Warning}", user.Warning);
        }
        if (user.Information is not null)
        {
            logger.LogInformation("{Information}", user.Information);
        }
    }
}
