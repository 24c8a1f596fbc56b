using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Configuration;

/// <summary>How a key's value is written.</summary>
public enum ConfigType
{
    /// <summary>A mapping of the keys below it.</summary>
    Section = 1,
    Boolean,
    WholeNumber,

    /// <summary>A number and a unit (us, ms, s, m, h, d), see <see cref="DurationText"/>.</summary>
    Duration,

    /// <summary>A duration that may be negative.</summary>
    SignedDuration,

    /// <summary>One of <see cref="ConfigKey.Choices"/>.</summary>
    Choice,

    /// <summary>A list of <see cref="ConfigKey.Choices"/>, in order of preference, each at most once, not empty.</summary>
    ChoiceList,

    /// <summary>An IP literal and a port: what the appliance listens on.</summary>
    Address,

    /// <summary>A list of <see cref="Address"/>.</summary>
    AddressList,

    /// <summary>A host name or IP literal, the port optional: what the appliance connects to.</summary>
    HostPort,

    /// <summary>A list of addresses or CIDR prefixes.</summary>
    PrefixList,

    /// <summary>A list of CPU numbers.</summary>
    CpuList,

    /// <summary>A file that must exist (checked by <see cref="ConfigPreflight"/>, not by parsing).</summary>
    File,

    /// <summary>A device node that must exist (checked by <see cref="ConfigPreflight"/>).</summary>
    Device,

    /// <summary>A file the appliance writes itself.</summary>
    Path,

    /// <summary>A user name that must exist in the user database (checked by <see cref="ConfigPreflight"/>, not by parsing).</summary>
    User,
    Text,

    /// <summary>The list of time sources, each entry naming its kind.</summary>
    SourceList,

    /// <summary>A list of mappings, each with the keys below <c>path[]</c>.</summary>
    MappingList,
}

/// <summary>What it takes for a changed value to apply.</summary>
public enum Reload
{
    /// <summary>A reload applies it: it is read per request, per connection or per event.</summary>
    Live = 1,

    /// <summary>It shapes sockets, threads, tables or the clock core as they are built: a restart applies it.</summary>
    Restart,
}

/// <summary>
/// One configuration key: everything parsing, validation, the docs, reload and the chrony.conf
/// migration need to know about it. The entries are in <see cref="ConfigKeys"/>; nothing else
/// writes a default, a range or a fix of its own.
/// </summary>
public sealed class ConfigKey
{
    /// <summary>The dotted path; a list's entries are <c>name[]</c>: <c>sources[].ntp.minpoll</c>.</summary>
    public required string Path { get; init; }

    public required ConfigType Type { get; init; }

    /// <summary>One line for docs/configuration.md.</summary>
    public required string Doc { get; init; }

    public required Reload Reload { get; init; }

    /// <summary>The chrony.conf directive (and option) this key corresponds to, or null where there is none.</summary>
    public required string? Chrony { get; init; }

    /// <summary>The value taken when the key is not written, as YAML text; null when there is none.</summary>
    public string? Default { get; init; }

    /// <summary>For the docs: what the default depends on, when it is not just <see cref="Default"/>.</summary>
    public string? DefaultNote { get; init; }

    /// <summary>The section is invalid without this key.</summary>
    public bool Required { get; init; }

    /// <summary>Bounds, as YAML text: of the value (integers, durations) or of each entry (CPU lists).</summary>
    public string? Min { get; init; }

    /// <inheritdoc cref="Min"/>
    public string? Max { get; init; }

    /// <summary>A list key that must not be empty.</summary>
    public bool NotEmpty { get; init; }

    /// <summary>Bare words accepted in place of a value: <c>auto</c>, <c>off</c>, <c>null</c>.</summary>
    public IReadOnlyList<string> Words { get; init; } = [];

    /// <summary>The values of a <see cref="ConfigType.Choice"/>.</summary>
    public IReadOnlyList<string> Choices { get; init; } = [];

    /// <summary>A section that may be written as one scalar: the key below it that the scalar sets.</summary>
    public string? ShortForm { get; init; }

    /// <summary>An address's port when none is written.</summary>
    public int DefaultPort { get; init; }

    /// <summary>A valid value (YAML text) shown in the fix; <see cref="Default"/> when not given.</summary>
    public string? Example { get; init; }

    /// <summary>Sibling settings this key needs (a YAML mapping), e.g. <c>nts: true</c>.</summary>
    public string? Requires { get; init; }

    /// <summary>A sentence added to the fix.</summary>
    public string? Hint { get; init; }

    /// <summary>A file or device key: the fix when it does not exist.</summary>
    public string? IfMissing { get; init; }

