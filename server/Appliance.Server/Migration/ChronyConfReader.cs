
namespace Appliance.Server.Migration;

/// <summary>One directive line of a chrony configuration: its name (lower case) and its words.</summary>
/// <param name="File">The file as chrony names it (the path written in include/confdir, or the path given).</param>
/// <param name="FromSourcesFile">Read from a sourcedir's .sources file: chrony takes only server, pool and peer there.</param>
public sealed record ChronyLine(string File, int Number, string Directive, IReadOnlyList<string> Args, bool FromSourcesFile = false)
{
    /// <summary>Set on what the reader itself handled (include, confdir, sourcedir, a file it could not read): the report line, in reading order.</summary>
    public MigrationNote? ReaderNote { get; init; }

    public string Text => Args.Count == 0 ? Directive : $"{Directive} {string.Join(' ', Args)}";
}

/// <summary>What <see cref="ChronyConfReader.Read"/> found: the lines in chrony's order (with the reader's own notes among them).</summary>
/// <param name="Error">The main file could not be read: nothing was migrated.</param>
public sealed record ChronyConf(IReadOnlyList<ChronyLine> Lines, string? Error);

/// <summary>
/// Reads chrony.conf as chronyd does (chrony.conf(5), "Miscellaneous"): a directive per line, comment
/// lines starting with one of <c>! ; # %</c> after optional spaces (a comment character later in a
/// line is just a word, as in chrony's CPS_NormalizeLine), <c>include GLOB</c> in place,
/// <c>confdir DIR...</c> (*.conf) and <c>sourcedir DIR...</c> (*.sources): the files of all the
/// directories in the lexicographical order of their names, a name in several directories read
/// from the first. Bounded: file size, line length, lines, files, include depth, and include loops
/// are each reported, never thrown. With a root, absolute paths are read under it: the
/// configuration of another machine, copied with its /etc.
/// </summary>
public sealed class ChronyConfReader
{
    /// <summary>Larger files are not read: a real chrony.conf is a few kB.</summary>
    public const long MaxFileBytes = 1 << 20;

    /// <summary>chrony's MAX_LINE_LENGTH.</summary>
    public const int MaxLineLength = 2048;

    public const int MaxLines = 100_000;

    public const int MaxFiles = 1000;

    /// <summary>All files together: with <see cref="MaxFiles"/> of <see cref="MaxFileBytes"/> a confdir could otherwise name a gigabyte.</summary>
    public const long MaxTotalBytes = 4 * MaxFileBytes;

    public const int MaxDepth = 10;

    /// <summary>chrony reads at most 10 directories from one confdir or sourcedir.</summary>
    public const int MaxDirectories = 10;

    private static readonly char[] s_commentStarts = ['!', ';', '#', '%'];

    private readonly string? _root;
    private readonly string _mainDirectory;
    private readonly List<ChronyLine> _lines = [];
    private readonly List<string> _stack = [];
    private int _files;
    private long _bytes;

    private ChronyConfReader(string? root, string mainDirectory)
    {
        _root = root;
        _mainDirectory = mainDirectory;
    }

    /// <summary>Reads <paramref name="path"/> and everything it includes; <paramref name="root"/> is where absolute paths in it are looked up (null: /).</summary>
    public static ChronyConf Read(string path, string? root = null)
    {
        string full = Path.GetFullPath(path);
        var reader = new ChronyConfReader(root, Path.GetDirectoryName(full) ?? "/");
        string? error = reader.ReadFile(full, path, fromSources: false, mustExist: true);
        return new ChronyConf(reader._lines, error);
    }

    /// <summary>A path written in the configuration, as this machine finds it.</summary>
    private string Resolve(string written)
    {
        if (Path.IsPathRooted(written))
        {
            return _root is null ? written : Path.Combine(_root, written.TrimStart('/'));
        }
        // chronyd runs in /; a relative path there is unusual: read it beside the main file.
        return Path.Combine(_root is null ? _mainDirectory : _root, written);
    }

