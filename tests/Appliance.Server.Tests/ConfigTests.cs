using System.Net;
using Appliance.Protocol.Crypto;
using Appliance.Server.Configuration;

namespace Appliance.Server.Tests;

public class ConfigTests
{
    private static readonly AeadList s_aead15 = new([AeadAlgorithm.AesSivCmac256]);

    [Fact]
    public void NtsKeAeads_DefaultToAllThree_AndTakeAListInOrder()
    {
        const string Nts = "nts-ke: { certificate: /c, private-key: /k";
        Assert.Equal(new AeadList([AeadAlgorithm.AesSivCmac256, AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac512]),
            ConfigLoader.Bind(Nts + " }\nclock: { local: {} }\n").Config!.NtsKe!.Aeads);
        Assert.Equal(new AeadList([AeadAlgorithm.AesSivCmac256]),
            ConfigLoader.Bind(Nts + ", aeads: [AES-SIV-CMAC-256] }\nclock: { local: {} }\n").Config!.NtsKe!.Aeads);
    }

    [Theory]
    [InlineData("aeads: [AES-SIV-CMAC-256, AES-256-GCM]", "'nts-ke.aeads' has 'AES-256-GCM'")]
    [InlineData("aeads: [AES-128-GCM-SIV, AES-128-GCM-SIV]", "'nts-ke.aeads' has 'AES-128-GCM-SIV' twice")]
    [InlineData("aeads: []", "'nts-ke.aeads' is empty")]
    [InlineData("aeads: AES-SIV-CMAC-256", "'nts-ke.aeads' must be a list")]
    public void NtsKeAeads_Refused_WithTheChoicesInTheFix(string entry, string message)
    {
        ConfigResult result = ConfigLoader.Bind($"nts-ke: {{ certificate: /c, private-key: /k, {entry} }}\nclock: {{ local: {{}} }}\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Contains("AES-SIV-CMAC-256, AES-128-GCM-SIV, AES-SIV-CMAC-512", error.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void SourceAeads_OnlyWithNts()
    {
        ConfigResult result = ConfigLoader.Bind("sources:\n  - ntp: { address: ntp.example, aeads: [AES-128-GCM-SIV] }\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Contains("name, trust and aeads only apply to NTS", error.Message, StringComparison.Ordinal);
    }
    [Fact]
    public void EmbeddedDefault_ServesLoopback11123_Metrics9975_LocalStratum10()
    {
        ConfigResult result = ConfigLoader.LoadEmbeddedDefault();
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        ApplianceConfig config = result.Config!;
        Assert.Equal([IPEndPoint.Parse("127.0.0.1:11123"), IPEndPoint.Parse("[::1]:11123")], config.Ntp.Listen);
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:9975"), config.Metrics.Listen);
        Assert.Equal(new LocalReferenceConfig(10), config.Clock.Local);
        Assert.Equal(ClockMode.Software, config.Clock.Mode);
    }

    [Fact]
    public void Parse_OmittedKeys_TakeDocumentedDefaults()
    {
        ConfigResult result = ConfigLoader.Parse("clock: { local: {} }\n");
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal([IPEndPoint.Parse("0.0.0.0:123"), IPEndPoint.Parse("[::]:123")], result.Config!.Ntp.Listen);
        Assert.Equal(ClockMode.Kernel, result.Config.Clock.Mode);
        Assert.Equal(10, result.Config.Clock.Local!.Stratum);
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:9975"), result.Config.Metrics.Listen);
    }

    [Fact]
    public void Parse_EngineKeys()
    {
        const string yaml = """
            ntp:
              workers: 3
              batch: 32
              cpu-affinity: [1, 0]
              hardware-timestamps: true
              rate-limit: { interval: 500ms, burst: 4, leak: 3, kod: true, clients: 65536 }
              access: { allow: ["192.0.2.0/24", "2001:db8::/32"], deny: ["192.0.2.66"], deny-action: kod }
            clock: { local: {} }
            """;
        ConfigResult result = ConfigLoader.Parse(yaml);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        NtpConfig ntp = result.Config!.Ntp;
        Assert.Equal(3, ntp.EffectiveWorkers);
        Assert.Equal(32, ntp.Batch);
        Assert.Equal([1, 0], ntp.CpuAffinity);
        Assert.True(ntp.HardwareTimestamps);
        Assert.Equal(new Appliance.Protocol.RateLimitSettings(TimeSpan.FromMilliseconds(500), 4, 3, true, 65536), ntp.RateLimit);
        Assert.Equal(Appliance.Protocol.DenyAction.Kod, ntp.DenyAction);
        Assert.True(ntp.Access.Allows(Appliance.Protocol.NetAddress.FromIPAddress(IPAddress.Parse("192.0.2.1"))));
        Assert.False(ntp.Access.Allows(Appliance.Protocol.NetAddress.FromIPAddress(IPAddress.Parse("192.0.2.66"))));
        Assert.False(ntp.Access.Allows(Appliance.Protocol.NetAddress.FromIPAddress(IPAddress.Parse("198.51.100.1"))));
    }

    [Fact]
    public void Parse_EngineDefaults_AutoWorkersRateLimitOnAllowAll()
    {
        ConfigResult result = ConfigLoader.Parse("clock: { local: {} }\n");
        NtpConfig ntp = result.Config!.Ntp;
        Assert.Equal(Environment.ProcessorCount, ntp.EffectiveWorkers);
        Assert.Equal(64, ntp.Batch);
        Assert.Null(ntp.CpuAffinity);
        Assert.Equal(Appliance.Protocol.RateLimitSettings.Default, ntp.RateLimit);
        Assert.Same(Appliance.Protocol.AccessList.AllowAll, ntp.Access);
    }

    [Fact]
    public void Parse_RateLimitOff_DisablesIt()
    {
        ConfigResult result = ConfigLoader.Parse("ntp: { rate-limit: off, workers: auto }\nclock: { local: {} }\n");
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Null(result.Config!.Ntp.RateLimit);
    }

    [Fact]
    public void Parse_RateLimitLeak0_IsRefused_SayingWhatItWouldDo()
    {
        // Issue #14: leak 0 would leave the victim of a flood spoofing its address with no answer at all.
        ConfigResult result = ConfigLoader.Parse("ntp: { rate-limit: { leak: 0 } }\nclock: { local: {} }\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Equal((1, 28), (error.Line, error.Column));
        Assert.Contains("from 1 to 16", error.Fix, StringComparison.Ordinal);
        Assert.Contains("victims of a flood spoofing their address", error.Fix, StringComparison.Ordinal);
        Assert.True(ConfigLoader.Parse("ntp: { rate-limit: { leak: 1 } }\nclock: { local: {} }\n").IsValid);
    }

    [Fact]
    public void Parse_DenyActionKodWithRateLimitOff_IsRefused()
    {
        // Issue #14: KoD DENY is limited through the rate table; without one every denied request would get a KoD.
        ConfigResult result = ConfigLoader.Parse("ntp: { rate-limit: off, access: { deny: [\"192.0.2.66\"], deny-action: kod } }\nclock: { local: {} }\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Equal((1, 70), (error.Line, error.Column));
        Assert.Contains("rate-limit is off", error.Message, StringComparison.Ordinal);
        Assert.Contains("deny-action: ignore", error.Fix, StringComparison.Ordinal);
        Assert.True(ConfigLoader.Parse("ntp: { rate-limit: off, access: { deny: [\"192.0.2.66\"] } }\nclock: { local: {} }\n").IsValid);
        Assert.True(ConfigLoader.Parse("ntp: { access: { deny: [\"192.0.2.66\"], deny-action: kod } }\nclock: { local: {} }\n").IsValid);
    }

    [Fact]
    public void Parse_BadEngineValues_EachReported()
    {
        const string yaml = """
            ntp:
              workers: many
              rate-limit: { interval: 2 parsecs, kod: maybe }
              access: { allow: ["192.0.2.0/40"], deny-action: shout }
            clock: { local: {} }
            """;
        ConfigResult result = ConfigLoader.Parse(yaml);
        Assert.Equal([(2, 12), (3, 27), (3, 43), (4, 21), (4, 51)], result.Errors.Select(e => (e.Line, e.Column)).Order().ToArray());
    }

    [Fact]
    public void Parse_UnknownKey_IsErrorWithPositionAndSuggestion()
    {
        ConfigResult result = ConfigLoader.Parse("ntp:\n  lissten: [\"127.0.0.1:123\"]\nclock: { local: {} }\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Equal(2, error.Line);
        Assert.Equal(3, error.Column);
        Assert.Contains("unknown key 'ntp.lissten'", error.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'listen'", error.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_SeveralMistakes_ReportsEveryOne()
    {
        const string yaml = """
            ntp:
              listen: ["127.0.0.1", "[::1]:123"]
            clock:
              mode: wall
              local: { stratum: 16 }
            metrics:
              listen: "localhost:9975"
            source: []
            """;
        ConfigResult result = ConfigLoader.Parse(yaml);
        Assert.False(result.IsValid);
        Assert.Equal(
            [(2, 12), (4, 9), (5, 21), (7, 11), (8, 1)],
            result.Errors.Select(e => (e.Line, e.Column)).Order().ToArray());
        Assert.All(result.Errors, e => Assert.False(string.IsNullOrWhiteSpace(e.Fix)));
    }

    [Fact]
    public void Parse_YamlSyntaxError_GivesPosition()
    {
        ConfigResult result = ConfigLoader.Parse("ntp:\n  listen: [\"127.0.0.1:123\"\nclock: {}\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Contains("YAML syntax", error.Message, StringComparison.Ordinal);
        Assert.True(error.Line >= 2);
    }

    [Theory]
    [InlineData("ntp: { workers: 2 }\nclock: { mode: soft\0ware }\n", 2, 20, "U+0000")]
    [InlineData("ntp: { workers: 2 }\r\n\r\n%YAML\u0001\n", 3, 6, "U+0001")]
    [InlineData("log: { level: info }\u007F\n", 1, 21, "U+007F")]
    public void Parse_ANonPrintableCharacter_IsOneErrorAtItsLineAndColumn(string yaml, int line, int column, string character)
    {
        // YAML 1.2 §5.1; a NUL in a directive line made YamlDotNet's scanner loop for ever (make fuzz, target config).
        ConfigError error = Assert.Single(ConfigLoader.Parse(yaml).Errors);
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.Contains($"character {character} is not allowed in YAML", error.Message, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(error.Fix));
    }

    [Theory]
    [InlineData("&a { x: { y: *a } }\n", 1, 14, "the alias *a is inside its own anchor &a")] // a cycle
    [InlineData("{ &a { b: 1 }: *a }\n", 1, 3, "a key must be a single value")]
    [InlineData("{? &e {{{ *e }}}\n: 1}\n", 1, 4, "a key must be a single value")] // as make fuzz found it: a stack overflow in YamlDotNet
    [InlineData("x: &l [1]\n*l : 2\n", 2, 1, "a key must be a single value")]
    public void Parse_ACollectionKeyOrACyclicAlias_IsOneErrorAtItsPosition_NotAStackOverflow(string yaml, int line, int column, string message)
    {
        ConfigError error = Assert.Single(ConfigLoader.Bind(yaml).Errors);
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.Contains("alias", error.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_DeepNesting_IsRefused_AliasesOfFinishedNodes_AreFine()
    {
        // The representation model loads recursively: 100 000 levels would overflow its stack.
        ConfigError error = Assert.Single(ConfigLoader.Bind("x: " + new string('[', 100_000) + "\n").Errors);
        Assert.Contains("nested deeper than 64 levels", error.Message, StringComparison.Ordinal);
        ConfigResult aliased = ConfigLoader.Bind("ntp: &ntp { workers: 2 }\nclock: { local: {} }\nmetrics: { listen: \"127.0.0.1:0\" }\n");
        Assert.True(aliased.IsValid, string.Join("\n", aliased.Errors));
    }

    [Fact]
    public void Parse_ALoneSurrogate_IsNotACharacter()
    {
        // Built here: a test case's data would carry it as U+FFFD.
        ConfigError error = Assert.Single(ConfigLoader.Parse("log: { level: \"" + '\uD800' + "\" }\n").Errors);
        Assert.Equal((1, 16), (error.Line, error.Column));
        Assert.Contains("character U+D800 is not allowed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_AnEmojiOrAccent_IsPrintable()
    {
        Assert.True(ConfigLoader.Parse("# caf\u00E9 \uD83D\uDD70\nclock: { mode: software, local: {} }\n").IsValid);
    }

    [Fact]
    public void Parse_NoTimeSource_IsError()
    {
        ConfigResult result = ConfigLoader.Parse("clock: { mode: software }\n");
        ConfigError error = Assert.Single(result.Errors);
        Assert.Contains("clock.local", error.Fix, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_MetricsOff_DisablesEndpoint()
    {
        ConfigResult result = ConfigLoader.Parse("clock: { local: {} }\nmetrics: { listen: off }\n");
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Null(result.Config!.Metrics.Listen);
    }

    [Fact]
    public void Parse_Sources_AllForms()
    {
        ConfigResult result = ConfigLoader.Parse("""
            sources:
              - ntp: "ntp1.example.net"
              - ntp: "192.0.2.1:1123"
              - ntp: { address: "[2001:db8::1]:123", iburst: false, minpoll: 4, maxpoll: 8 }
              - ntp: { address: "nts.example.net", nts: true }
              - ntp: { address: "127.0.0.1:4460", nts: true, name: ntp.test, aeads: [AES-128-GCM-SIV, AES-SIV-CMAC-256] }
            clock: { leap-seconds: ../testdata/leap-seconds.list, holdover: 2h, step-threshold: 50ms, panic-threshold: 600s, min-sources: 2 }
            """.Replace("../testdata/leap-seconds.list", Testing.Repo.TestData("leap-seconds.list"), StringComparison.Ordinal));
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        ApplianceConfig config = result.Config!;
        Assert.Equal(
            [
                new NtpSourceConfig("ntp1.example.net", 123, false, null, null, true, 6, 10, s_aead15),
                new NtpSourceConfig("192.0.2.1", 1123, false, null, null, true, 6, 10, s_aead15),
                new NtpSourceConfig("2001:db8::1", 123, false, null, null, false, 4, 8, s_aead15),
                new NtpSourceConfig("nts.example.net", 4460, true, null, null, true, 6, 10, s_aead15),
                new NtpSourceConfig("127.0.0.1", 4460, true, "ntp.test", null, true, 6, 10,
                    new AeadList([AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac256])),
            ],
            config.Sources);
        Assert.Null(config.Clock.Local);
        Assert.Equal(TimeSpan.FromHours(2), config.Clock.Holdover);
        Assert.Equal(TimeSpan.FromMilliseconds(50), config.Clock.StepThreshold);
        Assert.Equal(TimeSpan.FromSeconds(600), config.Clock.PanicThreshold);
        Assert.Equal(2, config.Clock.MinSources);
    }

    [Fact]
    public void Parse_ReferenceClockSources()
    {
        ConfigResult result = ConfigLoader.Parse("""
            sources:
              - gpsd: "127.0.0.1:2947"
              - gpsd: { address: "gps.local:12947", pps: false, delay: 100ms, offset: -5ms, min-satellites: 6 }
              - pps: { device: /dev/null, edge: clear, lock: "127.0.0.1:2947", max-deviation: 20us }
              - phc: { device: /dev/null, poll: -1, utc-offset: 0s }
              - ptp: { interface: eth1, domain: 24, delay-interval: -2 }
            """);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        Assert.Equal(
            [
                new GpsdSourceConfig("127.0.0.1", 2947, true, TimeSpan.FromMilliseconds(200), TimeSpan.Zero, 4),
                new GpsdSourceConfig("gps.local", 12947, false, TimeSpan.FromMilliseconds(100), TimeSpan.FromMilliseconds(-5), 6),
                new PpsSourceConfig("/dev/null", true, "127.0.0.1:2947", TimeSpan.FromMicroseconds(20)),
                new PhcSourceConfig("/dev/null", -1, TimeSpan.Zero),
                new PtpSourceConfig("eth1", 24, -2),
            ],
            result.Config!.Sources);
    }

    [Theory]
    [InlineData("sources: [ntp: \"ntp.example.net:99999\"]", "is not host[:port]")]
    [InlineData("sources: [ntp: { address: \"a.example\", minpoll: 10, maxpoll: 6 }]", "minpoll 10 is above maxpoll 6")]
    [InlineData("sources: [ntp: { address: \"a.example\", trust: /etc/hosts }]", "only apply to NTS")]
    [InlineData("sources: [ntp: { nts: true }]", "has no address")]
    [InlineData("sources: [\"a.example\"]", "must be a mapping")]
    [InlineData("sources: [{ ntp: a.example, gps: b }]", "unknown key 'sources[].gps'")]
    [InlineData("sources: []", "no time source")]
    [InlineData("sources: [pps: { device: /dev/pps-missing }]", "no device /dev/pps-missing")]
    [InlineData("sources: [phc: /dev/ptp-missing]", "no device /dev/ptp-missing")]
    [InlineData("sources: [ptp: { domain: 1 }]", "has no interface")]
    [InlineData("sources: [pps: { device: /dev/null, edge: rising }]", "'sources[].pps.edge' is 'rising'")]
    [InlineData("sources: [gpsd: { address: \"127.0.0.1:2947\", offset: 2s }]", "'sources[].gpsd.offset' is '2s'")]
    [InlineData("sources: [ntp: \"a.example\"]\nclock: { leap-seconds: /nonexistent/leap-seconds.list }", "no file /nonexistent")]
    public void Parse_BadSources_SayWhatIsWrong(string yaml, string message)
    {
        ConfigResult result = ConfigLoader.Parse(yaml);
        Assert.False(result.IsValid);
        Assert.Contains(result.Errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Fix.Length > 0);
    }

    [Fact]
    public void Parse_Smear_IsOffByDefault_AndTakesItsAddressesAndReferenceId()
    {
        ConfigResult off = ConfigLoader.Parse("clock: { local: {} }");
        Assert.True(off.IsValid, string.Join("\n", off.Errors));
        Assert.False(off.Config!.Ntp.Smear.Enabled);
        Assert.Equal(0x534D4552u, off.Config.Ntp.Smear.ReferenceId); // "SMER"

        ConfigResult on = ConfigLoader.Parse("ntp: { listen: [\"0.0.0.0:123\"], smear: { listen: [\"192.0.2.10:123\", \"0.0.0.0:1123\"], reference-id: GOO } }\nclock: { local: {} }");
        Assert.True(on.IsValid, string.Join("\n", on.Errors));
        Assert.Equal([IPEndPoint.Parse("192.0.2.10:123"), IPEndPoint.Parse("0.0.0.0:1123")], on.Config!.Ntp.Smear.Listen);
        Assert.Equal(0x474F4F00u, on.Config.Ntp.Smear.ReferenceId); // RFC 5905 §7.3: left-justified, NUL-padded
    }

    [Theory]
    [InlineData("ntp: { listen: [\"0.0.0.0:123\"], smear: { listen: [\"0.0.0.0:123\"] } }", "0.0.0.0:123 is both an ntp.listen and an ntp.smear.listen address")]
    [InlineData("ntp: { smear: { listen: [\"127.0.0.1:1123\"], reference-id: SMEARED } }", "'ntp.smear.reference-id' is 'SMEARED'")]
    [InlineData("ntp: { smear: { listen: [\"127.0.0.1:1123\"], reference-id: \"S-1\" } }", "1 to 4 ASCII letters or digits")]
    [InlineData("ntp: { smear: { listen: \"127.0.0.1:1123\" } }", "ntp.smear.listen")]
    [InlineData("ntp: { smear: { listen: [\"127.0.0.1:1123\"], curve: cosine } }", "unknown key 'ntp.smear.curve'")]
    public void Parse_BadSmear_SaysWhatIsWrong(string yaml, string message)
    {
        ConfigResult result = ConfigLoader.Parse(yaml + "\nclock: { local: {} }");
        Assert.False(result.IsValid);
        Assert.Contains(result.Errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Fix.Length > 0);
    }

    [Fact]
    public void Parse_Roughtime_IsOffByDefault_AndAnEmptySectionServesTheDefaults()
    {
        ConfigResult off = ConfigLoader.Parse("clock: { local: {} }");
        Assert.True(off.IsValid, string.Join("\n", off.Errors));
        Assert.Null(off.Config!.Roughtime);

        ConfigResult defaults = ConfigLoader.Parse("roughtime: {}\nclock: { local: {} }");
        Assert.True(defaults.IsValid, string.Join("\n", defaults.Errors));
        RoughtimeConfig roughtime = defaults.Config!.Roughtime!;
        Assert.Equal([IPEndPoint.Parse("0.0.0.0:2002"), IPEndPoint.Parse("[::]:2002")], roughtime.Listen);
        Assert.True(roughtime.Tcp);
        Assert.Equal("/var/lib/appliance/roughtime.key", roughtime.Key);
        Assert.Equal(TimeSpan.FromHours(24), roughtime.OnlineKeyLifetime);

        ConfigResult set = ConfigLoader.Parse("roughtime: { listen: [\"192.0.2.10:5319\"], tcp: false, key: /srv/rt.key, online-key-lifetime: 6h }\nclock: { local: {} }");
        Assert.True(set.IsValid, string.Join("\n", set.Errors));
        roughtime = set.Config!.Roughtime!;
        Assert.Equal([IPEndPoint.Parse("192.0.2.10:5319")], roughtime.Listen);
        Assert.False(roughtime.Tcp);
        Assert.Equal("/srv/rt.key", roughtime.Key);
        Assert.Equal(TimeSpan.FromHours(6), roughtime.OnlineKeyLifetime);
    }

    [Theory]
    [InlineData("roughtime: { online-key-lifetime: 1m }", "'roughtime.online-key-lifetime'")]
    [InlineData("roughtime: { listen: \"0.0.0.0:2002\" }", "roughtime.listen")]
    [InlineData("roughtime: { tcp: maybe }", "roughtime.tcp")]
    [InlineData("roughtime: { port: 2002 }", "unknown key 'roughtime.port'")]
    public void Parse_BadRoughtime_SaysWhatIsWrong(string yaml, string message)
    {
        ConfigResult result = ConfigLoader.Parse(yaml + "\nclock: { local: {} }");
        Assert.False(result.IsValid);
        Assert.Contains(result.Errors, e => e.Message.Contains(message, StringComparison.Ordinal) && e.Fix.Length > 0);
    }

    [Fact]
    public void ConfigurationReference_DocumentsEveryKey()
    {
        string docs = File.ReadAllText(Testing.Repo.Path("docs", "configuration.md"));
        string[] undocumented = ConfigKeys.All.Select(k => k.Path).Where(k => !docs.Contains($"`{k}`", StringComparison.Ordinal)).ToArray();
        Assert.True(undocumented.Length == 0, $"undocumented keys in docs/configuration.md: {string.Join(", ", undocumented)}");
    }

    [Fact]
    public void ShippedConfigs_AreValid()
    {
        // Every YAML the project ships is checked by the server's own loader (as `appliance validate` does).
        string[] files = Directory.GetFiles(Testing.Repo.Path("appliance-image"), "*.yaml", SearchOption.AllDirectories)
            .Concat(Directory.GetFiles(Testing.Repo.Path("docs"), "*.yaml", SearchOption.AllDirectories))
            .ToArray();
        Assert.NotEmpty(files);
        // The image's own configuration names the TLS files its first boot creates (ImageFilesTests
        // ties the paths; the image test validates it inside the booted image): here, every other file
        // it names must exist, as for every other shipped YAML.
        string image = Testing.Repo.Path("appliance-image", "etc", "appliance.yaml");
        string[] madeAtFirstBoot = ["/etc/appliance/tls/fullchain.pem", "/etc/appliance/tls/key.pem"];
        foreach (string file in files)
        {
            ConfigResult bound = ConfigLoader.BindFile(file);
            Assert.True(bound.IsValid, $"{file}:\n{string.Join("\n", bound.Errors.Select(e => e.Format(file)))}");
            IEnumerable<FileReference> needed = file == image ? bound.Files.Where(f => !madeAtFirstBoot.Contains(f.Path)) : bound.Files;
            IReadOnlyList<ConfigError> missing = ConfigPreflight.Check(needed);
            Assert.True(missing.Count == 0, $"{file}:\n{string.Join("\n", missing.Select(e => e.Format(file)))}");
        }
    }

    [Fact]
    public void ShippedConfig_ItsCommentedRoughtimeServers_BindWhenUncommented()
    {
        string text = File.ReadAllText(Testing.Repo.Path("appliance-image", "etc", "appliance.yaml"));
        string uncommented = string.Join("\n", text.Split('\n').Select(l =>
            l.StartsWith("  # roughtime:", StringComparison.Ordinal) || l.StartsWith("  #   - {", StringComparison.Ordinal) ? "  " + l[4..] : l));
        Assert.NotEqual(text, uncommented);
        ConfigResult bound = ConfigLoader.Bind(uncommented);
        Assert.True(bound.IsValid, string.Join("\n", bound.Errors));
        IReadOnlyList<RoughtimeServerConfig> servers = bound.Config!.Clock.Roughtime!.Items;
        Assert.Equal(["roughtime.int08h.com:2002", "roughtime.se:2002", "roughtime.cloudflare.com:2003"], servers.Select(s => s.Name));
        Assert.All(servers, s => Assert.Equal(32, s.PublicKey.Length));
        Assert.Equal(2, bound.Config.Clock.RoughtimeQuorum);
    }
}
