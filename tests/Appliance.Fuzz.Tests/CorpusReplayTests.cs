using Appliance.Fuzz;
using Appliance.Testing;

namespace Appliance.Fuzz.Tests;

/// <summary>
/// Every fuzz target's corpus (tests/testdata/fuzz/TARGET: the seeds, the minimised queue of the last
/// `make fuzz`, and any crash-* or hang-* it kept) run through the target, uninstrumented, one test
/// case per file: an input that once crashed a target fails here until the bug is fixed, and stays
/// as a regression test after.
/// </summary>
public class CorpusReplayTests
{
    private static string CorpusOf(string target) => Repo.TestData("fuzz", target);

    public static TheoryData<string, string> CorpusFiles()
    {
        var data = new TheoryData<string, string>();
        foreach (FuzzTarget target in FuzzTargets.All)
        {
            if (!Directory.Exists(CorpusOf(target.Name)))
            {
                continue; // EveryTarget_HasACorpus says so
            }
            foreach (string file in Directory.EnumerateFiles(CorpusOf(target.Name)).Order(StringComparer.Ordinal))
            {
                data.Add(target.Name, Path.GetFileName(file));
            }
        }
        return data;
    }

    public static TheoryData<string> Targets() => [.. FuzzTargets.All.Select(t => t.Name)];

    [Theory]
    [MemberData(nameof(CorpusFiles))]
    public void CorpusFile_RunsThroughItsTarget_WithoutAFinding(string target, string file)
    {
        FuzzTarget fuzzTarget = FuzzTargets.Find(target)!;
        byte[] input = File.ReadAllBytes(Path.Combine(CorpusOf(target), file));
        // Cut as the driver cuts what afl-fuzz hands it.
        fuzzTarget.Run(input.AsSpan(0, Math.Min(input.Length, fuzzTarget.MaxInput)));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void EveryTarget_HasACorpus(string target)
    {
        Assert.True(Directory.Exists(CorpusOf(target)), $"no corpus directory {CorpusOf(target)}: run `Appliance.Fuzz seeds tests/testdata/fuzz` and `make fuzz FUZZ_TARGETS={target}`");
        Assert.NotEmpty(Directory.EnumerateFiles(CorpusOf(target)));
    }

    [Fact]
    public void EveryCorpusDirectory_BelongsToATarget()
    {
        string[] directories = [.. Directory.EnumerateDirectories(Repo.TestData("fuzz")).Select(Path.GetFileName).OfType<string>()];
        Assert.Empty(directories.Except(FuzzTargets.All.Select(t => t.Name)));
    }

    [Fact]
    public void TheSeedsInTheCorpus_AreWhatTheSeedWriterWritesNow()
    {
        // The seeds are made by the real code in the input format of each target: when either
        // changes, they are written again (`dotnet Appliance.Fuzz.dll seeds tests/testdata/fuzz`).
        string directory = Directory.CreateTempSubdirectory("appliance-fuzz-seeds-").FullName;
        try
        {
            Seeds.Write(directory);
            string[] written = [.. Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)];
            Assert.NotEmpty(written);
            foreach (string file in written)
            {
                string relative = Path.GetRelativePath(directory, file);
                string committed = Repo.TestData("fuzz", relative);
                Assert.True(File.Exists(committed), $"{relative} is not in tests/testdata/fuzz");
                Assert.True(File.ReadAllBytes(committed).AsSpan().SequenceEqual(File.ReadAllBytes(file)), $"{relative} differs from what the seed writer writes now");
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
