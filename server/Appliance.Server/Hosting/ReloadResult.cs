namespace Appliance.Server.Hosting;

/// <summary>
/// What a reload did. <paramref name="Errors"/>: the new file's errors, each with file, line and
/// column (then nothing changed and <paramref name="Ok"/> is false); <paramref name="Applied"/>: the
/// keys (dotted paths, sources by name) changed live; <paramref name="NeedsRestart"/>: the keys that
/// changed but take a restart (their old values stay in force), some with why in parentheses.
/// </summary>
public sealed record ReloadResult(bool Ok, IReadOnlyList<string> Errors, IReadOnlyList<string> Applied, IReadOnlyList<string> NeedsRestart)
{
    /// <summary>The lines an operator reads: "applied: KEY", "needs a restart: KEY", "error: FILE:LINE:COLUMN: ...".</summary>
    public IReadOnlyList<string> ToLines()
    {
        var lines = new List<string>(Errors.Count + Applied.Count + NeedsRestart.Count + 1);
        lines.AddRange(Errors.Select(e => $"error: {e}"));
        lines.AddRange(Applied.Select(a => $"applied: {a}"));
        lines.AddRange(NeedsRestart.Select(k => $"needs a restart: {k}"));
        if (!Ok)
        {
            lines.Add("the configuration in force is unchanged");
        }
        else if (lines.Count == 0)
        {
            lines.Add("no change");
        }
        return lines;
    }
}

/// <summary>What a forced key rotation did, in one line: "rotated: current key id 5, 3 keys open cookies", or why not.</summary>
public sealed record RotateResult(bool Ok, string Message);
