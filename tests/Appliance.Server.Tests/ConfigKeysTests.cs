using System.Globalization;
using System.Reflection;
using Appliance.Discipline;
using Appliance.Protocol;
using Appliance.Server.Configuration;
using Appliance.Sources;
using YamlDotNet.RepresentationModel;

namespace Appliance.Server.Tests;

/// <summary>The table of keys: complete, consistent, and what the loader really does with every key.</summary>
public class ConfigKeysTests
{
    public static TheoryData<string> AllKeys() => [.. ConfigKeys.All.Select(k => k.Path)];

    public static TheoryData<string> KeysWithDefaults() => [.. ConfigKeys.All.Where(k => k.Default is not null).Select(k => k.Path)];

    /// <summary>Keys that may be left out (a source entry's kind is what the entry is, so it cannot).</summary>
    public static TheoryData<string> OptionalKeys() => [.. ConfigKeys.All.Where(k => !k.Required && k.Parent != "sources[]").Select(k => k.Path)];

    public static TheoryData<string> RangedKeys() =>
        [.. ConfigKeys.All.Where(k => k.Type is ConfigType.WholeNumber or ConfigType.Duration or ConfigType.SignedDuration or ConfigType.CpuList).Select(k => k.Path)];

    public static TheoryData<string> ChoiceKeys() => [.. ConfigKeys.All.Where(k => k.Type == ConfigType.Choice).Select(k => k.Path)];

    /// <summary>Every mapping the file may hold: the top level, each section, each list entry.</summary>
    public static TheoryData<string> Mappings() =>
        [.. new[] { "" }.Concat(ConfigKeys.All.Where(k => k.Type == ConfigType.Section).Select(k => k.Path)).Concat(["ntp.listen[]", "sources[]", "clock.roughtime[]"])];

    private static ConfigKey Key(string path) => ConfigKeys.Find(path) ?? throw new ArgumentException(path);

    private static string Errors(ConfigResult result) => string.Join("\n", result.Errors);

    [Fact]
    public void All_ListsEveryKeyOfTheTable_OnceEach()
    {
        ConfigKey[] declared = typeof(ConfigKeys).GetProperties(BindingFlags.Public | BindingFlags.Static)
            .Where(p => p.PropertyType == typeof(ConfigKey)).Select(p => (ConfigKey)p.GetValue(null)!).ToArray();
        Assert.Equal(declared.Select(k => k.Path).Order(), ConfigKeys.All.Select(k => k.Path).Order());
        Assert.Equal(ConfigKeys.All.Count, ConfigKeys.All.Select(k => k.Path).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(AllKeys))]
    public void Key_SitsInASectionOfTheTable_AndSaysEverythingItsTypeNeeds(string path)
    {
        ConfigKey key = Key(path);
        string parent = key.Parent.EndsWith("[]", StringComparison.Ordinal) ? key.Parent[..^2] : key.Parent;
        Assert.True(parent.Length == 0 || ConfigKeys.Find(parent) is { Type: ConfigType.Section or ConfigType.AddressList or ConfigType.SourceList or ConfigType.MappingList },
            $"{path}: its parent {key.Parent} is not a section or list of the table");
        Assert.False(string.IsNullOrWhiteSpace(key.Doc));
        Assert.DoesNotContain('\n', key.Doc);
        Assert.True(Enum.IsDefined(key.Type), $"{path}: no type");
        Assert.False(key.Required && key.Default is not null, $"{path}: required keys have no default");
        if (key.Type is ConfigType.WholeNumber or ConfigType.Duration or ConfigType.CpuList)
        {
            Assert.True(key.Min is not null && key.Max is not null, $"{path}: no range");
        }
        if (key.Type == ConfigType.Choice)
        {
            Assert.True(key.Choices.Count >= 2, $"{path}: a choice of fewer than two");
        }
        if (key.Type is ConfigType.File or ConfigType.Device)
        {
            Assert.False(string.IsNullOrWhiteSpace(key.IfMissing), $"{path}: no advice for a missing file");
        }
        Assert.NotNull(key.ExampleValue);
    }

    [Theory]
    [MemberData(nameof(AllKeys))]
    public void Key_SaysWhetherAReloadAppliesIt_AndNamesOnlyReals_chronyDirectives(string path)
    {
        ConfigKey key = Key(path);
        Assert.True(Enum.IsDefined(key.Reload), $"{path}: reload not decided");
        foreach (string directive in key.Chrony?.Split(", ") ?? [])
        {
            Assert.Contains(directive.Split(' ')[0], s_chronyDirectives);
        }
    }

