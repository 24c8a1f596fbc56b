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

    /// <summary>The veth end inside this namespace, when made by <see cref="CreateLinkedPairAsync"/>.</summary>
    public string? Interface { get; private set; }

    /// <summary>The address of <see cref="Interface"/>.</summary>
    public string? Address { get; private set; }

    /// <summary>
    /// Two namespaces joined by a veth pair, addresses 10.X.0.1/24 and 10.X.0.2/24 (software
    /// timestamps only: a veth has no PHC). For peers that talk over a real link, e.g. PTP multicast.
    /// </summary>
    public static async Task<(NetworkNamespace A, NetworkNamespace B)> CreateLinkedPairAsync(string purpose)
    {
        NetworkNamespace a = await CreateAsync(purpose + "a");
        NetworkNamespace b = await CreateAsync(purpose + "b");
        int n = Interlocked.Increment(ref s_counter);
        string suffix = string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId % 10000}x{n}");
        string va = $"va{suffix}", vb = $"vb{suffix}";
        int subnet = 100 + (n % 100);
        await Run.CheckedAsync("ip", "link", "add", va, "netns", a.Name, "type", "veth", "peer", "name", vb, "netns", b.Name);
        a.Interface = va;
        b.Interface = vb;
        a.Address = $"10.{subnet}.0.1";
        b.Address = $"10.{subnet}.0.2";
        foreach (NetworkNamespace ns in new[] { a, b })
        {
            await Run.CheckedAsync("ip", "-n", ns.Name, "addr", "add", $"{ns.Address}/24", "dev", ns.Interface!);
            await Run.CheckedAsync("ip", "-n", ns.Name, "link", "set", ns.Interface!, "up");
        }
        return (a, b);
    }

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

    /// <summary>Deleting the namespace deletes its veth end, and with it the peer end.</summary>
    public async ValueTask DisposeAsync()
    {
        await Run.CommandAsync("ip", ["netns", "del", Name], TimeSpan.FromSeconds(30));
    }
}
