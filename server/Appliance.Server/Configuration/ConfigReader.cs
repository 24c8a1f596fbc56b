using System.Globalization;
using System.Net;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Configuration;

/// <summary>
/// One mapping of the file as the binders see it: its keys checked against the table, each value
/// either written or taken from the table's default.
/// </summary>
internal sealed class Section
{
    private readonly Dictionary<string, YamlNode> _children;

    public Section(string path, YamlNode node, Dictionary<string, YamlNode> children, string? word = null, bool invalid = false)
    {
        Path = path;
        Node = node;
        _children = children;
        Word = word;
        Invalid = invalid;
    }

    /// <summary>The table path of the mapping: "ntp", "sources[].ntp", "" for the top level.</summary>
    public string Path { get; }

    /// <summary>Where an error about the section as a whole points.</summary>
    public YamlNode Node { get; }

    /// <summary>The bare word written in place of the mapping (<c>off</c>, <c>null</c>), or null.</summary>
    public string? Word { get; }

    /// <summary>The value was not a mapping (an error already said so): the section reads as empty.</summary>
    public bool Invalid { get; }

    /// <summary>Written as <c>null</c> (or not written, with a null default): the section is not set.</summary>
    public bool IsNull => Word == "null";

    public bool Has(ConfigKey key) => _children.ContainsKey(key.Name);

    /// <summary>The value written for <paramref name="key"/>, or null.</summary>
    public YamlNode? Find(ConfigKey key) => _children.GetValueOrDefault(key.Name);

    /// <summary>The value written for <paramref name="key"/>, or else the table's default; null when neither exists.</summary>
    public YamlNode? this[ConfigKey key] => _children.GetValueOrDefault(key.Name) ?? key.DefaultNode;
}

/// <summary>
/// The YAML primitives of the configuration: scalars, numbers, booleans, durations, choices,
/// addresses, lists and mappings, read as the table (<see cref="ConfigKeys"/>) describes each key.
/// Every problem becomes a <see cref="ConfigError"/> with the line and column of the node and the
/// key's fix; a reader goes on after an error so that one pass reports every one. A value read in
/// error comes back as zero, empty or null: the configuration is then discarded, so it matters only
/// to checks across keys, which use <see cref="ErrorCount"/> to stay quiet about echoes.
/// Reads nothing but the YAML: the file system is <see cref="ConfigPreflight"/>'s.
/// </summary>
internal sealed class ConfigReader
{
    private readonly List<ConfigError> _errors = [];
    private readonly List<FileReference> _files = [];
    private readonly HashSet<(string Path, string Name)> _misspelled = [];

    public IReadOnlyList<ConfigError> Errors => _errors;

    public int ErrorCount => _errors.Count;

    /// <summary>Files and devices the configuration names, for <see cref="ConfigPreflight"/>.</summary>
    public IReadOnlyList<FileReference> Files => _files;

    public void Error(YamlNode node, string message, string fix) =>
        _errors.Add(new ConfigError((int)node.Start.Line, (int)node.Start.Column, message, fix));

    public void Error(YamlNode node, string message, ConfigKey key) => Error(node, message, key.Fix);

    public void Error(YamlNode node, string message, ConfigRule rule) => Error(node, message, rule.Fix);

    /// <summary>
    /// Whether an unknown key in the mapping at <paramref name="path"/> looked like a misspelling of
    /// <paramref name="name"/>: then a "missing" error about that name would only echo the unknown key.
    /// </summary>
    public bool Misspelled(string path, string name) => _misspelled.Contains((path, name));

    /// <summary>The top level: a mapping of the sections.</summary>
    public Section Root(YamlNode node)
    {
        return new Section("", node, IsNull(node) ? [] : Mapping(node, "", ConfigRules.TopLevel.Fix) ?? []);
    }

    /// <summary>
    /// The section <paramref name="key"/> of <paramref name="parent"/>: as written, or the table's
    /// default when not. A null, a bare word or a short form scalar (<see cref="ConfigKey.ShortForm"/>)
    /// stand for the mapping as the table allows.
    /// </summary>
    public Section Section(Section parent, ConfigKey key)
    {
        // Left out, the table's default is read in its place; errors about the section as a whole
        // (a required key missing) then point at the parent, the mapping it was left out of.
        YamlNode? written = parent.Find(key);
        return SectionAt(written ?? key.DefaultNode ?? new YamlScalarNode(null), key, written ?? parent.Node);
    }

    /// <summary>A section from a node of its own (a list entry's value); <paramref name="at"/> is where errors about it point.</summary>
    public Section SectionAt(YamlNode node, ConfigKey key, YamlNode? at = null)
    {
        at ??= node;
        if (IsNull(node))
        {
            return new Section(key.Path, at, [], "null");
        }
        if (node is YamlScalarNode { Value: { } text } scalar)
        {
            if (key.Words.Contains(text))
            {
                return new Section(key.Path, at, [], text);
            }
            if (key.ShortForm is { } shortForm)
            {
                return new Section(key.Path, at, new Dictionary<string, YamlNode>(StringComparer.Ordinal) { [shortForm] = scalar });
            }
        }
        return Mapping(node, key.Path, key.Fix) is { } children
            ? new Section(key.Path, at, children)
            : new Section(key.Path, at, [], invalid: true);
    }

