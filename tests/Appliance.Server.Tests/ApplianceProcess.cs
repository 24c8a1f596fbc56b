using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>Runs the real `appliance` executable (the build next to this test assembly) as a child process.</summary>
internal static class ApplianceProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "appliance.dll");

    public static Task<CommandResult> RunAsync(params string[] args) =>
        Run.CommandAsync("dotnet", [Dll, .. args], TimeSpan.FromSeconds(60));

    public static PeerProcess Start(params string[] args) => new("dotnet", [Dll, .. args]);

    /// <summary>Starts it inside a network namespace.</summary>
    public static PeerProcess StartIn(NetworkNamespace ns, params string[] args) => new("ip", ns.Exec("dotnet", [Dll, .. args]));

    public static string WriteConfig(string yaml)
    {
        string path = Path.Combine(Path.GetTempPath(), $"appliance-test-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }
}
