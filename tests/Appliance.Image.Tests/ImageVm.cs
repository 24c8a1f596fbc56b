using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Appliance.Testing;

namespace Appliance.Image.Tests;

/// <summary>
/// The appliance image (`make image`, out/image) booted once under QEMU's plain emulation (TCG: no KVM
/// on these machines) with user networking, for every test of the class. The product image is never
/// changed: a sparse copy gets a test configuration (kernel clock mode on the guest's own clock, a
/// chronyd on the host as its upstream, a local reference until it is selected, an NTS-KE
/// certificate made here, the NTS-KE server advertising the host's forwarded NTP port), a static
/// address with no gateway and no DNS, and the reporter unit, written with debugfs: the guest reaches
/// nothing beyond QEMU's user subnet, a documentation range (192.0.2.0/24, RFC 5737). (Not QEMU's
/// restrict=on: it also drops the guest's UDP replies to the forwarded NTP port.) The VM is killed
/// by its PID at the end. A cold start (<see cref="ColdStartRoughtime"/>) boots the guest's clock
/// years behind instead, with an NTS server and a Roughtime server on the host as its only time.
/// </summary>
public class ImageVm : IAsyncLifetime
{
    /// <summary>Boot to the reporter's READY: ~1 min under TCG on these machines, bounded well above.</summary>
    private static readonly TimeSpan s_bootTimeout = TimeSpan.FromMinutes(6);

    private static readonly TimeSpan s_reportTimeout = TimeSpan.FromMinutes(2);

    private static readonly HttpClient s_http = new() { Timeout = TimeSpan.FromSeconds(20) };

    private readonly StringBuilder _channel = new();
    private readonly StringBuilder _qemuOutput = new();
    private readonly Lock _gate = new();
    private Process? _qemu;
    private Socket? _report;
    private Task _reader = Task.CompletedTask;

    public ImageVm()
        : this(softwareClock: false)
    {
    }

    /// <param name="softwareClock">
    /// clock.mode software with appliance-image/systemd/software-clock.conf as a drop-in (and the local
    /// reference only), instead of kernel mode from a chronyd on the host.
    /// </param>
    /// <param name="coldStart">A cold start (issue #21): kernel mode, the guest's RTC years behind, and this Roughtime server on the host.</param>
    protected ImageVm(bool softwareClock, ColdStartRoughtime? coldStart = null)
    {
        SoftwareClock = softwareClock;
        ColdStart = coldStart;
        Directory = Repo.Path("out", "image-test", coldStart is { } c ? $"cold-start-{c.ToString().ToLowerInvariant()}"
            : softwareClock ? "software-clock" : "kernel-clock");
        ChronyQuery = new(() => Run.CommandAsync("chronyd",
            ["-Q", "-t", "30", $"server 127.0.0.1 port {NtpPort} iburst", $"pidfile {Path.Combine(Directory, "chronyq.pid")}", "cmdport 0"],
            TimeSpan.FromSeconds(60)));
        NtsClient = new(RunNtsClientAsync);
        Reload = new(async () => (await RequestAsync("reload"))["reload"]);
        KernelSync = new(WaitForKernelSyncAsync);
    }

    /// <summary>`appliance status` in the guest once it reports the kernel clock synchronised (bounded); run once.</summary>
    public Lazy<Task<string>> KernelSync { get; }

    private async Task<string> WaitForKernelSyncAsync()
    {
        var deadline = Stopwatch.StartNew();
        string status = "";
        while (deadline.Elapsed < TimeSpan.FromMinutes(4))
        {
            status = (await RequestAsync("status"))["status"];
            if (IsKernelSynchronised(status))
            {
                return status;
            }
            await Task.Delay(5000);
        }
        return status;
    }

    /// <summary>`appliance status` says the kernel clock is synchronised (not "unsynchronised (kernel mode)", which holds the same words).</summary>
    public static bool IsKernelSynchronised(string status) => Regex.IsMatch(status, @"(?m)^Clock\s*:\s*synchronised \(kernel mode\)");

    public bool SoftwareClock { get; }

