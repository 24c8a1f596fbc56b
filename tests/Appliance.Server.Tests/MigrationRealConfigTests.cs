using System.Globalization;
using System.Net;
using Appliance.Server.Configuration;
using Appliance.Server.Migration;
using Appliance.Testing;
using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Tests;

/// <summary>
/// Real chrony configurations nobody here wrote, read at test time from the installed chrony
/// package (ChronyDocs says where each is from), through the real executable: `appliance migrate` writes the YAML and a report line
/// for every directive, `appliance validate` accepts it, and `appliance serve` starts on it and
/// answers an NTP request. For the serve step only what this machine cannot have is overridden
/// (listen address, the certificate, the key file, a missing device, the fixed metrics port, and
/// clock.mode: software so that the test never steers this machine's clock); the rest of the YAML
/// is served unchanged, which the test checks. A configuration with an allow list is served in a
/// network namespace where the client has an allowed address, and a client outside the list is
/// checked to get nothing.
/// </summary>
public class MigrationRealConfigTests
{
    private static readonly string[] s_overridden =
    [
        "ntp.listen", "clock.mode", "metrics.listen", "nts-ke.certificate", "nts-ke.private-key", "nts-ke.listen", "nts-ke.keys.storage",
    ];

    /// <summary>The case (ChronyDocs.Names), and whether it names files or devices this machine does not have (validate --no-files).</summary>
    public static TheoryData<string, bool> Files => new()
    {
        // Whole files of the package: Debian's default and upstream's three examples.
        { "debian", false },
        { "example1", false },
        { "example2", false },
        { "example3", false },
        // Found in the FAQ: a GPS + PPS stratum 1 (§2.12, third option), gpsd's socket (§2.12, first option), the hardened NTS client (§2.6).
        { "faq-gps-pps", true },
        { "faq-gps-sock", false },
        { "faq-nts-hardened", false },
        // Found in chrony.conf(5) EXAMPLES, "Isolated networks": the allow-listed LAN server, and the orphan server.
        { "man-isolated-server", false },
        { "man-orphan-server", false },
        // Composed, as chrony's docs have no complete NTS server file: Debian's chrony.conf from the
        // package with chrony.conf(5)'s NTS server directives (ntsserverkey, ntsservercert, ntsport)
        // and an allow list appended; the key and certificate it names do not exist here.
        { "composed-nts-server", true },
    };

    [Theory]
    [MemberData(nameof(Files))]
    public async Task RealConfig_Migrates_Validates_StartsAndAnswersNtp(string name, bool namesMissingFiles)
    {
        string root = MigrationHelpers.Scratch(); // --root: nothing of this machine's /etc is read
        string source = Path.Combine(root, "chrony.conf");
        File.WriteAllText(source, ChronyDocs.Config(name));
        string yamlPath = Path.Combine(root, "appliance.yaml");
        string reportPath = Path.Combine(root, "report.txt");

        CommandResult migrate = await ApplianceProcess.RunAsync("migrate", source, "--root", root, "-o", yamlPath, "--report", reportPath);

        string report = File.ReadAllText(reportPath);
        bool notMapped = report.Contains(": not mapped: ", StringComparison.Ordinal);
        Assert.True(migrate.ExitCode == (notMapped ? MigrateCommand.ExitNotMapped : 0), migrate + report);
        Assert.Equal(notMapped, migrate.StdErr.Contains("not mapped: read them in the report", StringComparison.Ordinal));
        // A report line for every directive line of the file, with its file:line.
        string[] lines = File.ReadAllLines(source);
        for (int i = 0; i < lines.Length; i++)
        {
            string trimmed = lines[i].Trim();
            if (trimmed.Length > 0 && !"!;#%".Contains(trimmed[0], StringComparison.Ordinal))
            {
                Assert.Contains($"{source}:{i + 1}: {trimmed.Split(' ')[0].ToLowerInvariant()}: ", report, StringComparison.Ordinal);
            }
        }

        CommandResult validate = await ApplianceProcess.RunAsync(namesMissingFiles ? ["validate", yamlPath, "--no-files"] : ["validate", yamlPath]);
        Assert.True(validate.ExitCode == 0, validate.ToString());
        if (!namesMissingFiles)
        {
            Assert.True(ConfigLoader.LoadFile(yamlPath).IsValid);
        }

        YamlMappingNode migrated = MigrationHelpers.Load(File.ReadAllText(yamlPath));
        string allow = MigrationHelpers.Value(migrated, "ntp.access.allow");
        if (allow == "(absent)")
        {
            await ServeAndAskAsync(migrated, root, ns: null, client: null);
            return;
        }
        // An allow list: serve in a namespace, ask from an allowed address there.
        string prefix = allow.Split(", ")[0];
        IPAddress client = HostIn(prefix);
        await using NetworkNamespace ns = await NetworkNamespace.CreateAsync("migrate");
        await Run.CheckedAsync("ip", "-n", ns.Name, "addr", "add", $"{client}/32", "dev", "lo");
        await ServeAndAskAsync(migrated, root, ns, client);
    }

