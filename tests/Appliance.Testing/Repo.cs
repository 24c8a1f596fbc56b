namespace Appliance.Testing;

/// <summary>Paths inside the repository checkout the tests run from.</summary>
public static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    public static string TestData(params string[] parts) => System.IO.Path.Combine([Root, "tests", "testdata", .. parts]);

    /// <summary>Where tests/peers/install.sh put peers that are extracted rather than installed.</summary>
    public static string PeersDirectory =>
        Environment.GetEnvironmentVariable("APPLIANCE_PEERS_DIR") is { Length: > 0 } dir ? dir : Path(".peers");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "Appliance.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no Appliance.sln above {AppContext.BaseDirectory}");
    }
}