    public ColdStartRoughtime? ColdStart { get; }

    /// <summary>Where the guest's RTC starts in a cold start (QEMU's -rtc base): years before any certificate in use.</summary>
    public const string ColdStartRtc = "2019-06-01T00:00:00";

    public string Directory { get; }

    /// <summary>`chronyd -Q` (prints the offset, never sets the clock) against the forwarded NTP port; run once.</summary>
    public Lazy<Task<CommandResult>> ChronyQuery { get; }

    /// <summary>A chronyd NTS client (-x: never touches the clock) through the forwarded NTS-KE port: its log, authdata and ntpdata; run once.</summary>
    public Lazy<Task<string>> NtsClient { get; }

    /// <summary>`systemctl reload appliance` in the guest: the reporter's reload section; run once.</summary>
    public Lazy<Task<string>> Reload { get; }

    public int NtpPort { get; } = Ports.FreeUdpPort();

    public int KePort { get; } = Ports.FreeTcpPort();

    public int MetricsPort { get; } = Ports.FreeTcpPort();

    /// <summary>The guest's address on QEMU's user network (static in the test image: see <see cref="WriteTestFilesAsync"/>).</summary>
    public const string GuestAddress = "192.0.2.15";

    /// <summary>The host as the guest sees it on QEMU's user network (net=192.0.2.0/24, host=): its loopback services.</summary>
    public const string HostAlias = "192.0.2.2";

    /// <summary>The guest appliance's upstream: a chronyd on the host's loopback (-x: it never touches the host's clock).</summary>
    private ChronyServer? _upstream;

    /// <summary>A cold start's Roughtime server on the host: the appliance itself (out/bin/appliance), and the lying clock it may follow.</summary>
    private PeerProcess? _roughtime;
    private TestNtpServer? _lyingClock;

    /// <summary>A cold start: the NTS upstream's certificate, valid from two hours ago only (the guest's clock is years behind that).</summary>
    public TestCertificate UpstreamCertificate { get; } =
        TestCertificate.CreateValidBetween(DateTimeOffset.UtcNow.AddHours(-2), DateTimeOffset.UtcNow.AddDays(30), "ntp.test");

    /// <summary>A cold start: the Roughtime server's UDP port on the host, and its long-term public key (base64).</summary>
    public int RoughtimePort { get; } = Ports.FreeUdpPort();

    public string RoughtimePublicKey { get; private set; } = Convert.ToBase64String(new byte[32]);

    /// <summary>The host's Roughtime server's output (a cold start with one running).</summary>
    public string RoughtimeLog => _roughtime?.Output ?? "";

    public TestCertificate Certificate { get; } = TestCertificate.Create("ntp.test", "127.0.0.1");

    /// <summary>Seconds from QEMU's start to the reporter's first READY (the appliance active).</summary>
    public double BootSeconds { get; private set; }

    /// <summary>The report taken at start, before any test talked to the VM: section name → text.</summary>
    public IReadOnlyDictionary<string, string> Report { get; private set; } = new Dictionary<string, string>();

    public string ConsoleLog => File.Exists(ConsolePath) ? File.ReadAllText(ConsolePath) : "";

    private string ConsolePath => Path.Combine(Directory, "console.log");

    /// <summary>What the test image adds to a copy of the product image, at the guest paths.</summary>
    private string TestConfig => $"""
        # The image test's configuration (tests/Appliance.Image.Tests): never shipped.
        ntp:
          listen: ["0.0.0.0:123", "[::]:123"]
          rate-limit: off
        {ClockSection}
        nts-ke:
          listen: ["0.0.0.0:4460"]
          certificate: /etc/appliance/image-test/fullchain.pem
          private-key: /etc/appliance/image-test/key.pem
          keys: {"{"} storage: /var/lib/appliance/nts-keys {"}"}
          # The client reaches the guest's port 123 through the host's forwarded port.
          ntp-server: "127.0.0.1:{NtpPort}"
        metrics:
          # The guest's address, which the forwarded port reaches. Not 0.0.0.0: the metrics listener
          # (HttpListener) refuses that host.
          listen: "{GuestAddress}:9975"

        """;

