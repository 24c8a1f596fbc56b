using Appliance.Fuzz;

// `dotnet Appliance.Fuzz.dll TARGET`: one target under afl-fuzz (SharpFuzz's out-of-process mode: the
// target runs in a child process that is restarted when it dies, so a stack overflow or a hang is a
// finding, not the end of the run). Outside afl-fuzz it runs stdin once: `... TARGET < crash-file`
// reproduces a finding with its stack trace. `replay TARGET FILE...` runs files directly;
// `seeds DIR` writes the seed corpora (tests/testdata/fuzz/<target>/seed-*).
if (args is ["seeds", string directory])
{
    Seeds.Write(directory);
    return 0;
}
if (args is ["replay", string replayed, .. string[] files] && FuzzTargets.Find(replayed) is { } replayTarget)
{
    foreach (string file in files)
    {
        replayTarget.Run(File.ReadAllBytes(file));
        Console.WriteLine($"{file}: ok");
    }
    return 0;
}
if (args is [string name] && FuzzTargets.Find(name) is { } target)
{
    byte[] buffer = new byte[target.MaxInput];
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        // Bounded before it is parsed, as every input of the appliance is (DESIGN.md boundary 6):
        // afl-fuzz may grow an input past what the target takes; the rest is not read.
        int length = 0;
        for (int n; length < buffer.Length && (n = stream.Read(buffer, length, buffer.Length - length)) > 0;)
        {
            length += n;
        }
        target.Run(buffer.AsSpan(0, length));
    });
    return 0;
}
Console.Error.WriteLine($"usage: Appliance.Fuzz TARGET | replay TARGET FILE... | seeds DIR\ntargets: {string.Join(' ', FuzzTargets.All.Select(t => t.Name))}");
return 2;
