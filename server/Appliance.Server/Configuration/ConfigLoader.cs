using System.Reflection;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Configuration;

/// <summary>
/// Loads the YAML configuration into <see cref="ApplianceConfig"/>, collecting every error with its
/// line, column and fix instead of stopping at the first. Unknown keys are errors. Two steps:
/// <see cref="Bind"/> reads the text alone (the YAML primitives in <see cref="ConfigReader"/>, one
/// binder per section, every default and range from <see cref="ConfigKeys"/>), then
/// <see cref="ConfigPreflight"/> checks the files and devices it names.
/// </summary>
public static class ConfigLoader
{
    public const string EmbeddedDefaultName = "(embedded default)";

    public static string EmbeddedDefaultText { get; } = ReadEmbeddedDefault();

    public static ConfigResult LoadEmbeddedDefault() => Parse(EmbeddedDefaultText);

    public static ConfigResult LoadFile(string path) => Read(path, Parse);

    /// <summary><see cref="Bind"/> on a file: its text alone, the files it names unchecked.</summary>
    public static ConfigResult BindFile(string path) => Read(path, Bind);

    private static ConfigResult Read(string path, Func<string, ConfigResult> load)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new ConfigResult(null, [new ConfigError(0, 0, $"cannot read the configuration: {e.Message}",
                "check the path and that the file is readable by this user")]);
        }
        return load(text);
    }

    /// <summary>
    /// The first character a YAML stream may not hold (YAML 1.2 §5.1: only tab, line breaks and
    /// printable characters; a lone surrogate is none), as an error at its line and column, or null.
    /// Checked before YamlDotNet sees the text: it takes a NUL for the end of its input, and a NUL
    /// inside a directive line made its scanner loop for ever (found by `make fuzz`, target config).
    /// Lines are counted as YAML counts them (§5.4: CR LF, CR or LF; YamlDotNet also NEL, LS, PS).
    /// </summary>
    private static ConfigError? NonPrintable(string text)
    {
        int line = 1, column = 1;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            bool printable = c is '\t' or '\n' or '\r' or (>= '\u0020' and <= '\u007E') or '\u0085' or (>= '\u00A0' and <= '\uD7FF') or (>= '\uE000' and <= '\uFFFD')
                || (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]));
            if (!printable)
            {
                return new ConfigError(line, column, $"YAML syntax: character U+{(int)c:X4} is not allowed in YAML (YAML 1.2 §5.1: printable characters only)",
                    ConfigRules.YamlSyntax.Fix);
            }
            if (char.IsHighSurrogate(c))
            {
                i++; // the pair is one character, one column
            }
            if (c is '\n' or '\u0085' or '\u2028' or '\u2029' || (c == '\r' && (i + 1 == text.Length || text[i + 1] != '\n')))
            {
                line++;
                column = 1;
            }
            else if (c != '\r')
            {
                column++;
            }
        }
        return null;
    }

    /// <summary>Binds <paramref name="text"/>, then checks the files and devices it names.</summary>
    public static ConfigResult Parse(string text)
    {
        ConfigResult bound = Bind(text);
        IReadOnlyList<ConfigError> missing = ConfigPreflight.Check(bound.Files);
        if (missing.Count == 0)
        {
            return bound;
        }
        return new ConfigResult(null, Ordered([.. bound.Errors, .. missing])) { Files = bound.Files };
    }

    /// <summary>
    /// The configuration in <paramref name="text"/>, read from the text alone: no file is opened and
    /// none is checked (<see cref="ConfigResult.Files"/> lists them for <see cref="ConfigPreflight"/>).
    /// </summary>
    public static ConfigResult Bind(string text)
    {
        if (NonPrintable(text) is { } bad)
        {
            return new ConfigResult(null, [bad]);
        }
        var stream = new YamlStream();
        var parser = new TrackingParser(new Parser(new StringReader(text)));
        try
        {
            stream.Load(parser);
        }
        catch (ShapeException e)
        {
            return new ConfigResult(null, [new ConfigError((int)e.Start.Line, (int)e.Start.Column, $"YAML: {e.Reason}", ConfigRules.YamlShape.Fix)]);
        }
        catch (YamlException e)
        {
            return new ConfigResult(null, [new ConfigError((int)e.Start.Line, (int)e.Start.Column,
                $"YAML syntax: {e.InnerException?.Message ?? e.Message}", ConfigRules.YamlSyntax.Fix)]);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet throws these without a position for some malformed input (ArgumentException for
            // a global tag that is not a URI, "!![~", or an event it cannot load, found by `make fuzz`,
            // target config): report where parsing stopped.
            return new ConfigResult(null, [new ConfigError((int)parser.LastGood.Line, (int)parser.LastGood.Column,
                "YAML syntax: the document does not parse after this point", ConfigRules.YamlIncomplete.Fix)]);
        }

        var r = new ConfigReader();
        YamlNode root = stream.Documents.Count == 0 ? new YamlScalarNode(null) : stream.Documents[0].RootNode;
        if (stream.Documents.Count > 1)
        {
            r.Error(stream.Documents[1].RootNode, "more than one YAML document", ConfigRules.OneDocument);
        }
        Section top = r.Root(root);
        NtpConfig ntp = NtpBinder.Bind(r, r.Section(top, K.Ntp));
        NtsKeConfig? ntsKe = NtsKeBinder.Bind(r, top, ntp);
        Section clockSection = r.Section(top, K.Clock);
        ClockConfig clock = ClockBinder.Bind(r, clockSection);
        List<SourceConfig> sources = SourceBinder.Bind(r, top);
        ClockBinder.CheckTimeSource(r, top, clockSection);
        RoughtimeConfig? roughtime = MetricsBinder.BindRoughtime(r, r.Section(top, K.Roughtime));
        MetricsConfig metrics = MetricsBinder.Bind(r, r.Section(top, K.Metrics));
        ControlConfig control = MetricsBinder.BindControl(r, r.Section(top, K.Control));
        var log = new LogConfig(r.Choice<Microsoft.Extensions.Logging.LogLevel>(r.Section(top, K.Log), K.LogLevel));
        string? user = r.User(top, K.User);
        return r.Errors.Count == 0
            ? new ConfigResult(new ApplianceConfig(ntp, ntsKe, clock, sources, metrics) { Control = control, Log = log, User = user, Roughtime = roughtime }, []) { Files = r.Files }
            : new ConfigResult(null, Ordered(r.Errors)) { Files = r.Files };
    }

    /// <summary>Errors in the order of the file, so that the first one printed is the first one met.</summary>
    private static ConfigError[] Ordered(IEnumerable<ConfigError> errors) =>
        errors.OrderBy(e => e.Line).ThenBy(e => e.Column).ToArray();

    /// <summary>
    /// The parser YamlDotNet's representation model reads from, with the last position that parsed
    /// and the shapes it must never build refused before it builds them (<see cref="ShapeException"/>):
    /// a collection as a mapping key (YamlDotNet hashes it, and an alias of its own anchor inside
    /// makes that recursion endless: a stack overflow, which no catch survives, found by `make fuzz`,
    /// target config), an alias inside its own anchor's node (a cycle), and nesting deeper than
    /// <see cref="MaxDepth"/> (the model loads recursively). No configuration key takes any of them.
    /// </summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        /// <summary>Deepest nesting taken: the deepest key is four levels down.</summary>
        public const int MaxDepth = 64;

        // Per open collection: whether it is a mapping, whether its next node is a key, its anchor.
        private readonly List<(bool Mapping, bool ExpectKey, string? Anchor)> _open = [];
        private readonly Dictionary<string, bool> _anchorIsCollection = new(StringComparer.Ordinal);

        public YamlDotNet.Core.Events.ParsingEvent? Current => inner.Current;

        public Mark LastGood { get; private set; } = Mark.Empty;

        public bool MoveNext()
        {
            bool moved = inner.MoveNext();
            if (inner.Current is { } current)
            {
                Check(current);
                LastGood = current.End;
            }
            return moved;
        }

        private bool AtKey => _open.Count > 0 && _open[^1].Mapping && _open[^1].ExpectKey;

        private void Check(YamlDotNet.Core.Events.ParsingEvent e)
        {
            switch (e)
            {
                case YamlDotNet.Core.Events.MappingStart or YamlDotNet.Core.Events.SequenceStart:
                    if (AtKey)
                    {
                        throw new ShapeException(e.Start, "a key must be a single value, not a mapping or a list");
                    }
                    if (_open.Count == MaxDepth)
                    {
                        throw new ShapeException(e.Start, $"nested deeper than {MaxDepth} levels");
                    }
                    string? anchor = ((YamlDotNet.Core.Events.NodeEvent)e).Anchor is { IsEmpty: false } a ? a.Value : null;
                    if (anchor is not null)
                    {
                        _anchorIsCollection[anchor] = true;
                    }
                    _open.Add((e is YamlDotNet.Core.Events.MappingStart, true, anchor));
                    break;
                case YamlDotNet.Core.Events.MappingEnd or YamlDotNet.Core.Events.SequenceEnd:
                    if (_open.Count > 0)
                    {
                        _open.RemoveAt(_open.Count - 1);
                    }
                    NodeDone();
                    break;
                case YamlDotNet.Core.Events.Scalar scalar:
                    if (!scalar.Anchor.IsEmpty)
                    {
                        _anchorIsCollection[scalar.Anchor.Value] = false;
                    }
                    NodeDone();
                    break;
                case YamlDotNet.Core.Events.AnchorAlias alias:
                    string name = alias.Value.Value;
                    if (_open.Exists(o => o.Anchor == name))
                    {
                        throw new ShapeException(e.Start, $"the alias *{name} is inside its own anchor &{name}: a node cannot contain itself");
                    }
                    if (AtKey && _anchorIsCollection.GetValueOrDefault(name))
                    {
                        throw new ShapeException(e.Start, "a key must be a single value, not a mapping or a list");
                    }
                    NodeDone();
                    break;
            }
        }

        /// <summary>A node of the innermost collection is complete: in a mapping, keys and values take turns.</summary>
        private void NodeDone()
        {
            if (_open.Count > 0 && _open[^1].Mapping)
            {
                _open[^1] = _open[^1] with { ExpectKey = !_open[^1].ExpectKey };
            }
        }
    }

    /// <summary>A shape <see cref="TrackingParser"/> refuses, at its position.</summary>
    private sealed class ShapeException(Mark start, string reason) : YamlException(start, start, reason)
    {
        public string Reason { get; } = reason;
    }

    private static string ReadEmbeddedDefault()
    {
        using Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("default.yaml")
            ?? throw new InvalidOperationException("the embedded default configuration is missing from the build");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