    private string ClockSection => ColdStart is not null
        ? $"""
          # A cold start (issue #21): kernel mode as shipped, no local reference, the guest's clock
          # years behind; NTS from a chronyd on the host (its certificate valid from two hours ago),
          # and a Roughtime server on the host to bound the time before NTS-KE.
          clock:
            mode: kernel
            leap-seconds: /usr/share/zoneinfo/leap-seconds.list
            roughtime:
              - {"{"} address: "{HostAlias}:{RoughtimePort}", public-key: "{RoughtimePublicKey}" {"}"}
          sources:
            - ntp: {"{"} address: "{HostAlias}:{_upstream!.NtsKePort}", nts: true, name: ntp.test, trust: /etc/appliance/image-test/upstream.pem, iburst: true, minpoll: 4, maxpoll: 4 {"}"}
          """
        : SoftwareClock
        ? """
          # Software mode under the software-clock drop-in: the system clock is never touched, and the
          # host clock is served as a local reference.
          clock:
            mode: software
            local: { stratum: 5 }
            leap-seconds: /usr/share/zoneinfo/leap-seconds.list
          """
        : $"""
          # Kernel mode, as shipped: the appliance disciplines the guest's clock (never the host's: the
          # guest's clock is QEMU's) from a chronyd on the host, through QEMU's host alias; served at
          # stratum 10 from the local clock until that source is selected.
          clock:
            mode: kernel
            local: {"{"} stratum: 10 {"}"}
            leap-seconds: /usr/share/zoneinfo/leap-seconds.list
          sources:
            - ntp: {"{"} address: "{HostAlias}:{_upstream!.Port}", iburst: true, minpoll: 4, maxpoll: 4 {"}"}
          """;

    public async Task InitializeAsync()
    {
        string image = Repo.Path("out", "image", "appliance.img");
        string kernel = Repo.Path("out", "image", "vmlinuz");
        string initrd = Repo.Path("out", "image", "initrd.img");
        string cmdline = Repo.Path("out", "image", "cmdline");
        foreach (string file in new[] { image, kernel, initrd, cmdline })
        {
            Assert.True(File.Exists(file), $"{file} is missing: run make image (make image-test does)");
        }
        string qemu = Which("qemu-system-x86_64", "qemu-system-x86");
        Which("debugfs", "e2fsprogs");

        if (System.IO.Directory.Exists(Directory))
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        System.IO.Directory.CreateDirectory(Directory);
        if (ColdStart is { } scenario)
        {
            await StartColdStartPeersAsync(scenario);
        }
        else if (!SoftwareClock)
        {
            _upstream = await ChronyServer.StartAsync();
        }
        string copy = Path.Combine(Directory, "test.img");
        await Run.CheckedAsync("cp", "--sparse=always", image, copy);
        await WriteTestFilesAsync(copy);

        string socket = Path.Combine(Directory, "report.sock");
        string append = (await File.ReadAllTextAsync(cmdline)).Trim() + " systemd.wants=appliance-image-check.service";
        var info = new ProcessStartInfo(qemu)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string arg in new[]
        {
            "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", append,
            "-drive", $"file={copy},format=raw,if=virtio",
            "-nic", $"user,net=192.0.2.0/24,host={HostAlias},hostfwd=udp:127.0.0.1:{NtpPort}-:123,hostfwd=tcp:127.0.0.1:{KePort}-:4460,hostfwd=tcp:127.0.0.1:{MetricsPort}-:9975",
            "-serial", $"file:{ConsolePath}",
            "-serial", $"unix:{socket},server=on,wait=off",
        })
        {
            info.ArgumentList.Add(arg);
        }
        if (ColdStart is not null)
        {
            // The RTC the guest kernel sets its clock from at boot (no kvmclock under TCG): years back.
            info.ArgumentList.Add("-rtc");
            info.ArgumentList.Add($"base={ColdStartRtc}");
        }
        var started = Stopwatch.StartNew();
        _qemu = Process.Start(info) ?? throw new InvalidOperationException("cannot start qemu");
        _qemu.OutputDataReceived += (_, e) => AppendQemu(e.Data);
        _qemu.ErrorDataReceived += (_, e) => AppendQemu(e.Data);
        _qemu.BeginOutputReadLine();
        _qemu.BeginErrorReadLine();

