using System.Globalization;
using System.Text.RegularExpressions;
using Appliance.Server.Configuration;
using Appliance.Server.Migration;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Tests;

/// <summary>Migrates chrony.conf text in a scratch directory and reads values back out of the YAML.</summary>
internal static partial class MigrationHelpers
{
    /// <summary>A fresh directory for chrony files; used as --root too, so nothing of this machine's /etc is read.</summary>
    public static string Scratch() => Directory.CreateTempSubdirectory("appliance-migrate").FullName;

    /// <summary>Writes <paramref name="text"/> as DIR/chrony.conf and migrates it with DIR as the root.</summary>
    public static Migrated Migrate(string text, string? directory = null)
    {
        directory ??= Scratch();
        string path = Path.Combine(directory, "chrony.conf");
        File.WriteAllText(path, text);
        return MigrateFile(path, directory);
    }

    public static Migrated MigrateFile(string path, string? root)
    {
        ChronyConf conf = ChronyConfReader.Read(path, root);
        Assert.Null(conf.Error);
        MigrationResult result = ChronyMapper.Map(conf, path);
        string yaml = result.Config.ToYaml("test");
        ConfigResult bound = ConfigLoader.Bind(yaml);
        Assert.True(bound.IsValid, $"the migrated YAML does not bind:\n{yaml}\n{string.Join("\n", bound.Errors.Select(e => e.Format("yaml")))}");
        return new Migrated(yaml, result, Load(yaml));
    }

    public static YamlMappingNode Load(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    /// <summary>
    /// The value at <paramref name="path"/> ("ntp.access.allow", "sources[1].gpsd.pps"): a scalar's
    /// text, a sequence's scalars joined by ", ", "{}" for a mapping, "(absent)" when not written.
    /// </summary>
    public static string Value(YamlNode root, string path)
    {
        YamlNode? node = root;
        foreach (string segment in path.Split('.'))
        {
            Match m = Segment().Match(segment);
            string name = m.Groups[1].Value;
            if (node is not YamlMappingNode mapping || !mapping.Children.TryGetValue(new YamlScalarNode(name), out node))
            {
                return "(absent)";
            }
            if (m.Groups[2].Success)
            {
                int index = int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
                if (node is not YamlSequenceNode sequence || index >= sequence.Children.Count)
                {
                    return "(absent)";
                }
                node = sequence.Children[index];
            }
        }
        return node switch
        {
            YamlScalarNode scalar => scalar.Value ?? "",
            YamlSequenceNode sequence => string.Join(", ", sequence.Children.Select(c => (c as YamlScalarNode)?.Value ?? "{}")),
            _ => "{}",
        };
    }

    /// <summary>Every scalar of the tree by its path, for comparing two trees key by key.</summary>
    public static SortedDictionary<string, string> Flatten(YamlNode node, string prefix = "")
    {
        var flat = new SortedDictionary<string, string>(StringComparer.Ordinal);
        switch (node)
        {
            case YamlMappingNode mapping:
                foreach ((YamlNode key, YamlNode value) in mapping.Children)
                {
                    string name = ((YamlScalarNode)key).Value!;
                    foreach ((string k, string v) in Flatten(value, prefix.Length == 0 ? name : $"{prefix}.{name}"))
                    {
                        flat[k] = v;
                    }
                }
                break;
            case YamlSequenceNode sequence:
                for (int i = 0; i < sequence.Children.Count; i++)
                {
                    foreach ((string k, string v) in Flatten(sequence.Children[i], $"{prefix}[{i}]"))
                    {
                        flat[k] = v;
                    }
                }
                if (sequence.Children.Count == 0)
                {
                    flat[prefix] = "[]";
                }
                break;
            case YamlScalarNode scalar:
                flat[prefix] = scalar.Value ?? "";
                break;
        }
        return flat;
    }

    [GeneratedRegex(@"^([^\[]+)(?:\[(\d+)\])?$")]
    private static partial Regex Segment();
}

/// <summary>A migration's YAML, its notes, and the YAML as a tree.</summary>
internal sealed record Migrated(string Yaml, MigrationResult Result, YamlMappingNode Tree)
{
    public string this[string path] => MigrationHelpers.Value(Tree, path);

    /// <summary>The note of the directive on <paramref name="line"/> of the main file.</summary>
    public MigrationNote NoteAt(int line) => Assert.Single(Result.Notes, n => n.Line == line && n.File.EndsWith("chrony.conf", StringComparison.Ordinal));

    public MigrationNote FileNote(string what) => Assert.Single(Result.Notes, n => n.Line == 0 && n.Directive == what);
}
