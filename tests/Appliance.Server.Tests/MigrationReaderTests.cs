using Appliance.Server.Migration;

namespace Appliance.Server.Tests;

/// <summary>chrony.conf(5)'s file rules: comments, include, confdir and sourcedir, and the bounds on what is read.</summary>
public class MigrationReaderTests
{
    private static string Write(string dir, string relative, string text)
    {
        string path = Path.Combine(dir, relative.TrimStart('/'));
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    private static string[] Directives(ChronyConf conf) =>
        conf.Lines.Where(l => l.ReaderNote is null).Select(l => $"{Path.GetFileName(l.File)}:{l.Number}:{l.Text}").ToArray();

    [Fact]
    public void CommentLines_StartWithBangSemicolonHashOrPercent_AfterSpaces_AndOnlyThere()
    {
        string dir = MigrationHelpers.Scratch();
        string main = Write(dir, "chrony.conf", "! a\n; b\n# c\n% d\n   # e\n\tserver   a.example\t iburst\nserver b.example # not a comment\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(["chrony.conf:6:server a.example iburst", "chrony.conf:7:server b.example # not a comment"], Directives(conf));
    }

    [Fact]
    public void Include_ReadsTheMatchingFilesInNameOrder_InPlace()
    {
        string dir = MigrationHelpers.Scratch();
        Write(dir, "etc/chrony/chrony.d/b.conf", "server b.example\n");
        Write(dir, "etc/chrony/chrony.d/a.conf", "server a.example\n");
        Write(dir, "etc/chrony/chrony.d/c.txt", "server c.example\n");
        string main = Write(dir, "chrony.conf", "server first.example\ninclude /etc/chrony/chrony.d/*.conf\nserver last.example\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(["chrony.conf:1:server first.example", "a.conf:1:server a.example", "b.conf:1:server b.example", "chrony.conf:3:server last.example"], Directives(conf));
        MigrationNote note = Assert.Single(conf.Lines, l => l.Directive == "include").ReaderNote!;
        Assert.Equal(MigrationOutcome.NoCounterpart, note.Outcome);
        Assert.Equal(2, note.Line);
    }

    [Theory]
    [InlineData("*.conf", "[.conf ].conf a.conf b.conf x-y.conf")] // not .hidden.conf: a leading dot only by a dot
    [InlineData(".*.conf", ".hidden.conf")]
    [InlineData("[]].conf", "].conf")] // a ']' first in the brackets is a member
    [InlineData("[!a].conf", "[.conf ].conf b.conf")]
    [InlineData("[!]a].conf", "[.conf b.conf")]
    [InlineData("[.conf", "[.conf")] // a '[' nothing closes matches itself
    [InlineData("[a-b].conf", "a.conf b.conf")]
    [InlineData("x[-]y.conf", "x-y.conf")]
    [InlineData("?.c*f", "[.conf ].conf a.conf b.conf")]
    [InlineData("[z-a].conf", "")] // a reversed range matches nothing
    [InlineData("[][[[[[[\u00ff", "")] // found by make fuzz (target chrony): a regex of it was refused, and the migration died
    public void Include_MatchesFileNames_AsGlob7Does(string pattern, string expected)
    {
        string dir = MigrationHelpers.Scratch();
        foreach (string name in (string[])["a.conf", "b.conf", "].conf", "[.conf", ".hidden.conf", "x-y.conf"])
        {
            Write(dir, "etc/d/" + name, $"server {name.Trim('.', '[', ']')}.example\n");
        }
        string main = Write(dir, "chrony.conf", $"include /etc/d/{pattern}\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        string[] read = [.. conf.Lines.Where(l => l.ReaderNote is null).Select(l => Path.GetFileName(l.File))];
        Assert.Equal(expected.Split(' ', StringSplitOptions.RemoveEmptyEntries), read);
        Assert.Null(conf.Error);
    }

    [Fact]
    public void Include_WithNoMatchingFile_IsNotMapped_AsChronydRefusesToStart()
    {
        string dir = MigrationHelpers.Scratch();
        string main = Write(dir, "chrony.conf", "include /etc/chrony/nothing/*.conf\n");

        MigrationNote note = Assert.Single(ChronyConfReader.Read(main, dir).Lines).ReaderNote!;

        Assert.Equal(MigrationOutcome.NotMapped, note.Outcome);
    }

    [Fact]
    public void Confdir_FirstDirectoryWinsForAName_FilesInNameOrderAcrossDirectories()
    {
        string dir = MigrationHelpers.Scratch();
        Write(dir, "etc/chrony/conf.d/10-a.conf", "server etc-a.example\n");
        Write(dir, "etc/chrony/conf.d/30-c.conf", "server etc-c.example\n");
        Write(dir, "usr/lib/chrony/conf.d/10-a.conf", "server usr-a.example\n");
        Write(dir, "usr/lib/chrony/conf.d/20-b.conf", "server usr-b.example\n");
        Write(dir, "usr/lib/chrony/conf.d/20-b.sources", "server not-a-conf.example\n");
        string main = Write(dir, "chrony.conf", "confdir /etc/chrony/conf.d /usr/lib/chrony/conf.d /run/absent\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(["10-a.conf:1:server etc-a.example", "20-b.conf:1:server usr-b.example", "30-c.conf:1:server etc-c.example"], Directives(conf));
        Assert.Equal("/usr/lib/chrony/conf.d/20-b.conf", conf.Lines.Single(l => l.Text == "server usr-b.example").File);
        MigrationNote note = conf.Lines[0].ReaderNote!;
        Assert.Contains("/run/absent", note.Message, StringComparison.Ordinal);
        Assert.Equal(MigrationOutcome.MappedWithDifference, note.Outcome);
    }

    [Fact]
    public void Sourcedir_ReadsDotSourcesFiles_MarkedAsSuch()
    {
        string dir = MigrationHelpers.Scratch();
        Write(dir, "run/chrony-dhcp/eth0.sources", "server 192.0.2.1 iburst\n");
        Write(dir, "run/chrony-dhcp/eth0.conf", "server 192.0.2.2\n");
        string main = Write(dir, "chrony.conf", "sourcedir /run/chrony-dhcp\n");

        ChronyLine line = Assert.Single(ChronyConfReader.Read(main, dir).Lines, l => l.ReaderNote is null);

        Assert.Equal("server 192.0.2.1 iburst", line.Text);
        Assert.True(line.FromSourcesFile);
    }

    [Fact]
    public void IncludeLoop_IsReportedOnce_NotFollowed()
    {
        string dir = MigrationHelpers.Scratch();
        Write(dir, "etc/a.conf", "server a.example\ninclude /etc/b.conf\n");
        Write(dir, "etc/b.conf", "server b.example\ninclude /etc/a.conf\n");
        string main = Write(dir, "chrony.conf", "include /etc/a.conf\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(["a.conf:1:server a.example", "b.conf:1:server b.example"], Directives(conf));
        MigrationNote loop = Assert.Single(conf.Lines, l => l.ReaderNote?.Message.Contains("loop", StringComparison.Ordinal) == true).ReaderNote!;
        Assert.Equal(MigrationOutcome.NotMapped, loop.Outcome);
        Assert.Contains("a.conf -> b.conf -> a.conf", loop.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SelfInclude_ThroughAGlob_IsALoop()
    {
        string dir = MigrationHelpers.Scratch();
        Write(dir, "etc/chrony/x.conf", "server x.example\ninclude /etc/chrony/*.conf\n");
        string main = Write(dir, "chrony.conf", "include /etc/chrony/*.conf\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(["x.conf:1:server x.example"], Directives(conf));
    }

    [Fact]
    public void DeepIncludes_StopAtTheDepthLimit()
    {
        string dir = MigrationHelpers.Scratch();
        for (int i = 0; i < ChronyConfReader.MaxDepth + 5; i++)
        {
            Write(dir, $"etc/{i}.conf", $"server s{i}.example\ninclude /etc/{i + 1}.conf\n");
        }
        string main = Write(dir, "chrony.conf", "include /etc/0.conf\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        // The main file is level 1: it and MaxDepth - 1 included files are read.
        Assert.Equal(ChronyConfReader.MaxDepth - 1, Directives(conf).Length);
        Assert.Contains(conf.Lines, l => l.ReaderNote is { Outcome: MigrationOutcome.NotMapped } n && n.Message.Contains("deep", StringComparison.Ordinal));
    }

    [Fact]
    public void HugeIncludedFile_IsNotRead_ButReported()
    {
        string dir = MigrationHelpers.Scratch();
        Write(dir, "etc/huge.conf", new string('#', (int)ChronyConfReader.MaxFileBytes + 1));
        string main = Write(dir, "chrony.conf", "include /etc/huge.conf\nserver a.example\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(["chrony.conf:2:server a.example"], Directives(conf));
        Assert.Contains(conf.Lines, l => l.ReaderNote is { Outcome: MigrationOutcome.NotMapped } n && n.Message.Contains("bytes", StringComparison.Ordinal));
    }

    [Fact]
    public void ManyLargeFiles_StopAtTheTotalLimit()
    {
        string dir = MigrationHelpers.Scratch();
        string line = "rtcsync" + new string(' ', 1000) + "\n";
        string body = string.Concat(Enumerable.Repeat(line, (int)(ChronyConfReader.MaxFileBytes / line.Length)));
        for (int i = 0; i < 6; i++)
        {
            Write(dir, $"etc/chrony/conf.d/{i}.conf", body);
        }
        string main = Write(dir, "chrony.conf", "confdir /etc/chrony/conf.d\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        // Four files of just under MaxFileBytes fit in MaxTotalBytes with the main file's few bytes; the fifth and sixth are reported.
        Assert.Equal(4, conf.Lines.Where(l => l.ReaderNote is null).Select(l => l.File).Distinct().Count());
        Assert.Equal(2, conf.Lines.Count(l => l.ReaderNote is { Outcome: MigrationOutcome.NotMapped } n && n.Message.Contains("together", StringComparison.Ordinal)));
    }

    [Fact]
    public void HugeMainFile_IsAnError_NothingMigrated()
    {
        string dir = MigrationHelpers.Scratch();
        string main = Write(dir, "chrony.conf", "server a.example\n" + new string(' ', (int)ChronyConfReader.MaxFileBytes));

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.NotNull(conf.Error);
        Assert.Empty(conf.Lines);
    }

    [Fact]
    public void LongLine_IsReportedAndSkipped()
    {
        string dir = MigrationHelpers.Scratch();
        string main = Write(dir, "chrony.conf", $"server {new string('a', ChronyConfReader.MaxLineLength)}\nserver b.example\n");

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(["chrony.conf:2:server b.example"], Directives(conf));
        Assert.Equal(1, Assert.Single(conf.Lines, l => l.ReaderNote is not null).Number);
    }

    [Fact]
    public void ManyLines_StopAtTheLineLimit()
    {
        string dir = MigrationHelpers.Scratch();
        string main = Write(dir, "chrony.conf", string.Concat(Enumerable.Repeat("rtcsync\n", ChronyConfReader.MaxLines + 10)));

        ChronyConf conf = ChronyConfReader.Read(main, dir);

        Assert.Equal(ChronyConfReader.MaxLines, Directives(conf).Length);
        Assert.Single(conf.Lines, l => l.ReaderNote is not null);
    }

    [Fact]
    public void UnreadableMainFile_IsAnError()
    {
        ChronyConf conf = ChronyConfReader.Read(Path.Combine(MigrationHelpers.Scratch(), "missing.conf"));

        Assert.NotNull(conf.Error);
    }

    [Fact]
    public void IncludeWithAWildcardDirectory_IsReported_NotGuessed()
    {
        string dir = MigrationHelpers.Scratch();
        Write(dir, "etc/x/a.conf", "server a.example\n");
        string main = Write(dir, "chrony.conf", "include /etc/*/a.conf\n");

        ChronyLine line = Assert.Single(ChronyConfReader.Read(main, dir).Lines);

        Assert.Equal(MigrationOutcome.NotMapped, line.ReaderNote!.Outcome);
    }
}