    /// <summary>Each case found in chrony's FAQ or man page: its directives in order, and the line it was chosen for.</summary>
    public static TheoryData<string, string, string> Extracted => new()
    {
        { "faq-gps-pps", "refclock refclock", "refclock PPS /dev/pps0 lock NMEA refid GPS" },
        { "faq-gps-sock", "refclock", "refclock SOCK /var/run/chrony.ttyS0.sock refid GPS" },
        { "faq-nts-hardened", "server server server server server minsources maxchange makestep maxdrift maxslewrate driftfile ntsdumpdir rtcsync", "server foo.example.net iburst nts maxdelay 0.1" },
        { "man-isolated-server", "initstepslew driftfile local manual allow smoothtime rtcsync", "allow 192.168.165.0/24" },
        { "man-orphan-server", "initstepslew server server driftfile local manual allow rtcsync", "local stratum 8 orphan" },
    };

    [Theory]
    [MemberData(nameof(Extracted))]
    public void ChronyDocs_FindsEachExtractedConfig_WithItsDirectivesInOrder(string name, string directives, string line)
    {
        string[] lines = ChronyDocs.Config(name).TrimEnd('\n').Split('\n');
        Assert.Equal(directives, string.Join(" ", lines.Select(l => l.Split(' ')[0])));
        Assert.Contains(line, lines);
    }

    [Fact]
    public void ChronyDocs_ComposedNtsServer_IsDebiansFile_WithTheManPagesNtsServerDirectivesAppended()
    {
        string composed = ChronyDocs.Config("composed-nts-server");
        string debian = ChronyDocs.Read(ChronyDocs.DebianConf);
        Assert.StartsWith(debian, composed, StringComparison.Ordinal);
        Assert.Equal(ChronyDocs.NtsServerDirectives, composed[debian.Length..].Trim('\n').Split('\n'));
        // Each appended directive is a directive heading of chrony.conf(5): "\fBname\fP ..." with an indented block after it.
        string[] man = ChronyDocs.Read(ChronyDocs.ManPage).Split('\n');
        foreach (string directive in ChronyDocs.NtsServerDirectives.Select(d => d.Split(' ')[0]))
        {
            Assert.Contains(man.Select((l, i) => (l, i)), e => e.l.StartsWith($"\\fB{directive}\\fP ", StringComparison.Ordinal) && e.i + 1 < man.Length && man[e.i + 1] == ".RS 4");
        }
    }