        _report = await ConnectAsync(socket, TimeSpan.FromSeconds(30));
        _reader = Task.Run(ReadChannelAsync);
        await WaitForAsync(text => text.Contains("==READY\n", StringComparison.Ordinal) || text.Contains("==NOTREADY\n", StringComparison.Ordinal), s_bootTimeout, "the reporter's READY");
        BootSeconds = started.Elapsed.TotalSeconds;
        Report = await RequestAsync("report");
    }

    /// <summary>
    /// Asks the reporter for sections (<c>report</c>, <c>reload</c>) and waits for them. A request
    /// the reporter has not begun to answer within 30 s is sent again: a line the guest's tty got
    /// mangled (a cold start's first request once went unanswered for 2 minutes while the reporter
    /// went on saying READY; bash's read -t drops a line it timed out in) is not read as the
    /// command, and nothing of it ran. (The first section starts at once: 30 s without it is no
    /// slow answer.)
    /// </summary>
    public async Task<IReadOnlyDictionary<string, string>> RequestAsync(string command)
    {
        int from;
        lock (_gate)
        {
            from = _channel.Length;
        }
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            await _report!.SendAsync(Encoding.ASCII.GetBytes("\n" + command + "\n"));
            try
            {
                await WaitForAsync(t => t.IndexOf("==BEGIN ", from, StringComparison.Ordinal) >= 0, TimeSpan.FromSeconds(30), $"the start of the answer to '{command}'");
                break;
            }
            catch (TimeoutException) when (deadline.Elapsed < s_reportTimeout)
            {
            }
        }
        string text = await WaitForAsync(t => t.IndexOf("==DONE\n", from, StringComparison.Ordinal) >= 0, s_reportTimeout, $"the answer to '{command}'");
        return ParseSections(text[from..text.IndexOf("==DONE\n", from, StringComparison.Ordinal)]);
    }

    /// <summary>
    /// /metrics through the forwarded port, naming the listen address as Host: the listener answers 404
    /// to any other (docs/configuration.md, metrics.listen).
    /// </summary>
    public async Task<MetricsScrape> ScrapeAsync()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"http://127.0.0.1:{MetricsPort}/metrics"));
        request.Headers.Host = $"{GuestAddress}:9975";
        using HttpResponseMessage response = await s_http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return MetricsScrape.Parse(await response.Content.ReadAsStringAsync());
    }

    /// <summary>"==BEGIN name" ... "==END name" blocks.</summary>
    internal static Dictionary<string, string> ParseSections(string text)
    {
        var sections = new Dictionary<string, string>(StringComparer.Ordinal);
        string? name = null;
        var body = new StringBuilder();
        foreach (string line in text.Split('\n'))
        {
            if (name is null && line.StartsWith("==BEGIN ", StringComparison.Ordinal))
            {
                name = line["==BEGIN ".Length..];
                body.Clear();
            }
            else if (name is not null && line == $"==END {name}")
            {
                sections[name] = body.ToString().TrimEnd();
                name = null;
            }
            else if (name is not null)
            {
                body.Append(line).Append('\n');
            }
        }
        return sections;
    }

    /// <summary>A section of the start report, or a failure naming what the report holds.</summary>
    public string Section(string name) =>
        Report.TryGetValue(name, out string? text) ? text : throw new InvalidOperationException($"no section '{name}' in the report; it has: {string.Join(", ", Report.Keys)}\n{Channel}");

    public string Channel
    {
        get
        {
            lock (_gate)
            {
                return _channel.ToString();
            }
        }
    }

    public async Task DisposeAsync()
    {
        _report?.Dispose();
        if (_qemu is { } qemu)
        {
            if (!qemu.HasExited)
            {
                // By its PID, never by name: other engineers' VMs may run on this machine.
                qemu.Kill();
                await qemu.WaitForExitAsync();
            }
            qemu.Dispose();
        }
        await _reader.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (_upstream is not null)
        {
            await _upstream.DisposeAsync();
        }
        if (_roughtime is not null)
        {
            await _roughtime.DisposeAsync();
        }
        if (_lyingClock is not null)
        {
            await _lyingClock.DisposeAsync();
        }
        File.Delete(Path.Combine(Directory, "test.img"));
    }

    /// <summary>
    /// A cold start's peers on the host: the chronyd NTS server (naming the host alias as its NTP
    /// server, since its clients are the guest), and the Roughtime server, the appliance itself in
    /// software mode on its local clock or following a clock an hour ahead; none for
    /// <see cref="ColdStartRoughtime.Stopped"/>, whose configured port nothing answers.
    /// </summary>
    private async Task StartColdStartPeersAsync(ColdStartRoughtime scenario)
    {
        _upstream = await ChronyServer.StartAsync(UpstreamCertificate, HostAlias);
        if (scenario == ColdStartRoughtime.Stopped)
        {
            return;
        }
        string time = "clock: { mode: software, local: { stratum: 10 } }";
        if (scenario == ColdStartRoughtime.AnHourAhead)
        {
            _lyingClock = TestNtpServer.Shifted(3600);
            time = $"clock: {{ mode: software }}\nsources: [ {{ ntp: {{ address: \"{_lyingClock.EndPoint}\", minpoll: 0, maxpoll: 1 }} }} ]";
        }
        string config = Path.Combine(Directory, "host-roughtime.yaml");
        await File.WriteAllTextAsync(config, $$"""
            # The host's Roughtime server for the cold-start image test.
            ntp: { listen: ["127.0.0.1:{{Ports.FreeUdpPort()}}"], workers: 1 }
            {{time}}
            metrics: { listen: off }
            control: { socket: off }
            roughtime: { listen: ["127.0.0.1:{{RoughtimePort}}"], tcp: false, key: {{Path.Combine(Directory, "roughtime.key")}} }

            """);
        _roughtime = new PeerProcess(Repo.Path("out", "bin", "appliance"), ["serve", "--config", config]);
        await _roughtime.WaitForOutputAsync("serving Roughtime", TimeSpan.FromSeconds(30));
        Match key = Regex.Match(_roughtime.Output, "long-term public key ([A-Za-z0-9+/=]{44})");
        Assert.True(key.Success, _roughtime.Output);
        RoughtimePublicKey = key.Groups[1].Value;
        if (scenario == ColdStartRoughtime.AnHourAhead)
        {
            // It signs nothing until synchronised: wait for the lie to be its time.
            await _roughtime.WaitForOutputAsync("clock: synchronised", TimeSpan.FromSeconds(30));
        }
    }

    private async Task<string> RunNtsClientAsync()
    {
        string dir = Path.Combine(Certificate.Directory, "chrony");
        System.IO.Directory.CreateDirectory(dir);
        await Run.CheckedAsync("chown", "_chrony:_chrony", dir);
        await Run.CheckedAsync("chmod", "750", dir);
        string conf = Path.Combine(Certificate.Directory, "client.conf");
        await File.WriteAllTextAsync(conf, $"""
            server 127.0.0.1 iburst nts ntsport {KePort} minpoll 0 maxpoll 0
            ntstrustedcerts {Certificate.CertificatePath}
            ntsdumpdir {dir}
            port 0
            cmdport 0
            bindcmdaddress {dir}/chronyd.sock
            pidfile {dir}/chronyd.pid

            """);
        await using var chrony = new PeerProcess("chronyd", ["-x", "-d", "-f", conf]);
        await chrony.WaitForOutputAsync("Selected source 127.0.0.1", TimeSpan.FromSeconds(90));
        string authdata = (await Run.CheckedAsync("chronyc", "-h", $"{dir}/chronyd.sock", "-n", "authdata")).StdOut;
        string ntpdata = (await Run.CheckedAsync("chronyc", "-h", $"{dir}/chronyd.sock", "-n", "ntpdata")).StdOut;
        return $"{chrony.Output}\n--- authdata\n{authdata}\n--- ntpdata\n{ntpdata}";
    }

    private async Task WriteTestFilesAsync(string copy)
    {
        string group = (await Run.CheckedAsync("debugfs", "-R", "cat /etc/group", copy)).StdOut;
        string gid = group.Split('\n').Select(l => l.Split(':')).First(f => f[0] == "appliance")[2];
        string guest = Path.Combine(AppContext.BaseDirectory, "guest");
        string config = Path.Combine(Directory, "image-test.yaml");
        await File.WriteAllTextAsync(config, TestConfig);
        string dropIn = Path.Combine(Directory, "image-test.conf");
        await File.WriteAllTextAsync(dropIn, """
            # The image test's drop-in: the test configuration instead of the shipped one (which the
            # reporter validates in place). Nothing else of the unit changes.
            [Service]
            ExecStart=
            ExecStart=/usr/bin/appliance serve --config /etc/appliance/image-test.yaml

            """);
        string network = Path.Combine(Directory, "80-wired.network");
        await File.WriteAllTextAsync(network, $"""
            # The image test's network: QEMU's user network with no gateway and no DNS server, so the guest
            # reaches nothing beyond its own subnet (QEMU's host alias {HostAlias} answers the forwarded ports).
            [Match]
            Name=en* eth*

            [Network]
            Address={GuestAddress}/24

            """);
        // debugfs takes one command a line; file modes are octal with the file type (0100000 regular, 040000 directory).
        var script = new StringBuilder();
        void Put(string source, string target, string mode, string owner)
        {
            script.Append(CultureInfo.InvariantCulture, $"write {source} {target}\n");
            script.Append(CultureInfo.InvariantCulture, $"set_inode_field {target} mode 0100{mode}\n");
            script.Append(CultureInfo.InvariantCulture, $"set_inode_field {target} uid 0\n");
            script.Append(CultureInfo.InvariantCulture, $"set_inode_field {target} gid {owner}\n");
        }
        script.Append("mkdir /etc/appliance/image-test\n");
        script.Append(CultureInfo.InvariantCulture, $"set_inode_field /etc/appliance/image-test mode 040750\nset_inode_field /etc/appliance/image-test gid {gid}\n");
        Put(Certificate.CertificatePath, "/etc/appliance/image-test/fullchain.pem", "644", gid);
        Put(Certificate.KeyPath, "/etc/appliance/image-test/key.pem", "640", gid);
        Put(config, "/etc/appliance/image-test.yaml", "640", gid);
        if (ColdStart is { } scenario)
        {
            Put(UpstreamCertificate.CertificatePath, "/etc/appliance/image-test/upstream.pem", "644", gid);
            if (scenario == ColdStartRoughtime.Stopped)
            {
                // The last time this board was known good, a minute ago (later than the commit built,
                // so the floor is the file's): what a board restarted after a power cut holds. With
                // Roughtime silent, the floor it gives must carry NTS-KE alone.
                string passwd = (await Run.CheckedAsync("debugfs", "-R", "cat /etc/passwd", copy)).StdOut;
                string uid = passwd.Split('\n').Select(l => l.Split(':')).First(f => f[0] == "appliance")[2];
                string known = Path.Combine(Directory, "last-known-time");
                await File.WriteAllTextAsync(known, DateTimeOffset.UtcNow.AddMinutes(-1).ToString("yyyy-MM-ddTHH:mm:ss.fffffffZ", CultureInfo.InvariantCulture) + "\n");
                script.Append("mkdir /var/lib/appliance\n");
                script.Append(CultureInfo.InvariantCulture, $"set_inode_field /var/lib/appliance mode 040700\nset_inode_field /var/lib/appliance uid {uid}\nset_inode_field /var/lib/appliance gid {gid}\n");
                Put(known, "/var/lib/appliance/last-known-time", "600", gid);
                script.Append(CultureInfo.InvariantCulture, $"set_inode_field /var/lib/appliance/last-known-time uid {uid}\n");
            }
        }
        script.Append("mkdir /etc/systemd/system/appliance.service.d\n");
        Put(dropIn, "/etc/systemd/system/appliance.service.d/image-test.conf", "644", "0");
        if (SoftwareClock)
        {
            // As docs/deploying.md says: the drop-in the image ships, copied into place.
            Put(Hardening.SoftwareClockDropInPath, "/etc/systemd/system/appliance.service.d/software-clock.conf", "644", "0");
        }
        script.Append("rm /etc/systemd/network/80-wired.network\n");
        Put(network, "/etc/systemd/network/80-wired.network", "644", "0");
        Put(Path.Combine(guest, "appliance-image-check.service"), "/etc/systemd/system/appliance-image-check.service", "644", "0");
        Put(Path.Combine(guest, "appliance-image-check"), "/usr/local/sbin/appliance-image-check", "755", "0");
        string commands = Path.Combine(Directory, "debugfs.cmd");
        await File.WriteAllTextAsync(commands, script.ToString());
        CommandResult result = await Run.CommandAsync("debugfs", ["-w", "-f", commands, copy], TimeSpan.FromSeconds(60));
        // debugfs exits 0 even when a command fails: its complaints are on stderr.
        Assert.True(result.ExitCode == 0 && !result.StdErr.Split('\n').Any(l => l.Length > 0 && !l.StartsWith("debugfs ", StringComparison.Ordinal)), result.ToString());
    }

    private static string Which(string command, string package)
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            string path = Path.Combine(dir, command);
            if (File.Exists(path))
            {
                return path;
            }
        }
        throw new InvalidOperationException($"{command} is missing: apt-get install {package} (make image-test installs it)");
    }

    private static async Task<Socket> ConnectAsync(string path, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
                return socket;
            }
            catch (SocketException) when (deadline.Elapsed < timeout)
            {
                socket.Dispose();
                await Task.Delay(100);
            }
        }
    }

    private async Task ReadChannelAsync()
    {
        var buffer = new byte[4096];
        while (true)
        {
            int n;
            try
            {
                n = await _report!.ReceiveAsync(buffer);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return;
            }
            if (n == 0)
            {
                return;
            }
            // The guest's tty is raw, but a CR may still come from the kernel's console defaults.
            Append(Encoding.UTF8.GetString(buffer, 0, n).Replace("\r", "", StringComparison.Ordinal));
        }
    }

    private void Append(string text)
    {
        lock (_gate)
        {
            _channel.Append(text);
        }
    }

    private void AppendQemu(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_gate)
        {
            _qemuOutput.Append(line).Append('\n');
        }
    }

    private string QemuOutput
    {
        get
        {
            lock (_gate)
            {
                return _qemuOutput.ToString();
            }
        }
    }

    private async Task<string> WaitForAsync(Func<string, bool> done, TimeSpan timeout, string what)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            string text = Channel;
            if (done(text))
            {
                return text;
            }
            if (_qemu!.HasExited)
            {
                throw new InvalidOperationException($"qemu exited ({_qemu.ExitCode}) before {what}\n{Channel}\n--- qemu\n{QemuOutput}\n--- console\n{Tail(ConsoleLog)}");
            }
            await Task.Delay(200);
        }
        throw new TimeoutException($"no {what} within {timeout.TotalSeconds} s\n{Channel}\n--- qemu\n{QemuOutput}\n--- console\n{Tail(ConsoleLog)}");
    }

    private static string Tail(string text) => text.Length > 6000 ? text[^6000..] : text;
}

/// <summary>The Roughtime server a cold-start guest is given (issue #21).</summary>
public enum ColdStartRoughtime
{
    /// <summary>Honest: on the host's clock.</summary>
    Honest,

    /// <summary>Configured, but nothing answers: the floor (a last-known time a minute old) must suffice.</summary>
    Stopped,

    /// <summary>Signing a time an hour ahead: the first synchronisation to the truth is refused.</summary>
    AnHourAhead,
}
