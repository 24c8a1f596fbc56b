using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Nts;

namespace Appliance.Server.Tests.Hostile;

/// <summary>
/// The test assembly's entry point, which the test runner never calls: `dotnet
/// Appliance.Server.Tests.dll key-writer FILE` is the child process <see cref="KeyStorageKillTests"/>
/// SIGKILLs at random points. It loads the ring as a start does, says what it loaded, then rotates and
/// saves with <see cref="KeyRingStore.Save"/> as fast as it can, announcing each ring before its save
/// and each save that returned, so the test knows the old ring and the new one at the kill.
/// </summary>
internal static class KeyStorageWriter
{
    public const string Verb = "key-writer";

    /// <summary>30 days, the longest rotation: the loop's rings never cross a period boundary in a test's time.</summary>
    public static NtsKeysConfig Config(string file) => new(file, TimeSpan.FromDays(30), 3, null);

    public static int Main(string[] args)
    {
        if (args is not [Verb, string file])
        {
            Console.Error.WriteLine($"usage: dotnet Appliance.Server.Tests.dll {Verb} FILE (the test runner runs the tests)");
            return 2;
        }
        var store = new KeyRingStore(Config(file));
        store.Load();
        store.Update(DateTimeOffset.UtcNow, out CookieKeyRing ring);
        Console.WriteLine($"loaded {Describe(ring)} recovered={store.Recovered is not null}");
        while (true)
        {
            ring = store.ForceRotate(DateTimeOffset.UtcNow);
            Console.WriteLine($"saving {Describe(ring)}");
            store.Save();
            Console.WriteLine("saved");
        }
    }

    /// <summary>A ring as the test compares it with a file: every key, by id, with its bytes.</summary>
    public static string Describe(CookieKeyRing ring) =>
        string.Join(",", ring.Keys.OrderBy(k => k.Id).Select(k => $"{k.Id}:{Convert.ToBase64String(k.Key)}"));
}
