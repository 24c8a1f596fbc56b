using System.IO.Compression;

namespace Appliance.Server.Tests;

/// <summary>
/// Real chrony configurations nobody here wrote, read at test time from what the chrony Debian
/// package installs (tests/peers/install.sh installs it), so that none is copied into the
/// repository. Whole files are read as they are; the rest are found in the FAQ and in
/// chrony.conf(5) by their text, never by line number, and a locator that finds nothing fails the
/// test, so a changed document shows up as a failure rather than as a smaller test.
/// </summary>
internal static class ChronyDocs
{
    public const string Install = "install chrony (make test does: tests/peers/install.sh)";
    public const string DebianConf = "/usr/share/chrony/chrony.conf";
    public const string Examples = "/usr/share/doc/chrony/examples";
    public const string Faq = "/usr/share/doc/chrony/FAQ.gz";
    public const string ManPage = "/usr/share/man/man5/chrony.conf.5.gz";

    /// <summary>The allow list appended to the composed NTS server: the subnet of chrony.conf(5)'s EXAMPLES section.</summary>
    public const string NtsServerAllow = "allow 192.168.165.0/24";

    /// <summary>The NTS server directives appended to Debian's file, each a directive heading of chrony.conf(5) with its argument.</summary>
    public static readonly string[] NtsServerDirectives =
    [
        "ntsserverkey /etc/chrony/nts-server.key",
        "ntsservercert /etc/chrony/nts-server.crt",
        "ntsport 4460",
        NtsServerAllow,
    ];

    /// <summary>The chrony.conf text of the case <paramref name="name"/>.</summary>
    public static string Config(string name) => name switch
    {
        "debian" => Read(DebianConf),
        "example1" or "example2" or "example3" => Read(Path.Combine(Examples, "chrony.conf." + name)),
        // FAQ §2.12, gpsd: the third option (PPS locked to gpsd's NMEA over SHM 0) and the first (gpsd's socket).
        "faq-gps-pps" => Text(After(FaqLines(), "# Third option", Faq)),
        "faq-gps-sock" => Text(After(FaqLines(), "# First option", Faq)),
        // FAQ §2.6, the client "limiting the impact of the attacks": five NTS servers, minsources, maxchange, ...
        "faq-nts-hardened" => Text(Between(FaqLines(), "server foo.example.net iburst nts maxdelay 0.1", "rtcsync", Faq)),
        // chrony.conf(5) EXAMPLES, "Isolated networks": the primary server with its allow list, and the first orphan server.
        "man-isolated-server" => Text(ManExample(lines => lines[0] == "initstepslew 1 client1 client3 client6")),
        "man-orphan-server" => Text(ManExample(lines => lines.Contains("local stratum 8 orphan"))),
        // Composed, not found whole: chrony's docs have no complete NTS server file.
        "composed-nts-server" => Read(DebianConf) + "\n" + Text(NtsServerDirectives),
        _ => throw new ArgumentException($"no chrony case {name}", nameof(name)),
    };

    /// <summary>The file's text; a missing file fails the test with how to install it.</summary>
    public static string Read(string path)
    {
        if (!File.Exists(path))
        {
            Assert.Fail($"{path} is missing: {Install}");
        }
        if (!path.EndsWith(".gz", StringComparison.Ordinal))
        {
            return File.ReadAllText(path);
        }
        using FileStream file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        return reader.ReadToEnd();
    }

    public static string[] FaqLines() => Lines(Read(Faq));

    /// <summary>
    /// The example blocks of chrony.conf(5): the lines between `.nf` and `.fi`, without the
    /// `.fam` font requests, with the roff escapes these blocks use turned back into characters.
    /// </summary>
    public static List<string[]> ManExamples()
    {
        var blocks = new List<string[]>();
        List<string>? block = null;
        foreach (string line in Lines(Read(ManPage)))
        {
            if (line == ".nf")
            {
                block = [];
            }
            else if (line == ".fi" && block is not null)
            {
                blocks.Add([.. block]);
                block = null;
            }
            else if (block is not null && !line.StartsWith('.'))
            {
                block.Add(Unescape(line));
            }
        }
        return blocks;
    }

    /// <summary>The one example block of chrony.conf(5) that <paramref name="match"/> picks.</summary>
    public static string[] ManExample(Func<string[], bool> match)
    {
        List<string[]> found = ManExamples().Where(b => b.Length > 0 && match(b)).ToList();
        if (found.Count != 1)
        {
            Assert.Fail($"{ManPage}: {found.Count} example blocks match where one should: chrony.conf(5) changed, locate the example anew");
        }
        return found[0];
    }

    /// <summary>The lines from the line <paramref name="first"/> through the next line <paramref name="last"/>.</summary>
    public static string[] Between(string[] lines, string first, string last, string source)
    {
        int start = IndexOf(lines, first, 0, source);
        int end = IndexOf(lines, last, start, source);
        return lines[start..(end + 1)];
    }

    /// <summary>The lines after the line <paramref name="heading"/>, up to the next blank line.</summary>
    public static string[] After(string[] lines, string heading, string source)
    {
        int start = IndexOf(lines, heading, 0, source) + 1;
        int end = Array.FindIndex(lines, start, l => l.Length == 0);
        return lines[start..(end < 0 ? lines.Length : end)];
    }

    private static int IndexOf(string[] lines, string line, int from, string source)
    {
        int i = Array.IndexOf(lines, line, from);
        if (i < 0)
        {
            Assert.Fail($"{source} has no line \"{line}\": chrony's documentation changed, locate the lines anew");
        }
        return i;
    }

    private static string[] Lines(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n').Select(l => l.TrimEnd()).ToArray();

    private static string Text(IEnumerable<string> lines) => string.Join("\n", lines) + "\n";

    /// <summary>The roff escapes of man pages generated by Asciidoctor that can stand in a configuration line.</summary>
    private static string Unescape(string line) => line
        .Replace("\\-", "-", StringComparison.Ordinal)
        .Replace("\\(aq", "'", StringComparison.Ordinal)
        .Replace("\\(dq", "\"", StringComparison.Ordinal)
        .Replace("\\&", "", StringComparison.Ordinal)
        .Replace("\\e", "\\", StringComparison.Ordinal);
}