    /// <summary>The last segment of the path: the name written in the file.</summary>
    public string Name => Path[(Path.LastIndexOf('.') + 1)..];

    /// <summary>The path of the mapping this key is written in ("" for the top level).</summary>
    public string Parent => Path.LastIndexOf('.') is int dot and >= 0 ? Path[..dot] : "";

    /// <summary>The value shown in the fix and validated by the tests.</summary>
    public string? ExampleValue => Example ?? Default;

    /// <summary>What to tell the operator when the value is wrong: built from the type, range, words, hint and example.</summary>
    public string Fix => _fix ??= BuildFix();

    /// <summary>The table's default as a YAML node, read exactly like a written value; null when there is none.</summary>
    internal YamlNode? DefaultNode => Default is null ? null : _defaultNode ??= ParseValue(Default);

    private string? _fix;
    private YamlNode? _defaultNode;

    /// <summary>Reads one YAML value the way it would appear after <c>key: </c>.</summary>
    internal static YamlNode ParseValue(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader("value: " + yaml));
        return ((YamlMappingNode)stream.Documents[0].RootNode).Children[new YamlScalarNode("value")];
    }

    private string BuildFix()
    {
        string what = Type switch
        {
            ConfigType.Section => $"write {Name} as 'key: value' lines or {{ key: value }} with the keys {string.Join(", ", ConfigKeys.ChildrenOf(Path).Select(k => k.Name))}",
            ConfigType.Boolean => "use true or false",
            ConfigType.WholeNumber => $"use a whole number from {Min} to {Max}",
            ConfigType.Duration => $"write a duration from {Min} to {Max} with a unit: us, ms, s, m, h or d",
            ConfigType.SignedDuration => $"write a duration from -{Max} to {Max} with a unit: us, ms, s, m, h or d",
            ConfigType.Choice => $"use {Or(Choices)}",
            ConfigType.ChoiceList => $"list one or more of {string.Join(", ", Choices)}, each once, the preferred first",
            ConfigType.Address => "write an IP address and a port, quoted: \"127.0.0.1:123\", \"[::1]:123\", \"0.0.0.0:123\" or \"[::]:123\"",
            ConfigType.AddressList => "list IP addresses with their ports, quoted (YAML reads [::]:123 unquoted as a list)",
            ConfigType.HostPort => $"write a host name or IP address with an optional port (default {DefaultPort}); an IPv6 address with a port in brackets: [2001:db8::1]:{DefaultPort}",
            ConfigType.PrefixList => "list addresses or CIDR prefixes, quoted: \"192.0.2.0/24\", \"2001:db8::/32\", \"0.0.0.0/0\"",
            ConfigType.CpuList => $"write a list of CPU numbers from {Min} to {Max}",
            ConfigType.File => "write the path of the file",
            ConfigType.Device => "write the path of the device",
            ConfigType.Path => "write a path",
            ConfigType.User => "write the name of an unprivileged user",
            ConfigType.Text => "write one value",
            ConfigType.SourceList => "list the sources, each naming its kind (ntp, gpsd, pps, phc or ptp)",
            ConfigType.MappingList => $"list entries, each a mapping with the keys {string.Join(", ", ConfigKeys.ChildrenOf(Path + "[]").Select(k => k.Name))}",
            _ => throw new InvalidOperationException($"{Path}: type {Type} has no fix"),
        };
        string words = Words.Count == 0 ? "" : $", or {Or(Words)}";
        string hint = Hint is null ? "" : $"; {Hint}";
        string example = ExampleValue is { } value ? $", e.g. `{Name}: {value}`" : "";
        return what + words + hint + example;
    }

    private static string Or(IReadOnlyList<string> items) =>
        items.Count == 1 ? items[0] : string.Join(", ", items.Take(items.Count - 1)) + " or " + items[^1];

    /// <summary>The bounds as numbers (integers, and CPU lists' entries).</summary>
    internal (long Min, long Max) IntegerRange => (long.Parse(Min!, CultureInfo.InvariantCulture), long.Parse(Max!, CultureInfo.InvariantCulture));

    /// <summary>The bounds as durations (a signed duration's lower bound is -Max).</summary>
    internal (TimeSpan Min, TimeSpan Max) DurationRange
    {
        get
        {
            TimeSpan max = DurationText.TryParse(Max!, out TimeSpan hi) ? hi : throw new InvalidOperationException($"{Path}: max '{Max}'");
            if (Type == ConfigType.SignedDuration)
            {
                return (-max, max);
            }
            return (DurationText.TryParse(Min!, out TimeSpan lo) ? lo : throw new InvalidOperationException($"{Path}: min '{Min}'"), max);
        }
    }
}