    /// <returns>An error for the main file that could not be read; null otherwise (included files' problems are notes).</returns>
    private string? ReadFile(string path, string name, bool fromSources, bool mustExist)
    {
        string full = Path.GetFullPath(path);
        if (_stack.Contains(full))
        {
            Note(name, 0, "include", MigrationOutcome.NotMapped, $"include loop: {string.Join(" -> ", _stack.Select(Path.GetFileName))} -> {Path.GetFileName(full)}; not read again");
            return null;
        }
        if (_stack.Count >= MaxDepth)
        {
            Note(name, 0, "include", MigrationOutcome.NotMapped, $"included {MaxDepth} files deep: not read (chrony.conf nesting this deep is almost certainly a loop)");
            return null;
        }
        if (++_files > MaxFiles)
        {
            Note(name, 0, "include", MigrationOutcome.NotMapped, $"more than {MaxFiles} files: not read");
            return null;
        }
        string text;
        try
        {
            var info = new FileInfo(full);
            if (info.Exists && info.Length > MaxFileBytes)
            {
                string problem = $"{info.Length} bytes, more than the {MaxFileBytes} a configuration may have: not read";
                if (_stack.Count == 0)
                {
                    return $"{name}: {problem}";
                }
                Note(name, 0, "(file)", MigrationOutcome.NotMapped, problem);
                return null;
            }
            if (info.Exists && (_bytes += info.Length) > MaxTotalBytes)
            {
                Note(name, 0, "(file)", MigrationOutcome.NotMapped, $"the files read so far pass {MaxTotalBytes} bytes together: not read");
                return null;
            }
            text = File.ReadAllText(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (_stack.Count == 0 && mustExist)
            {
                return $"cannot read {name}: {e.Message}";
            }
            Note(name, 0, "(file)", MigrationOutcome.NotMapped, $"cannot read it: {e.Message}");
            return null;
        }

        _stack.Add(full);
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (_lines.Count >= MaxLines)
            {
                Note(name, i + 1, "(file)", MigrationOutcome.NotMapped, $"more than {MaxLines} directives: the rest is not read");
                break;
            }
            string line = lines[i];
            if (line.Length > MaxLineLength)
            {
                Note(name, i + 1, "(line)", MigrationOutcome.NotMapped, $"longer than chrony's {MaxLineLength} characters: chronyd refuses it; not read");
                continue;
            }
            string[] words = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0 || s_commentStarts.Contains(words[0][0]))
            {
                continue;
            }
            var directive = new ChronyLine(name, i + 1, words[0].ToLowerInvariant(), words[1..], fromSources);
            switch (directive.Directive)
            {
                case "include":
                    Include(directive);
                    break;
                case "confdir":
                    Directories(directive, ".conf", fromSources: false);
                    break;
                case "sourcedir":
                    Directories(directive, ".sources", fromSources: true);
                    break;
                default:
                    _lines.Add(directive);
                    break;
            }
        }
        _stack.RemoveAt(_stack.Count - 1);
        return null;
    }

    private void Include(ChronyLine line)
    {
        if (line.Args.Count != 1)
        {
            Note(line, MigrationOutcome.NotMapped, "include takes one pattern: line not read");
            return;
        }
        string pattern = line.Args[0];
        string directory = Path.GetDirectoryName(pattern) ?? "";
        string filePattern = Path.GetFileName(pattern);
        if (directory.IndexOfAny(['*', '?', '[']) >= 0)
        {
            Note(line, MigrationOutcome.NotMapped, "a wildcard in a directory name is not followed (only in the file name): list the files, or include each directory's pattern");
            return;
        }
        var files = new List<string>();
        string resolvedDirectory = Resolve(directory.Length == 0 ? "." : directory);
        if (filePattern.IndexOfAny(['*', '?', '[']) < 0)
        {
            if (File.Exists(Resolve(pattern)))
            {
                files.Add(filePattern);
            }
        }
        else if (Directory.Exists(resolvedDirectory))
        {
            files.AddRange(Directory.EnumerateFiles(resolvedDirectory).Select(Path.GetFileName).OfType<string>()
                .Where(f => GlobMatches(filePattern, f)).Order(StringComparer.Ordinal));
        }
        if (files.Count == 0)
        {
            // chronyd stops with a fatal error: at least one file must exist (chrony.conf(5), include).
            Note(line, MigrationOutcome.NotMapped, $"no file matches {pattern} here (chronyd would refuse to start): nothing read");
            return;
        }
        Note(line, MigrationOutcome.NoCounterpart, $"read {string.Join(", ", files)} in its place");
        foreach (string file in files)
        {
            string written = Path.Combine(directory, file);
            ReadFile(Resolve(written), written, line.FromSourcesFile, mustExist: false);
        }
    }

    private void Directories(ChronyLine line, string suffix, bool fromSources)
    {
        if (line.Args.Count == 0 || line.Args.Count > MaxDirectories)
        {
            Note(line, MigrationOutcome.NotMapped, $"{line.Directive} takes 1 to {MaxDirectories} directories: line not read");
            return;
        }
        // The first directory that has a file of a name supplies it (chrony.conf(5), confdir).
        var byName = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (string directory in line.Args)
        {
            string resolved = Resolve(directory);
            if (!Directory.Exists(resolved))
            {
                missing.Add(directory);
                continue;
            }
            foreach (string file in Directory.EnumerateFiles(resolved, "*" + suffix).Select(Path.GetFileName).OfType<string>())
            {
                byName.TryAdd(file, Path.Combine(directory, file));
            }
        }
        string found = byName.Count == 0 ? $"no {suffix} file" : $"read {string.Join(", ", byName.Values)}";
        string absent = missing.Count == 0 ? "" : $"; not on this machine: {string.Join(", ", missing)} (a file there on the machine being migrated is not in the output: copy it, or run with --root on a copy of that machine's /)";
        string why = fromSources ? "; the appliance has no directory of dynamic sources: list them under sources, and reload" : "";
        Note(line, missing.Count == 0 ? MigrationOutcome.NoCounterpart : MigrationOutcome.MappedWithDifference, found + absent + why);
        foreach (string written in byName.Values)
        {
            ReadFile(Resolve(written), written, fromSources, mustExist: false);
        }
    }

    /// <summary>
    /// Whether a file name matches a glob(7) pattern, as chronyd's glob(3) matches it: <c>*</c>,
    /// <c>?</c> and bracket expressions (<c>[a-z]</c>, <c>[!x]</c>; a <c>]</c> right after the
    /// <c>[</c> or <c>[!</c> is a member; a <c>[</c> no <c>]</c> closes matches itself; a reversed
    /// range matches nothing); a leading dot only by a leading dot. Matched directly, not through a
    /// regex, so no pattern is refused and none takes more than name × pattern steps.
    /// </summary>
    internal static bool GlobMatches(ReadOnlySpan<char> pattern, ReadOnlySpan<char> name)
    {
        if (name.StartsWith('.') && !pattern.StartsWith('.'))
        {
            return false;
        }
        int p = 0, n = 0, starPattern = -1, starName = 0;
        while (n < name.Length)
        {
            if (p < pattern.Length)
            {
                char c = pattern[p];
                if (c == '*')
                {
                    starPattern = p++;
                    starName = n;
                    continue;
                }
                if (c == '?')
                {
                    p++;
                    n++;
                    continue;
                }
                if (c == '[' && BracketEnd(pattern, p) is int close and > 0)
                {
                    if (InBracket(pattern[(p + 1)..close], name[n]))
                    {
                        p = close + 1;
                        n++;
                        continue;
                    }
                }
                else if (c == name[n])
                {
                    p++;
                    n++;
                    continue;
                }
            }
            if (starPattern < 0)
            {
                return false;
            }
            // Backtrack: the last '*' takes one more character.
            p = starPattern + 1;
            n = ++starName;
        }
        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }
        return p == pattern.Length;
    }

    /// <summary>The index of the <c>]</c> closing the bracket expression opened at <paramref name="open"/>, or -1.</summary>
    private static int BracketEnd(ReadOnlySpan<char> pattern, int open)
    {
        int first = open + 1 < pattern.Length && pattern[open + 1] == '!' ? open + 2 : open + 1;
        if (first >= pattern.Length)
        {
            return -1;
        }
        int close = pattern[(first + 1)..].IndexOf(']');
        return close < 0 ? -1 : first + 1 + close;
    }

    /// <summary>Whether <paramref name="c"/> is in a bracket expression's body (between <c>[</c> and <c>]</c>).</summary>
    private static bool InBracket(ReadOnlySpan<char> body, char c)
    {
        bool negate = body[0] == '!';
        ReadOnlySpan<char> set = negate ? body[1..] : body;
        bool found = false;
        for (int i = 0; i < set.Length; i++)
        {
            if (i + 2 < set.Length && set[i + 1] == '-')
            {
                found |= c >= set[i] && c <= set[i + 2];
                i += 2;
            }
            else
            {
                found |= c == set[i];
            }
        }
        return found != negate;
    }

    private void Note(ChronyLine line, MigrationOutcome outcome, string message) =>
        Note(line.File, line.Number, line.Directive, outcome, message);

    private void Note(string file, int line, string directive, MigrationOutcome outcome, string message) =>
        _lines.Add(new ChronyLine(file, line, directive, []) { ReaderNote = new MigrationNote(file, line, directive, outcome, message) });
}