    [Fact]
    public void Reload_ListenAddressesAndWorkersNeedARestart_PolicyIsLive()
    {
        // The certificate's files are read again when they change (CertificateStore); a new path is read at start only.
        Assert.All([ConfigKeys.NtpListen, ConfigKeys.NtpWorkers, ConfigKeys.NtpBatch, ConfigKeys.NtsKeListen, ConfigKeys.MetricsListen, ConfigKeys.ClockMode,
            ConfigKeys.NtpRateLimitClients, ConfigKeys.NtsKeCertificate, ConfigKeys.NtsKeKeysStorage],
            k => Assert.Equal(Reload.Restart, k.Reload));
        Assert.All([ConfigKeys.NtpRateLimit, ConfigKeys.NtpRateLimitInterval, ConfigKeys.NtpAccess, ConfigKeys.NtpAccessAllow, ConfigKeys.NtpAccessDeny,
            ConfigKeys.Sources, ConfigKeys.NtpSourceAddress, ConfigKeys.NtsKeKeysRotation, ConfigKeys.LogLevel],
            k => Assert.Equal(Reload.Live, k.Reload));
    }

    [Theory]
    [MemberData(nameof(KeysWithDefaults))]
    public void Default_WrittenOut_ParsesAndBindsAsIfLeftOut(string path)
    {
        ConfigKey key = Key(path);
        YamlMappingNode tree = ConfigFragment.With(key, key.Default!);
        string written = Bound(tree, $"{path}: default '{key.Default}'");
        ConfigFragment.Remove(tree, key);
        Assert.Equal(written, Bound(tree, $"{path} left out"));
    }

    [Theory]
    [MemberData(nameof(OptionalKeys))]
    public void Example_Parses_AndChangesTheBoundConfiguration(string path)
    {
        // A key the loader accepted but never read would leave the configuration as it was.
        ConfigKey key = Key(path);
        string example = Bound(ConfigFragment.With(key, key.ExampleValue!), $"{path}: example '{key.ExampleValue}'");
        // Against the default written out, or, for a key with none, against the key left out.
        YamlMappingNode other = ConfigFragment.With(key, key.Default ?? key.ExampleValue!);
        if (key.Default is null)
        {
            ConfigFragment.Remove(other, key);
        }
        Assert.NotEqual(Bound(other, $"{path}: baseline"), example);
    }

    /// <summary>The configuration the tree binds to, as text; the tree must be valid.</summary>
    private static string Bound(YamlMappingNode tree, string what)
    {
        ConfigResult result = ConfigFragment.Bind(tree);
        Assert.True(result.IsValid, $"{what}:\n{ConfigFragment.Render(tree)}{Errors(result)}");
        return ConfigFragment.Dump(result.Config);
    }

    [Theory]
    [MemberData(nameof(RangedKeys))]
    public void Range_BoundsAccepted_OnePastEachRejectedAtTheValue(string path)
    {
        ConfigKey key = Key(path);
        (string low, string high, string belowLow, string aboveHigh) = Bounds(key);
        foreach (string value in new[] { low, high })
        {
            ConfigResult result = ConfigFragment.Bind(Tree(key, value));
            Assert.True(result.IsValid, $"{path}: {value} rejected: {Errors(result)}");
        }
        foreach (string value in new[] { belowLow, aboveHigh })
        {
            YamlMappingNode tree = Tree(key, value);
            string text = ConfigFragment.Render(tree);
            ConfigError error = Assert.Single(ConfigLoader.Bind(text).Errors);
            Assert.Contains($"'{path}'", error.Message, StringComparison.Ordinal);
            // The error points at the value: the line that writes the key, at the value's column.
            string line = text.Split('\n')[error.Line - 1];
            Assert.StartsWith(value.TrimStart('['), line[(error.Column - 1)..].TrimStart('['), StringComparison.Ordinal);
            Assert.Equal(key.Fix, error.Fix);
        }
    }

