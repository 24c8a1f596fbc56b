using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>
/// Runs the real `appliance` executable as a child process: the JIT build next to this test assembly
/// (`dotnet appliance.dll`), or, when APPLIANCE_BINARY names one, that executable, which is how
/// `make test` runs the real-peer tests a second time against the Native AOT binary (out/bin/appliance).
/// </summary>
internal static class ApplianceProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "appliance.dll");

    /// <summary>The executable under test, or null for the JIT build.</summary>
    public static string? Binary { get; } = Environment.GetEnvironmentVariable("APPLIANCE_BINARY") is { Length: > 0 } path
        ? File.Exists(path) ? Path.GetFullPath(path) : throw new FileNotFoundException($"APPLIANCE_BINARY names {path}, which does not exist: run make publish", path)
        : null;

    /// <summary>The command line that runs the appliance with <paramref name="args"/>: program first.</summary>
    public static string[] Command(params string[] args) => Binary is { } binary ? [binary, .. args] : ["dotnet", Dll, .. args];

    public static Task<CommandResult> RunAsync(params string[] args)
    {
        string[] command = Command(args);
        return Run.CommandAsync(command[0], command[1..], TimeSpan.FromSeconds(60));
    }

    public static PeerProcess Start(params string[] args)
    {
        string[] command = Command(args);
        return new(command[0], command[1..]);
    }

    /// <summary>Starts it inside a network namespace.</summary>
    public static PeerProcess StartIn(NetworkNamespace ns, params string[] args)
    {
        string[] command = Command(args);
        return new("ip", ns.Exec(command[0], command[1..]));
    }

    public static string WriteConfig(string yaml)
    {
        string path = Path.Combine(Path.GetTempPath(), $"appliance-test-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }
}
