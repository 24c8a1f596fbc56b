using System.Diagnostics;
using System.Text.Json;
using Appliance.Protocol.Nts;
using Appliance.Server.Nts;
using Appliance.Testing;
using Xunit.Abstractions;

namespace Appliance.Server.Tests.Hostile;

/// <summary>
/// Issue #18: the process killed at random points of a key write leaves no torn file. A child process
/// (<see cref="KeyStorageWriter"/>: the real <see cref="KeyRingStore"/> rotating and saving in a loop
/// on the real disk) is SIGKILLed after a random delay, again and again; after each kill the key file and
/// its copy parse and each holds the old ring or the new one, and the next start (the next child's
/// <see cref="KeyRingStore.Load"/>) takes the key file as it is, without recovery. A SIGKILL leaves the
/// page cache as it was, so this proves the write-and-rename order, not the fsyncs (a power cut would).
/// </summary>
public sealed class KeyStorageKillTests(ITestOutputHelper output)
{
    private const int Iterations = 60;
    private const int MinIterations = 50;

    private static string TestAssembly => Path.Combine(AppContext.BaseDirectory, "Appliance.Server.Tests.dll");

    /// <summary>A key file's ring in the writer's <see cref="KeyStorageWriter.Describe"/> form, or an assertion that it does not parse as one.</summary>
    internal static string Describe(string file)
    {
        using JsonDocument json = JsonDocument.Parse(File.ReadAllBytes(file));
        return string.Join(",", json.RootElement.GetProperty("Keys").EnumerateArray()
            .Select(k => (Id: k.GetProperty("Id").GetUInt32(), Key: k.GetProperty("Key").GetString()!))
            .OrderBy(k => k.Id).Select(k => $"{k.Id}:{k.Key}"));
    }

    [Fact]
    public async Task KilledAtRandomPointsOfAWrite_EachFileIsTheOldRingOrTheNew_NeverTorn_AndTheNextStartTakesIt()
    {
        string directory = Directory.CreateTempSubdirectory("keykill").FullName;
        string file = Path.Combine(directory, "nts-keys.json");
        int seed = Environment.TickCount;
        var random = new Random(seed);
        var first = new KeyRingStore(KeyStorageWriter.Config(file));
        first.Update(DateTimeOffset.UtcNow, out CookieKeyRing ring);
        first.Save();
        string onDisk = KeyStorageWriter.Describe(ring), copyOnDisk = onDisk;
        int iterations = 0, midSave = 0, saves = 0;
        var elapsed = Stopwatch.StartNew();
        try
        {
            while (iterations < Iterations && elapsed.Elapsed < TimeSpan.FromSeconds(120))
            {
                int delay = random.Next(0, 40);
                List<string> lines = await RunAndKillAsync(file, delay);
                string context = $"seed {seed}, iteration {iterations}, kill after {delay} ms, last lines:\n{string.Join("\n", lines.TakeLast(3).Select(l => l.Length > 80 ? l[..80] + "…" : l))}";

                // The start took the file as the last kill left it, whole: no recovery was needed.
                Assert.True(lines.Count > 0 && lines[0].StartsWith("loaded ", StringComparison.Ordinal), context);
                Assert.Equal($"loaded {onDisk} recovered=False", lines[0]);

                int last = lines.FindLastIndex(l => l.StartsWith("saving ", StringComparison.Ordinal));
                int previous = last < 0 ? -1 : lines.FindLastIndex(last - 1, l => l.StartsWith("saving ", StringComparison.Ordinal));
                bool finished = last >= 0 && lines.Skip(last + 1).Contains("saved");
                string newRing = last < 0 ? onDisk : lines[last]["saving ".Length..];
                string oldRing = finished ? newRing : previous < 0 ? onDisk : lines[previous]["saving ".Length..];
                string keyFile = Describe(file), copy = Describe(file + ".prev");

                // The key file holds the old ring or the new. The copy is written after it: the old ring or the new, or,
                // killed before any save of this run finished, the copy as it was; never ahead of the key file.
                bool anySaved = lines.Contains("saved");
                Assert.True(keyFile == oldRing || keyFile == newRing, $"{context}\nkey file is {Which(keyFile, oldRing, newRing)}");
                Assert.True(copy == oldRing || copy == newRing || (!anySaved && copy == copyOnDisk),
                    $"{context}\ncopy is {Which(copy, oldRing, newRing)}, the key file {Which(keyFile, oldRing, newRing)}");
                Assert.False(keyFile == oldRing && copy == newRing && oldRing != newRing, $"{context}\nthe copy is ahead of the key file");
                onDisk = keyFile;
                copyOnDisk = copy;
                midSave += last >= 0 && !finished ? 1 : 0;
                saves += lines.Count(l => l == "saved");
                iterations++;
            }
            output.WriteLine($"{iterations} kills in {elapsed.Elapsed.TotalSeconds:0.0} s (seed {seed}): {midSave} inside a save, {saves} saves finished");
            Assert.True(iterations >= MinIterations, $"only {iterations} kills in {elapsed.Elapsed.TotalSeconds:0} s");
            Assert.True(midSave > 0, "no kill landed inside a save: the test proved nothing");

            // A last start, in this process: the key file loads as it is, and the temporary files of the killed saves are gone.
            var restarted = new KeyRingStore(KeyStorageWriter.Config(file));
            restarted.Load();
            Assert.Null(restarted.Recovered);
            restarted.Update(DateTimeOffset.UtcNow, out CookieKeyRing loaded);
            Assert.Equal(onDisk, KeyStorageWriter.Describe(loaded));
            Assert.Empty(Directory.GetFiles(directory, "*.tmp", new EnumerationOptions { AttributesToSkip = 0 }));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static string Which(string ring, string oldRing, string newRing) => ring == newRing ? "new" : ring == oldRing ? "old" : $"neither: {ring}";

    /// <summary>Starts the writer, SIGKILLs it <paramref name="delayMs"/> after it said what it loaded, and returns everything it printed.</summary>
    private static async Task<List<string>> RunAndKillAsync(string file, int delayMs)
    {
        var lines = new List<string>();
        using Process child = Run.Start("dotnet", [TestAssembly, KeyStorageWriter.Verb, file]);
        Task<string> errors = child.StandardError.ReadToEndAsync();
        Task reader = Task.Run(async () =>
        {
            while (await child.StandardOutput.ReadLineAsync() is { } line)
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            }
        });
        var started = Stopwatch.StartNew();
        while (true)
        {
            lock (lines)
            {
                if (lines.Count > 0)
                {
                    break;
                }
            }
            if (child.HasExited || started.Elapsed > TimeSpan.FromSeconds(30))
            {
                if (!child.HasExited)
                {
                    child.Kill();
                }
                await child.WaitForExitAsync();
                Assert.Fail($"the writer did not start: {await errors}");
            }
            await Task.Delay(2);
        }
        if (delayMs > 0)
        {
            await Task.Delay(delayMs);
        }
        child.Kill(); // SIGKILL: no handler, no flush, no finally runs in the child
        await child.WaitForExitAsync();
        await reader;
        // 128 + SIGKILL: the kill ended it, not an exception of its own (which would be a failed save).
        Assert.True(child.ExitCode == 137, $"the writer ended by itself (exit {child.ExitCode}): {await errors}");
        return lines;
    }
}
