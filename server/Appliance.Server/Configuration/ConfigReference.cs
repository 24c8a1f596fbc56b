namespace Appliance.Server.Configuration;

/// <summary>
/// The generated part of docs/configuration.md: under each key's heading, its one-line doc and a
/// line of facts (type and range, default, reload, chrony.conf), both from <see cref="ConfigKeys"/>.
/// Everything else in the file is prose and is left as it is.
/// </summary>
public static class ConfigReference
{
    /// <summary>The heading a key's entry starts with.</summary>
    public static string Heading(ConfigKey key) => $"### `{key.Path}`";

    /// <summary>The lines under the heading that the table owns: the doc line, a blank line, the facts.</summary>
    public static string[] Block(ConfigKey key) => [key.Doc, "", "> " + Facts(key)];

    /// <summary>One line: how the value is written, its default, whether a reload applies it, its chrony.conf directive.</summary>
    public static string Facts(ConfigKey key)
    {
        var parts = new List<string> { Written(key) };
        // A source entry's kind is what the entry is: it has no default to speak of.
        if (key.Parent != "sources[]")
        {
            parts.Add(key.Required ? "required"
                : key.Default is { } value ? $"default `{value}`{(key.DefaultNote is { } note ? $" ({note})" : "")}"
                : $"default: {key.DefaultNote ?? "not set"}");
        }
        if (key.Requires is { } requires)
        {
            // "nts-ke: {}" stands for the section (with what it requires): say so, not "write {}".
            parts.Add(requires.EndsWith(": {}", StringComparison.Ordinal) ? $"needs the `{requires[..^4]}` section" : $"needs `{requires}`");
        }
        parts.Add(key.Reload == Reload.Live ? "reload: live" : "reload: restart");
        parts.Add(key.Chrony is { } chrony
            ? "chrony.conf: " + string.Join(", ", chrony.Split(", ").Select(d => $"`{d}`"))
            : "chrony.conf: none");
        return string.Join(" · ", parts);
    }

    /// <summary>
    /// <paramref name="markdown"/> with every key's block as the table has it. <paramref name="problems"/>
    /// names the keys that have no heading, and the headings that name no key.
    /// </summary>
    public static string Update(string markdown, out IReadOnlyList<string> problems)
    {
        var lines = markdown.Split('\n').ToList();
        var found = new List<string>();
        var issues = new List<string>();
        for (int i = 0; i < lines.Count; i++)
        {
            if (!lines[i].StartsWith("### `", StringComparison.Ordinal) || !lines[i].EndsWith('`'))
            {
                continue;
            }
            string path = lines[i][5..^1];
            if (ConfigKeys.Find(path) is not { } key)
            {
                issues.Add($"line {i + 1}: heading '{lines[i]}' names no key in ConfigKeys");
                continue;
            }
            if (found.Contains(path))
            {
                issues.Add($"line {i + 1}: a second heading for '{path}'");
            }
            found.Add(path);
            // A block already there is the doc line, a blank line and the facts ("> ..."): replace it.
            bool present = i + 3 < lines.Count && lines[i + 2].Length == 0 && lines[i + 3].StartsWith("> ", StringComparison.Ordinal);
            if (present)
            {
                lines.RemoveRange(i + 1, 3);
            }
            string[] block = Block(key);
            lines.InsertRange(i + 1, present || i + 1 >= lines.Count || lines[i + 1].Length == 0 ? block : [.. block, ""]);
            i += block.Length;
        }
        foreach (ConfigKey key in ConfigKeys.All.Where(k => !found.Contains(k.Path)))
        {
            issues.Add($"no heading '{Heading(key)}'");
        }
        problems = issues;
        return string.Join('\n', lines);
    }

    private static string Written(ConfigKey key)
    {
        string what = key.Type switch
        {
            ConfigType.Section => key.ShortForm is { } shortForm ? $"section, or just its `{shortForm}`" : "section",
            ConfigType.Boolean => "`true` or `false`",
            ConfigType.WholeNumber => $"integer, `{key.Min}` to `{key.Max}`",
            ConfigType.Duration => $"duration, `{key.Min}` to `{key.Max}`",
            ConfigType.SignedDuration => $"duration, `-{key.Max}` to `{key.Max}`",
            ConfigType.Choice => string.Join(" or ", key.Choices.Select(c => $"`{c}`")),
            ConfigType.ChoiceList => "list of " + string.Join(", ", key.Choices.Select(c => $"`{c}`")) + ", not empty",
            ConfigType.Address => "`address:port`",
            ConfigType.AddressList => key.NotEmpty ? "list of `address:port`, not empty" : "list of `address:port`",
            ConfigType.HostPort => "`host[:port]`",
            ConfigType.PrefixList => "list of addresses or CIDR prefixes",
            ConfigType.CpuList => $"list of CPU numbers, `{key.Min}` to `{key.Max}`",
            ConfigType.File => "path of an existing file",
            ConfigType.Device => "path of a device",
            ConfigType.Path => "path (written by the appliance)",
            ConfigType.User => "user name",
            ConfigType.Text => "text",
            ConfigType.SourceList => "list of sources",
            ConfigType.MappingList => "list of mappings",
            _ => throw new InvalidOperationException($"{key.Path}: type {key.Type}"),
        };
        return key.Words.Count == 0 ? what : what + ", or " + string.Join(" or ", key.Words.Select(w => $"`{w}`"));
    }
}
