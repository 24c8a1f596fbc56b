using Appliance.Server.Configuration;

namespace Appliance.Server.Tests;

/// <summary>docs/configuration.md says of every key what the table says: its doc line, type, range, default, reload and chrony.conf.</summary>
public class ConfigReferenceTests
{
    private const string UpdateCommand = "APPLIANCE_UPDATE_DOCS=1 dotnet test tests/Appliance.Server.Tests --filter ConfigReferenceTests";

    [Fact]
    public void ConfigurationReference_IsWhatTheTableGenerates()
    {
        string path = Testing.Repo.Path("docs", "configuration.md");
        string committed = File.ReadAllText(path);
        string generated = ConfigReference.Update(committed, out IReadOnlyList<string> problems);
        Assert.True(problems.Count == 0, $"docs/configuration.md and ConfigKeys disagree on the keys (add or remove the headings by hand):\n{string.Join("\n", problems)}");
        if (generated == committed)
        {
            return;
        }
        if (Environment.GetEnvironmentVariable("APPLIANCE_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, generated);
            return;
        }
        Assert.Fail($"docs/configuration.md differs from the table of keys (- committed, + generated):\n{Diff(committed, generated)}\nupdate it with: {UpdateCommand}");
    }

    [Fact]
    public void Update_FillsABareHeading_ReplacesAStaleBlock_KeepsTheProse()
    {
        ConfigKey batch = ConfigKeys.NtpBatch;
        ConfigKey workers = ConfigKeys.NtpWorkers;
        string markdown = $"# t\n\n{ConfigReference.Heading(batch)}\nProse about batches.\n\n{ConfigReference.Heading(workers)}\nAn old doc line.\n\n> integer, 1 to 8 · default `1`\n\nProse about workers.\n";

        string updated = Update(markdown, [batch, workers]);

        Assert.Equal(
            $"# t\n\n{ConfigReference.Heading(batch)}\n{batch.Doc}\n\n> {ConfigReference.Facts(batch)}\n\nProse about batches.\n\n"
            + $"{ConfigReference.Heading(workers)}\n{workers.Doc}\n\n> {ConfigReference.Facts(workers)}\n\nProse about workers.\n",
            updated);
        Assert.Equal(updated, Update(updated, [batch, workers]));
    }

    [Fact]
    public void Update_NamesAHeadingWithoutAKey_AndAKeyWithoutAHeading()
    {
        ConfigReference.Update("### `ntp.lissten`\n", out IReadOnlyList<string> problems);
        Assert.Contains(problems, p => p.Contains("'### `ntp.lissten`' names no key", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("no heading '### `ntp.listen`'", StringComparison.Ordinal));
    }

    [Fact]
    public void Facts_SayTypeRangeDefaultReloadAndChrony()
    {
        Assert.Equal("duration, `1ms` to `1h` · default `2s` · reload: live · chrony.conf: `ratelimit interval`",
            ConfigReference.Facts(ConfigKeys.NtpRateLimitInterval));
        Assert.Equal("`address:port`, or `off` or `null` · default `\"127.0.0.1:9975\"` · reload: restart · chrony.conf: none",
            ConfigReference.Facts(ConfigKeys.MetricsListen));
        Assert.Equal("path of an existing file · default: the system's trust anchors · needs `nts: true` · reload: live · chrony.conf: `ntstrustedcerts`",
            ConfigReference.Facts(ConfigKeys.NtpSourceTrust));
    }

    /// <summary><see cref="ConfigReference.Update"/> on a page that documents only <paramref name="keys"/>.</summary>
    private static string Update(string markdown, ConfigKey[] keys)
    {
        string updated = ConfigReference.Update(markdown, out IReadOnlyList<string> problems);
        Assert.All(problems, p => Assert.True(keys.All(k => !p.Contains($"`{k.Path}`", StringComparison.Ordinal)), p));
        return updated;
    }

    /// <summary>The lines that differ, with line numbers: a longest-common-subsequence diff.</summary>
    private static string Diff(string a, string b)
    {
        string[] x = a.Split('\n');
        string[] y = b.Split('\n');
        var lcs = new int[x.Length + 1, y.Length + 1];
        for (int i = x.Length - 1; i >= 0; i--)
        {
            for (int j = y.Length - 1; j >= 0; j--)
            {
                lcs[i, j] = x[i] == y[j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            }
        }
        var lines = new List<string>();
        int p = 0, q = 0;
        while (p < x.Length || q < y.Length)
        {
            if (p < x.Length && q < y.Length && x[p] == y[q])
            {
                p++;
                q++;
            }
            else if (q < y.Length && (p == x.Length || lcs[p, q + 1] >= lcs[p + 1, q]))
            {
                lines.Add($"+{q + 1}: {y[q++]}");
            }
            else
            {
                lines.Add($"-{p + 1}: {x[p++]}");
            }
        }
        return string.Join("\n", lines.Take(80)) + (lines.Count > 80 ? $"\n… {lines.Count - 80} more" : "");
    }
}
