using System.Collections;
using System.Reflection;
using Appliance.Server.Configuration;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Tests;

/// <summary>
/// Builds whole configurations around a fragment: a YAML snippet placed at a table path, with the
/// least context it needs to be valid (the section's required keys from their examples, the
/// settings a key <see cref="ConfigKey.Requires"/>, a time source). Used to try every key, every
/// default, every bound and every fix example through the real loader.
/// </summary>
internal static class ConfigFragment
{
    /// <summary>The snippet <paramref name="yaml"/> written at <paramref name="context"/>, completed.</summary>
    public static YamlMappingNode At(string context, string yaml) => Complete(Place(context, Parse(yaml)));

    /// <summary><paramref name="key"/> set to the YAML value <paramref name="value"/>, completed.</summary>
    public static YamlMappingNode With(ConfigKey key, string value) => At(key.Path, $"{key.Name}: {value}");

    /// <summary>
    /// A tree with <paramref name="value"/> at <paramref name="context"/>: a mapping whose keys all
    /// belong to the mapping at the context or one of its ancestors goes there; anything else is
    /// the value of the key at <paramref name="context"/>.
    /// </summary>
    public static YamlMappingNode Place(string context, YamlNode value)
    {
        var root = new YamlMappingNode();
        if (value is YamlMappingNode mapping && mapping.Children.Count > 0)
        {
            for (string? path = context; path is not null; path = ParentOf(path))
            {
                IReadOnlyList<ConfigKey> children = ConfigKeys.ChildrenOf(path);
                if (mapping.Children.Keys.All(k => children.Any(c => c.Name == ((YamlScalarNode)k).Value)))
                {
                    YamlMappingNode target = MappingAt(root, path);
                    foreach ((YamlNode k, YamlNode v) in mapping.Children)
                    {
                        target.Children[k] = v;
                    }
                    return root;
                }
            }
        }
        ConfigKey key = ConfigKeys.Find(context) ?? throw new ArgumentException($"no key {context} for a value");
        MappingAt(root, key.Parent).Children[new YamlScalarNode(key.Name)] = value;
        return root;
    }

    /// <summary>Adds what a valid configuration needs around what is there.</summary>
    public static YamlMappingNode Complete(YamlMappingNode root)
    {
        // Requirements first: they may add sections whose required keys the second pass fills.
        Walk(root, "", (path, mapping) =>
        {
            foreach (ConfigKey key in ConfigKeys.ChildrenOf(path).Where(k => k.Requires is not null && mapping.Children.ContainsKey(new YamlScalarNode(k.Name))))
            {
                Merge(root, Place(key.Parent, Parse(key.Requires!)));
            }
        });
        Walk(root, "", (path, mapping) =>
        {
            foreach (ConfigKey key in ConfigKeys.ChildrenOf(path).Where(k => k.Required && !mapping.Children.ContainsKey(new YamlScalarNode(k.Name))))
            {
                mapping.Children[new YamlScalarNode(key.Name)] = Parse(key.ExampleValue!);
            }
        });
        // A time source: a source, unless sources are what is being tried; then the local clock.
        if (!root.Children.ContainsKey(new YamlScalarNode("sources")))
        {
            root.Children[new YamlScalarNode("sources")] = Parse(ConfigKeys.Sources.Example!);
        }
        else if (!root.Children.TryGetValue(new YamlScalarNode("clock"), out YamlNode? clock))
        {
            root.Children[new YamlScalarNode("clock")] = Parse("{ local: {} }");
        }
        else if (clock is YamlMappingNode clockMapping && !clockMapping.Children.ContainsKey(new YamlScalarNode("local")))
        {
            clockMapping.Children[new YamlScalarNode("local")] = Parse("{}");
        }
        return root;
    }

    public static string Render(YamlNode root)
    {
        var writer = new StringWriter();
        new YamlStream(new YamlDocument(root)).Save(writer, assignAnchors: false);
        return writer.ToString();
    }

    /// <summary>The loader's verdict on the tree, from the text alone.</summary>
    public static ConfigResult Bind(YamlNode root) => ConfigLoader.Bind(Render(root));