    [Fact]
    public void ChronyDocs_MissingFile_FailsWithHowToInstallChrony()
    {
        string missing = Path.Combine(MigrationHelpers.Scratch(), "chrony.conf");
        var failure = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => ChronyDocs.Read(missing));
        Assert.Contains(ChronyDocs.Install, failure.Message, StringComparison.Ordinal);
        Assert.Contains(missing, failure.Message, StringComparison.Ordinal);
    }

    private static async Task ServeAndAskAsync(YamlMappingNode migrated, string root, NetworkNamespace? ns, IPAddress? client)
    {
        int port = Ports.FreeUdpPort();
        IPAddress listen = client ?? IPAddress.Loopback;
        TestCertificate? certificate = migrated.Children.ContainsKey(new YamlScalarNode(K.NtsKe.Name)) ? TestCertificate.Create("localhost") : null;
        string servedPath = Path.Combine(root, "served.yaml");
        YamlMappingNode served = MigrationHelpers.Load(new YamlStream(new YamlDocument(migrated)).ToText());
        List<int> dropped = Override(served, new IPEndPoint(listen, port), certificate, root);
        File.WriteAllText(servedPath, new YamlStream(new YamlDocument(served)).ToText());

        // What was not overridden is served as migrated: the same keys and values, the same sources but the dropped.
        YamlMappingNode reread = MigrationHelpers.Load(File.ReadAllText(servedPath));
        Assert.Equal(Rest(migrated, dropped), Rest(reread, []));

        await using PeerProcess server = ns is null
            ? ApplianceProcess.Start("serve", "--config", servedPath)
            : ApplianceProcess.StartIn(ns, "serve", "--config", servedPath);
        await server.WaitForOutputAsync("serving NTP on UDP", TimeSpan.FromSeconds(30));

        if (ns is null)
        {
            byte[]? reply = await NtpQuery.ExchangeAsync(new IPEndPoint(IPAddress.Loopback, port), NtpQuery.ClientRequest(7), TimeSpan.FromSeconds(5));
            Assert.True(reply is { Length: >= 48 }, server.Output);
            Assert.Equal(4, reply![0] & 7); // mode 4: a server's answer
            return;
        }
        CommandResult allowed = await AskInAsync(ns, client!, new IPEndPoint(listen, port));
        Assert.True(allowed.ExitCode == 0, allowed + server.Output);
        Assert.Equal("4", allowed.StdOut.Trim());
        // 127.0.0.1 is outside the migrated allow list: it gets nothing.
        CommandResult denied = await AskInAsync(ns, IPAddress.Loopback, new IPEndPoint(listen, port));
        Assert.True(denied.ExitCode == 3, denied.ToString());
    }

    /// <summary>Applies the overrides; returns the indices of the sources dropped (a device this machine lacks).</summary>
    private static List<int> Override(YamlMappingNode root, IPEndPoint listen, TestCertificate? certificate, string directory)
    {
        YamlMappingNode Section(YamlMappingNode parent, string name)
        {
            if (!parent.Children.TryGetValue(new YamlScalarNode(name), out YamlNode? node))
            {
                node = new YamlMappingNode();
                parent.Children[new YamlScalarNode(name)] = node;
            }
            return (YamlMappingNode)node;
        }
        YamlSequenceNode One(string address) => new(new YamlScalarNode(address) { Style = YamlDotNet.Core.ScalarStyle.DoubleQuoted });

        string Address(IPEndPoint e) => e.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{e.Address}]:{e.Port}" : $"{e.Address}:{e.Port}";
        Section(root, "ntp").Children[new YamlScalarNode("listen")] = One(Address(listen));
        Section(root, "clock").Children[new YamlScalarNode("mode")] = new YamlScalarNode("software");
        Section(root, "metrics").Children[new YamlScalarNode("listen")] = new YamlScalarNode("off");
        if (certificate is not null)
        {
            YamlMappingNode nts = Section(root, "nts-ke");
            nts.Children[new YamlScalarNode("certificate")] = new YamlScalarNode(certificate.CertificatePath);
            nts.Children[new YamlScalarNode("private-key")] = new YamlScalarNode(certificate.KeyPath);
            nts.Children[new YamlScalarNode("listen")] = One(Address(new IPEndPoint(listen.Address, Ports.FreeTcpPort())));
            Section(Section(root, "nts-ke"), "keys").Children[new YamlScalarNode("storage")] = new YamlScalarNode(Path.Combine(directory, "nts-keys"));
        }
        var dropped = new List<int>();
        if (root.Children.TryGetValue(new YamlScalarNode("sources"), out YamlNode? sources))
        {
            var list = (YamlSequenceNode)sources;
            for (int i = list.Children.Count - 1; i >= 0; i--)
            {
                var entry = (YamlMappingNode)list.Children[i];
                var (kind, body) = (((YamlScalarNode)entry.Children.Keys.Single()).Value!, (YamlMappingNode)entry.Children.Values.Single());
                if (kind is "pps" or "phc" && !File.Exists(((YamlScalarNode)body.Children[new YamlScalarNode("device")]).Value))
                {
                    list.Children.RemoveAt(i);
                    dropped.Add(i);
                }
            }
        }
        return dropped;
    }

    /// <summary>Every scalar but the overridden ones; the sources as a list of their own flattened entries, the dropped left out.</summary>
    private static string Rest(YamlMappingNode root, List<int> dropped)
    {
        var flat = MigrationHelpers.Flatten(root).Where(p => !s_overridden.Any(o => p.Key == o || p.Key.StartsWith(o + "[", StringComparison.Ordinal) || p.Key.StartsWith(o + ".", StringComparison.Ordinal))
            && !p.Key.StartsWith("sources", StringComparison.Ordinal) && p.Key is not ("ntp" or "clock" or "metrics")).Select(p => $"{p.Key}={p.Value}");
        var sources = root.Children.TryGetValue(new YamlScalarNode("sources"), out YamlNode? node)
            ? ((YamlSequenceNode)node).Children.Select((s, i) => (s, i)).Where(e => !dropped.Contains(e.i))
                .Select(e => string.Join(";", MigrationHelpers.Flatten(e.s).Select(p => $"{p.Key}={p.Value}")))
            : [];
        return string.Join("\n", flat) + "\n--- sources\n" + string.Join("\n", sources);
    }

    /// <summary>A host address in <paramref name="prefix"/> ("192.168.0.0/16" gives 192.168.0.2).</summary>
    private static IPAddress HostIn(string prefix)
    {
        byte[] bytes = IPAddress.Parse(prefix.Split('/')[0]).GetAddressBytes();
        if (prefix.Contains('/', StringComparison.Ordinal))
        {
            bytes[^1] |= 2;
        }
        return new IPAddress(bytes);
    }

    /// <summary>One NTP request from <paramref name="from"/> inside the namespace: prints the reply's mode, exit 3 on no reply within 3 s.</summary>
    private static Task<CommandResult> AskInAsync(NetworkNamespace ns, IPAddress from, IPEndPoint to)
    {
        const string script = """
            import socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((sys.argv[1], 0))
            s.settimeout(3)
            s.sendto(bytes([0x23]) + bytes(39) + bytes([1, 2, 3, 4, 5, 6, 7, 8]), (sys.argv[2], int(sys.argv[3])))
            try:
                reply = s.recv(2048)
            except socket.timeout:
                sys.exit(3)
            print(reply[0] & 7)
            """;
        return ns.RunAsync(TimeSpan.FromSeconds(20), "/usr/bin/python3", "-c", script, from.ToString(), to.Address.ToString(), to.Port.ToString(CultureInfo.InvariantCulture));
    }
}

internal static class YamlStreamText
{
    public static string ToText(this YamlStream stream)
    {
        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        stream.Save(writer, assignAnchors: false);
        return writer.ToString();
    }
}