    /// <summary>A mapping whose keys are checked against the table: unknown keys (with "did you mean") and duplicates are errors.</summary>
    public Dictionary<string, YamlNode>? Mapping(YamlNode node, string path, string fix)
    {
        string where = path.Length == 0 ? "the top level" : $"'{path}'";
        if (node is not YamlMappingNode mapping)
        {
            Error(node, $"{where} must be a mapping of keys to values", fix);
            return null;
        }
        IReadOnlyList<ConfigKey> allowed = ConfigKeys.ChildrenOf(path);
        var children = new Dictionary<string, YamlNode>(StringComparer.Ordinal);
        foreach ((YamlNode keyNode, YamlNode value) in mapping.Children)
        {
            string name = (keyNode as YamlScalarNode)?.Value ?? "";
            string full = path.Length == 0 ? name : $"{path}.{name}";
            if (!allowed.Any(k => k.Name == name))
            {
                string? near = Closest(name, allowed.Select(k => k.Name));
                if (near is not null)
                {
                    _misspelled.Add((path, near));
                }
                // In a list entry, the form of an entry too: a key there is most often a setting
                // written without the kind it belongs to.
                string form = path.EndsWith("[]", StringComparison.Ordinal) ? $"; {fix}" : "";
                Error(keyNode, $"unknown key '{full}'",
                    $"{(near is null ? "" : $"did you mean '{near}'? ")}keys allowed in {where}: {string.Join(", ", allowed.Select(k => k.Name))} (see docs/configuration.md){form}");
            }
            else if (!children.TryAdd(name, value))
            {
                Error(keyNode, $"duplicate key '{full}'", ConfigRules.DuplicateKey);
            }
        }
        return children;
    }

    /// <summary>The value of a required key; null (and an error, unless it echoes a misspelling) when it is missing.</summary>
    public YamlNode? Required(Section section, ConfigKey key)
    {
        if (section.Find(key) is { } node)
        {
            return node;
        }
        // Not when the section itself was wrong or the key misspelled: that error is the root, this would be its echo.
        if (!section.Invalid && !Misspelled(section.Path, key.Name))
        {
            Error(section.Node, $"'{section.Path}' has no {key.Name}", key);
        }
        return null;
    }

    /// <summary>Whether the value of <paramref name="key"/> is the bare word <paramref name="word"/> (one of its <see cref="ConfigKey.Words"/>).</summary>
    public static bool Is(YamlNode? node, string word) =>
        word == "null" ? node is null || IsNull(node) : node is YamlScalarNode { Style: ScalarStyle.Plain } scalar && scalar.Value == word;

    public string? Scalar(YamlNode node, ConfigKey key)
    {
        if (node is YamlScalarNode { Value: { } value })
        {
            return value;
        }
        Error(node, $"'{key.Path}' must be a single value", key);
        return null;
    }

    public string? Text(Section section, ConfigKey key) =>
        section[key] is { } node && !IsNull(node) ? Scalar(node, key) : null;

    public bool Boolean(Section section, ConfigKey key)
    {
        YamlNode node = section[key] ?? throw NoDefault(key);
        switch (Scalar(node, key))
        {
            case "true": return true;
            case "false" or null: return false;
            case string text:
                Error(node, $"'{key.Path}' is '{text}'", key);
                return false;
        }
    }

    public int Integer(Section section, ConfigKey key) => Integer(section[key] ?? throw NoDefault(key), key);

    public int Integer(YamlNode node, ConfigKey key)
    {
        if (Scalar(node, key) is not { } text)
        {
            return 0;
        }
        (long min, long max) = key.IntegerRange;
        if (int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max)
        {
            return value;
        }
        Error(node, $"'{key.Path}' is '{text}'", key);
        return 0;
    }

    /// <summary>A duration such as 500ms, 2s, 15m, 24h, 7d; with a <see cref="ConfigType.SignedDuration"/>, optionally negative.</summary>
    public TimeSpan Duration(Section section, ConfigKey key)
    {
        YamlNode node = section[key] ?? throw NoDefault(key);
        if (Scalar(node, key) is not { } text)
        {
            return TimeSpan.Zero;
        }
        bool negative = key.Type == ConfigType.SignedDuration && text.StartsWith('-');
        (TimeSpan min, TimeSpan max) = key.DurationRange;
        if (DurationText.TryParse(negative ? text[1..] : text, out TimeSpan magnitude))
        {
            TimeSpan value = negative ? -magnitude : magnitude;
            if (value >= min && value <= max)
            {
                return value;
            }
        }
        Error(node, $"'{key.Path}' is '{text}'", key);
        return TimeSpan.Zero;
    }

