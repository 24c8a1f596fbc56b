using System.Globalization;

namespace Appliance.Testing;

/// <summary>
/// A network namespace created for one test (ip netns add), with loopback up; removed on dispose.
/// Lets a test use port 123 (ntpdig and ntpq know no other) without touching the host's.
/// </summary>
public sealed class NetworkNamespace : IAsyncDisposable
{
    private static int s_counter;

    private NetworkNamespace(string name) => Name = name;

    public string Name { get; }

    public static async Task<NetworkNamespace> CreateAsync(string purpose)
    {
        int n = Interlocked.Increment(ref s_counter);
        string name = string.Create(CultureInfo.InvariantCulture, $"appl-{purpose}-{Environment.ProcessId}-{n}");
        await Run.CheckedAsync("ip", "netns", "add", name);
        var ns = new NetworkNamespace(name);
        await Run.CheckedAsync("ip", "-n", name, "link", "set", "lo", "up");
        return ns;
    }

    /// <summary>The argument list that runs <paramref name="file"/> inside this namespace.</summary>
    public string[] Exec(string file, params string[] args) => ["netns", "exec", Name, file, .. args];

    public Task<CommandResult> RunAsync(TimeSpan timeout, string file, params string[] args) =>
        Run.CommandAsync("ip", Exec(file, args), timeout);

    public async ValueTask DisposeAsync()
    {
        await Run.CommandAsync("ip", ["netns", "del", Name], TimeSpan.FromSeconds(30));
    }
}