    [Theory]
    [MemberData(nameof(ChoiceKeys))]
    public void Choice_EveryChoiceAccepted_AnotherWordRejectedWithTheChoicesInTheFix(string path)
    {
        ConfigKey key = Key(path);
        foreach (string choice in key.Choices)
        {
            ConfigResult result = ConfigFragment.Bind(ConfigFragment.With(key, choice));
            Assert.True(result.IsValid, $"{path}: {choice}: {Errors(result)}");
        }
        ConfigError error = Assert.Single(ConfigFragment.Bind(ConfigFragment.With(key, "sideways")).Errors);
        Assert.Equal($"'{path}' is 'sideways'", error.Message);
        Assert.All(key.Choices, c => Assert.Contains(c, error.Fix, StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Mappings))]
    public void UnknownKey_InEveryMapping_IsTheOneError_AtTheKey(string path)
    {
        YamlMappingNode tree = path.Length == 0
            ? ConfigFragment.Complete(new YamlMappingNode())
            : path.EndsWith("[]", StringComparison.Ordinal)
                ? ConfigFragment.At(path[..^2], path switch
                {
                    "sources[]" => ConfigKeys.Sources.Example!,
                    "clock.roughtime[]" => ConfigKeys.ClockRoughtime.Example!,
                    _ => "[{ address: \"0.0.0.0:123\" }]",
                })
                : ConfigFragment.With(Key(path), Key(path).ExampleValue!);
        YamlMappingNode target = FindMapping(tree, path);
        target.Children[new YamlScalarNode("bogus-key")] = new YamlScalarNode("1");
        string text = ConfigFragment.Render(tree);

        ConfigError error = Assert.Single(ConfigLoader.Bind(text).Errors);
        string full = path.Length == 0 ? "bogus-key" : $"{path}.bogus-key";
        Assert.Equal($"unknown key '{full}'", error.Message);
        Assert.StartsWith("bogus-key", text.Split('\n')[error.Line - 1][(error.Column - 1)..], StringComparison.Ordinal);
        Assert.Contains("keys allowed in", error.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void TableDefaults_AgreeWithTheDefaultsOfTheCodeTheyConfigure()
    {
        // The engine, the clock core and the source drivers keep defaults of their own for callers
        // that do not go through the configuration (tests, benchmarks): they must not drift apart.
        ApplianceConfig config = ConfigLoader.Bind("clock: { local: {} }\nsources: [{ ntp: a.example }, { gpsd: {} }]\n").Config!;
        Assert.Equal(RateLimitSettings.Default, config.Ntp.RateLimit);
        var engine = new Appliance.Engine.EngineOptions { Listen = [] };
        Assert.Equal(engine.BatchSize, config.Ntp.Batch);
        Assert.Equal(engine.BusyPoll, config.Ntp.BusyPoll);
        Assert.Equal(engine.DenyAction, config.Ntp.DenyAction);
        var core = new ClockCoreOptions();
        Assert.Equal(core.Holdover, config.Clock.Holdover);
        Assert.Equal(core.StepThreshold, config.Clock.StepThreshold!.Value.TotalSeconds, 9);
        Assert.Equal(core.PanicThreshold, config.Clock.PanicThreshold!.Value.TotalSeconds, 9);
        Assert.Equal(core.MinSources, config.Clock.MinSources);
        var upstream = new UpstreamOptions { Host = "a.example", Port = 123 };
        var ntp = (NtpSourceConfig)config.Sources[0];
        Assert.Equal((upstream.Iburst, upstream.MinPoll, upstream.MaxPoll), (ntp.Iburst, ntp.MinPoll, ntp.MaxPoll));
        var gpsdOptions = new GpsdOptions { Host = "127.0.0.1" };
        var gpsd = (GpsdSourceConfig)config.Sources[1];
        Assert.Equal((gpsdOptions.Port, gpsdOptions.Pps, gpsdOptions.SerialDelay, gpsdOptions.MinSatellites), (gpsd.Port, gpsd.Pps, gpsd.Delay.TotalSeconds, gpsd.MinSatellites));
        Assert.Equal(new PpsOptions().MaxDeviation, Bound<PpsSourceConfig>("- pps: /dev/null").MaxDeviation.TotalSeconds, 12);
        Assert.Equal(new PhcOptions().UtcOffset, Bound<PhcSourceConfig>("- phc: /dev/null").UtcOffset.TotalSeconds);

        static T Bound<T>(string source) => (T)(object)ConfigLoader.Bind($"sources:\n  {source}\n").Config!.Sources[0];
    }

    [Fact]
    public void Access_LeftOut_IsTheSharedAllowAll_WhichAllowsWhatTheTableDefaultAllows()
    {
        AccessList leftOut = ConfigLoader.Bind("clock: { local: {} }\n").Config!.Ntp.Access;
        AccessList written = ConfigLoader.Bind($"clock: {{ local: {{}} }}\nntp: {{ access: {{ allow: {ConfigKeys.NtpAccessAllow.Default} }} }}\n").Config!.Ntp.Access;
        Assert.Same(AccessList.AllowAll, leftOut);
        foreach (string client in new[] { "192.0.2.1", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1", "ffff::" })
        {
            NetAddress address = NetAddress.FromIPAddress(System.Net.IPAddress.Parse(client));
            Assert.Equal(written.Allows(address), leftOut.Allows(address));
            Assert.True(leftOut.Allows(address));
        }
    }

    /// <summary>The key set to <paramref name="value"/>, in what context its bounds need.</summary>
    private static YamlMappingNode Tree(ConfigKey key, string value)
    {
        YamlMappingNode tree = ConfigFragment.With(key, value);
        // maxpoll's lower bound is below minpoll's default: trying it needs a minpoll as low.
        if (key == ConfigKeys.NtpSourceMaxPoll)
        {
            FindMapping(tree, key.Parent).Children[new YamlScalarNode("minpoll")] = new YamlScalarNode(ConfigKeys.NtpSourceMinPoll.Min);
        }
        return tree;
    }

    private static (string Low, string High, string BelowLow, string AboveHigh) Bounds(ConfigKey key)
    {
        if (key.Type is ConfigType.WholeNumber or ConfigType.CpuList)
        {
            long min = long.Parse(key.Min!, CultureInfo.InvariantCulture);
            long max = long.Parse(key.Max!, CultureInfo.InvariantCulture);
            string Wrap(long v) => key.Type == ConfigType.CpuList ? $"[{v}]" : v.ToString(CultureInfo.InvariantCulture);
            return (Wrap(min), Wrap(max), Wrap(min - 1), Wrap(max + 1));
        }
        Assert.True(DurationText.TryParse(key.Max!, out TimeSpan high));
        TimeSpan step = TimeSpan.FromMicroseconds(1);
        string above = DurationText.Format(high + step);
        if (key.Type == ConfigType.SignedDuration)
        {
            return ("-" + key.Max, key.Max!, "-" + above, above);
        }
        Assert.True(DurationText.TryParse(key.Min!, out TimeSpan low));
        return (key.Min!, key.Max!, low == TimeSpan.Zero ? "-1us" : DurationText.Format(low - step), above);
    }

    private static YamlMappingNode FindMapping(YamlMappingNode root, string path)
    {
        YamlMappingNode current = root;
        foreach (string segment in path.Length == 0 ? [] : path.Split('.'))
        {
            YamlNode next = current.Children[new YamlScalarNode(segment.TrimEnd('[', ']'))];
            current = next is YamlSequenceNode sequence ? sequence.Children.OfType<YamlMappingNode>().First() : (YamlMappingNode)next;
        }
        return current;
    }

    /// <summary>The directives of chrony.conf(5), chrony 4.3 (as installed here), and leapseclist (chrony 4.5).</summary>
    private static readonly HashSet<string> s_chronyDirectives =
    [
        "acquisitionport", "allow", "authselectmode", "bindacqaddress", "bindacqdevice", "bindaddress", "bindcmdaddress",
        "bindcmddevice", "binddevice", "broadcast", "clientloglimit", "clockprecision", "cmdallow", "cmddeny", "cmdport",
        "cmdratelimit", "combinelimit", "confdir", "corrtimeratio", "deny", "dscp", "driftfile", "dumpdir", "fallbackdrift",
        "hwclockfile", "hwtimestamp", "include", "initstepslew", "keyfile", "leapsecmode", "leapsectz", "leapseclist", "local",
        "lock_all", "log", "logbanner", "logchange", "logdir", "mailonchange", "makestep", "manual", "maxchange",
        "maxclockerror", "maxdistance", "maxdrift", "maxjitter", "maxntsconnections", "maxsamples", "maxslewrate",
        "maxupdateskew", "minsamples", "minsources", "noclientlog", "nocerttimecheck", "nosystemcert", "ntpsigndsocket",
        "ntsaeads", "ntsdumpdir", "ntsntpserver", "ntsport", "ntsprocesses", "ntsratelimit", "ntsrefresh", "ntsrotate", "ntsservercert",
        "ntsserverkey", "ntstrustedcerts", "peer", "pidfile", "pool", "port", "ptpport", "ratelimit", "refclock",
        "reselectdist", "rtcautotrim", "rtcdevice", "rtcfile", "rtconutc", "rtcsync", "sched_priority", "server",
        "smoothtime", "sourcedir", "stratumweight", "tempcomp", "user",
    ];
}
