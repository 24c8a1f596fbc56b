using System.IO.Compression;
using System.Text.RegularExpressions;
using Appliance.Server.Configuration;
using Appliance.Server.Migration;

namespace Appliance.Server.Tests;

/// <summary>
/// The directive table is complete (every directive of the installed chrony.conf(5)), agrees with
/// the Chrony column of ConfigKeys, and is what docs/migrating-from-chrony.md shows.
/// </summary>
public partial class MigrationDocsTests
{
    private const string UpdateCommand = "APPLIANCE_UPDATE_DOCS=1 dotnet test tests/Appliance.Server.Tests --filter MigrationDocsTests";

    /// <summary>The directive headings of the installed chrony.conf(5): a bold name at the top level, an indented block after it.</summary>
    private static HashSet<string> ManPageDirectives()
    {
        using var file = File.OpenRead("/usr/share/man/man5/chrony.conf.5.gz");
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        string[] lines = new StreamReader(gzip).ReadToEnd().Split('\n');
        var names = new HashSet<string>(StringComparer.Ordinal);
        int depth = 0;
        for (int i = 0; i < lines.Length - 1; i++)
        {
            if (lines[i].StartsWith(".RS", StringComparison.Ordinal))
            {
                depth++;
            }
            else if (lines[i].StartsWith(".RE", StringComparison.Ordinal))
            {
                depth--;
            }
            else if (depth == 0 && lines[i + 1].StartsWith(".RS 4", StringComparison.Ordinal) && Heading().Match(lines[i]) is { Success: true } m)
            {
                names.Add(m.Groups[1].Value);
            }
        }
        return names;
    }

    [GeneratedRegex(@"^\\fB([a-z_]+)\\fP")]
    private static partial Regex Heading();

    [Fact]
    public void Table_HasEveryDirectiveOfTheInstalledManPage_AndLeapseclistAndNtsaeads()
    {
        HashSet<string> man = ManPageDirectives();
        Assert.True(man.Count > 80, $"only {man.Count} directives read from the man page");
        var table = ChronyDirectives.All.Select(d => d.Name).ToHashSet(StringComparer.Ordinal);

        Assert.Empty(man.Except(table));
        // Directives of later chrony than the installed 4.3: leapseclist (4.5), ntsaeads (4.6.1).
        Assert.Equal(["leapseclist", "ntsaeads"], table.Except(man).Order(StringComparer.Ordinal));
        Assert.Equal(table.Count, ChronyDirectives.All.Count);
    }

    [Fact]
    public void EveryDirectiveTheConfigTableNames_IsMappedHere_AndEveryMappedDirectiveHasAKey()
    {
        foreach (ConfigKey key in ConfigKeys.All)
        {
            foreach (string directive in ChronyDirectives.DirectivesOf(key))
            {
                ChronyDirective? entry = ChronyDirectives.Find(directive);
                Assert.True(entry is { Outcome: MigrationOutcome.Mapped or MigrationOutcome.MappedWithDifference }, $"{key.Path} names {directive}, which the migration does not map");
            }
        }
        // Directives mapped onto something that is not a key of its own (the reader, or a
        // whole-file effect) are the exceptions; every other mapped directive names its key.
        string[] noKey = ["sourcedir", "nosystemcert"];
        foreach (ChronyDirective directive in ChronyDirectives.All.Where(d => d.Outcome is MigrationOutcome.Mapped or MigrationOutcome.MappedWithDifference))
        {
            Assert.True(directive.Keys.Count > 0 || noKey.Contains(directive.Name), $"{directive.Name} is mapped but no key's Chrony column names it");
        }
    }

    [Fact]
    public void EveryDirective_MigratesWithoutAnUnknownDirectiveNote()
    {
        foreach (ChronyDirective directive in ChronyDirectives.All.Where(d => d.Name is not ("include" or "confdir" or "sourcedir")))
        {
            Migrated migrated = MigrationHelpers.Migrate($"server a.example\n{directive.Name}\n");
            MigrationNote note = migrated.NoteAt(2);
            Assert.DoesNotContain("not a chrony", note.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void MigratingFromChronyDoc_ShowsTheGeneratedTable()
    {
        string path = Testing.Repo.Path("docs", "migrating-from-chrony.md");
        string committed = File.ReadAllText(path);
        int start = committed.IndexOf(ChronyDirectives.TableStart, StringComparison.Ordinal);
        int end = committed.IndexOf(ChronyDirectives.TableEnd, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, $"docs/migrating-from-chrony.md has no markers {ChronyDirectives.TableStart} ... {ChronyDirectives.TableEnd}");
        string generated = committed[..start] + ChronyDirectives.MarkdownTable() + committed[(end + ChronyDirectives.TableEnd.Length)..];
        if (generated == committed)
        {
            return;
        }
        if (Environment.GetEnvironmentVariable("APPLIANCE_UPDATE_DOCS") == "1")
        {
            File.WriteAllText(path, generated);
            return;
        }
        Assert.Fail($"docs/migrating-from-chrony.md's directive table is not what ChronyDirectives generates; update it with: {UpdateCommand}");
    }
}