    /// <summary>One of the key's <see cref="ConfigKey.Choices"/>; on error, its first.</summary>
    public string Choice(Section section, ConfigKey key)
    {
        YamlNode node = section[key] ?? throw NoDefault(key);
        string? text = Scalar(node, key);
        if (text is not null && key.Choices.Contains(text))
        {
            return text;
        }
        if (text is not null)
        {
            Error(node, $"'{key.Path}' is '{text}'", key);
        }
        return key.Choices[0];
    }

    /// <summary>One of the key's <see cref="ConfigKey.Choices"/>, as the enum member of the same name.</summary>
    public TEnum Choice<TEnum>(Section section, ConfigKey key) where TEnum : struct, Enum =>
        Enum.Parse<TEnum>(Choice(section, key), ignoreCase: true);

    /// <summary>A list of the key's <see cref="ConfigKey.Choices"/>, in the order written; on error, those that were right.</summary>
    public IReadOnlyList<string> Choices(Section section, ConfigKey key)
    {
        YamlNode node = section[key] ?? throw NoDefault(key);
        var chosen = new List<string>();
        if (node is YamlSequenceNode { Children.Count: 0 })
        {
            Error(node, $"'{key.Path}' is empty", key);
        }
        foreach (YamlNode item in Items(node, key))
        {
            if (Scalar(item, key) is not { } text)
            {
                continue;
            }
            if (!key.Choices.Contains(text))
            {
                Error(item, $"'{key.Path}' has '{text}'", key);
            }
            else if (chosen.Contains(text))
            {
                Error(item, $"'{key.Path}' has '{text}' twice", key);
            }
            else
            {
                chosen.Add(text);
            }
        }
        return chosen;
    }

    /// <summary>The entries of a list; none (and an error) when the value is not a list.</summary>
    public IEnumerable<YamlNode> Items(YamlNode node, ConfigKey key)
    {
        if (node is YamlSequenceNode sequence)
        {
            if (key.NotEmpty && sequence.Children.Count == 0)
            {
                Error(node, $"'{key.Path}' is empty", key);
            }
            return sequence.Children;
        }
        Error(node, $"'{key.Path}' must be a list", key);
        return [];
    }

    /// <summary>An IP literal and a port: what the appliance binds to.</summary>
    public IPEndPoint? Address(YamlNode node, ConfigKey key)
    {
        if (Scalar(node, key) is not { } text)
        {
            return null;
        }
        if (AddressText.TryParse(text, AddressRules.Listen, out HostPort address, out string problem))
        {
            return address.EndPoint;
        }
        Error(node, $"'{key.Path}' has '{text}', which is not an address:port: {problem}", key);
        return null;
    }

    /// <summary>A host name or IP literal with an optional port: what the appliance connects to.</summary>
    public HostPort? Remote(YamlNode node, ConfigKey key, int defaultPort)
    {
        if (Scalar(node, key) is not { } text)
        {
            return null;
        }
        if (AddressText.TryParse(text, AddressRules.Remote(defaultPort), out HostPort address, out string problem))
        {
            return address;
        }
        Error(node, $"'{key.Path}' is '{text}', which is not host[:port]: {problem}", key);
        return null;
    }

    /// <summary>The path of a file or device the appliance will open; its existence is checked by <see cref="ConfigPreflight"/>.</summary>
    public string? File(Section section, ConfigKey key) => section[key] is { } node && !IsNull(node) ? File(node, key) : null;

    public string? File(YamlNode node, ConfigKey key)
    {
        if (Scalar(node, key) is not { } path)
        {
            return null;
        }
        if (path.Length == 0)
        {
            Error(node, $"'{key.Path}' is empty", key);
            return null;
        }
        _files.Add(new FileReference(key, path, (int)node.Start.Line, (int)node.Start.Column));
        return path;
    }

    /// <summary>A user name; that the user exists is checked by <see cref="ConfigPreflight"/>, with the files.</summary>
    public string? User(Section section, ConfigKey key)
    {
        if (section[key] is not { } node || IsNull(node) || Scalar(node, key) is not { } name)
        {
            return null;
        }
        // What useradd(8) and systemd accept, less the odd corners: a letter or _ first, then letters, digits, _ . -
        if (name.Length is 0 or > 32 || !(char.IsAsciiLetter(name[0]) || name[0] == '_')
            || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-'))
        {
            Error(node, $"'{key.Path}' is '{name}', which is not a user name", key);
            return null;
        }
        _files.Add(new FileReference(key, name, (int)node.Start.Line, (int)node.Start.Column));
        return name;
    }

    public static bool IsNull(YamlNode node) =>
        node is YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" };

    private static InvalidOperationException NoDefault(ConfigKey key) => new($"{key.Path} has no default in the table");

    private static string? Closest(string key, IEnumerable<string> candidates)
    {
        string? best = null;
        int bestDistance = 3;
        foreach (string candidate in candidates)
        {
            int distance = Levenshtein(key, candidate);
            if (distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }
        return best;
    }

    private static int Levenshtein(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = Math.Min(Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }
}