    /// <summary>Removes the value of <paramref name="key"/> wherever the tree has it.</summary>
    public static void Remove(YamlMappingNode root, ConfigKey key) =>
        Walk(root, "", (path, mapping) =>
        {
            if (path == key.Parent)
            {
                mapping.Children.Remove(new YamlScalarNode(key.Name));
            }
        });

    /// <summary>A YAML snippet: a value (<c>2s</c>, <c>[0, 1]</c>), a mapping (<c>interval: 2s</c>) or a list (<c>- ntp: ...</c>).</summary>
    public static YamlNode Parse(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return stream.Documents.Count == 0 ? new YamlScalarNode(null) : stream.Documents[0].RootNode;
    }

    /// <summary>Every mapping of the tree with its table path (list entries as "name[]").</summary>
    private static void Walk(YamlMappingNode mapping, string path, Action<string, YamlMappingNode> visit)
    {
        visit(path, mapping);
        foreach ((YamlNode k, YamlNode v) in mapping.Children.ToArray())
        {
            string child = Join(path, ((YamlScalarNode)k).Value!);
            if (v is YamlMappingNode m)
            {
                Walk(m, child, visit);
            }
            else if (v is YamlSequenceNode s)
            {
                foreach (YamlMappingNode entry in s.Children.OfType<YamlMappingNode>())
                {
                    Walk(entry, child + "[]", visit);
                }
            }
        }
    }

    /// <summary>The mapping at a table path, created (with one-entry lists for "name[]") where missing.</summary>
    private static YamlMappingNode MappingAt(YamlMappingNode root, string path)
    {
        YamlMappingNode current = root;
        foreach (string segment in path.Length == 0 ? [] : path.Split('.'))
        {
            bool list = segment.EndsWith("[]", StringComparison.Ordinal);
            var name = new YamlScalarNode(list ? segment[..^2] : segment);
            if (!current.Children.TryGetValue(name, out YamlNode? next) || next is not (YamlMappingNode or YamlSequenceNode))
            {
                next = list ? new YamlSequenceNode(new YamlMappingNode()) : new YamlMappingNode();
                current.Children[name] = next;
            }
            current = next is YamlSequenceNode sequence ? (YamlMappingNode)sequence.Children[0] : (YamlMappingNode)next;
        }
        return current;
    }

    /// <summary>Adds what <paramref name="extra"/> has and <paramref name="into"/> lacks, keeping what is there.</summary>
    private static void Merge(YamlMappingNode into, YamlMappingNode extra)
    {
        foreach ((YamlNode k, YamlNode v) in extra.Children)
        {
            if (!into.Children.TryGetValue(k, out YamlNode? existing))
            {
                into.Children[k] = v;
            }
            else if (existing is YamlMappingNode a && v is YamlMappingNode b)
            {
                Merge(a, b);
            }
            else if (existing is YamlSequenceNode { Children: [YamlMappingNode first, ..] } && v is YamlSequenceNode { Children: [YamlMappingNode other] })
            {
                Merge(first, other);
            }
        }
    }

    private static string? ParentOf(string path) => path.Length == 0 ? null : path.LastIndexOf('.') is int dot and >= 0 ? path[..dot] : "";

    private static string Join(string path, string name) => path.Length == 0 ? name : $"{path}.{name}";

    /// <summary>A configuration as text, deep: records, lists and their values, for comparing two.</summary>
    public static string Dump(object? value) => value switch
    {
        null => "null",
        string text => $"\"{text}\"",
        System.Net.IPEndPoint or System.Net.IPAddress or TimeSpan or Enum => value.ToString()!,
        IEnumerable items => "[" + string.Join(", ", items.Cast<object?>().Select(Dump)) + "]",
        _ when value.GetType().Namespace?.StartsWith("Appliance", StringComparison.Ordinal) == true =>
            value.GetType().Name + " { " + string.Join(", ", value.GetType()
                .GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract")
                .Select(p => $"{p.Name} = {Dump(p.GetValue(value))}")) + " }",
        _ => value.ToString()!,
    };
}
