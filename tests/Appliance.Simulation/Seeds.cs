namespace Appliance.Simulation;

/// <summary>
/// Seeds for a scenario: one in `make test` (SIM_SEEDS unset), many in `make check` (SIM_SEEDS=N).
/// A scenario tolerates a few failing seeds out of many, as chrony's simulation tests do, and names
/// every failing seed so it can be replayed.
/// </summary>
public static class Seeds
{
    public static int Count => int.TryParse(Environment.GetEnvironmentVariable("SIM_SEEDS"), out int n) && n > 0 ? n : 1;

    public static void Check(string scenario, Func<int, string?> run, double toleratedFailureFraction = 0.05)
    {
        var failures = new List<string>();
        for (int seed = 1; seed <= Count; seed++)
        {
            if (run(seed) is { } failure)
            {
                failures.Add($"seed {seed}: {failure}");
            }
        }
        int tolerated = (int)Math.Floor(Count * toleratedFailureFraction);
        Assert.True(failures.Count <= tolerated,
            $"{scenario}: {failures.Count} of {Count} seeds failed (tolerated {tolerated}):\n{string.Join("\n", failures)}");
    }
}
