using Appliance.Protocol.Crypto;

namespace Appliance.Server.Configuration;

/// <summary>
/// The table of every configuration key: path, type, range, default, one-line doc, fix, whether a
/// reload can apply it, and the chrony.conf directive it corresponds to. Parsing rejects any other
/// key, the binders take their defaults and ranges from here, docs/configuration.md is checked
/// against it (ConfigReferenceTests), and a reload or a chrony.conf migration reads it too.
/// </summary>
public static class ConfigKeys
{
    /// <summary>The NTP port (RFC 5905 §7.2).</summary>
    public const int NtpPort = 123;

    /// <summary>The NTS-KE port (RFC 8915 §4).</summary>
    public const int NtsKePort = 4460;

    // ---- ntp ----

    public static ConfigKey Ntp { get; } = new()
    {
        Path = "ntp",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "The NTP service: where it listens, its workers, and whom it answers.",
        Example = "{ listen: [\"127.0.0.1:123\"], workers: 2 }",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpListen { get; } = new()
    {
        Path = "ntp.listen",
        Type = ConfigType.AddressList,
        NotEmpty = true,
        Default = "[\"0.0.0.0:123\", \"[::]:123\"]",
        Doc = "UDP addresses to answer NTP on; an entry may be a mapping, to set options for that address alone.",
        Hint = "an IPv6 socket is IPv6-only: list an IPv4 address too to serve both",
        Example = "[\"127.0.0.1:11123\", \"[::1]:11123\"]",
        Reload = Reload.Restart,
        Chrony = "bindaddress, port",
    };

    public static ConfigKey NtpListenAddress { get; } = new()
    {
        Path = "ntp.listen[].address",
        Type = ConfigType.Address,
        Required = true,
        Doc = "The address:port of a listen entry written as a mapping.",
        Example = "\"0.0.0.0:4123\"",
        Reload = Reload.Restart,
        Chrony = "bindaddress, port",
    };

    public static ConfigKey NtpListenRequireNts { get; } = new()
    {
        Path = "ntp.listen[].require-nts",
        Type = ConfigType.Boolean,
        DefaultNote = "the value of `ntp.require-nts`",
        Doc = "On this address answer NTS requests only; plain requests get nothing.",
        Example = "true",
        Requires = "nts-ke: {}",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpRequireNts { get; } = new()
    {
        Path = "ntp.require-nts",
        Type = ConfigType.Boolean,
        Default = "false",
        Doc = "The default of `require-nts` for every listen address, and the setting of the smear listener's (`ntp.smear.listen`).",
        Example = "true",
        Requires = "nts-ke: {}",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpWorkers { get; } = new()
    {
        Path = "ntp.workers",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "256",
        Words = ["auto"],
        Default = "auto",
        Doc = "Worker threads, each with its own socket per listen address: `auto` is one per core.",
        Example = "2",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpBatch { get; } = new()
    {
        Path = "ntp.batch",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "1024",
        Default = "64",
        Doc = "Datagrams per recvmmsg/sendmmsg call.",
        Example = "32",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpCpuAffinity { get; } = new()
    {
        Path = "ntp.cpu-affinity",
        Type = ConfigType.CpuList,
        Min = "0",
        Max = "1023",
        Words = ["off", "auto"],
        Default = "off",
        Doc = "Pin workers to CPUs: `off`, `auto` (worker i on CPU i) or a list (worker i on entry i mod its length).",
        Example = "[0, 1]",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpBackgroundNice { get; } = new()
    {
        Path = "ntp.background-nice",
        Type = ConfigType.WholeNumber,
        Min = "0",
        Max = "19",
        Default = "10",
        Doc = "How many nice steps below the NTP workers every other thread of the appliance runs (NTS-KE, the control socket, metrics, the clock service), "
            + "so that under CPU contention, a key-exchange flood say, the workers answer first; 0: all alike.",
        Example = "0",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpHardwareTimestamps { get; } = new()
    {
        Path = "ntp.hardware-timestamps",
        Type = ConfigType.Boolean,
        Default = "false",
        Doc = "Ask for the NIC's hardware receive timestamps where it offers them, and its transmit timestamps for interleaved responses. The NIC's timestamping must be switched on (`hwstamp_ctl -i IFACE -t 1 -r 1`, or ptp4l/phc2sys running on it) and its clock kept to the system's (phc2sys).",
        Example = "true",
        Reload = Reload.Restart,
        Chrony = "hwtimestamp",
    };

    public static ConfigKey NtpInterleaved { get; } = new()
    {
        Path = "ntp.interleaved",
        Type = ConfigType.Boolean,
        Default = "true",
        Doc = "Answer clients that ask for the interleaved mode (RFC 9769; chrony's `xleave`) in it: each response carries the transmit timestamp of the one before, the kernel's own stamp of it as it was sent (SO_TIMESTAMPING, read back from the socket's error queue). Each worker keeps 16,384 responses' timestamps (512 KiB) for it; basic-mode clients are answered as ever, and ask the kernel for nothing.",
        Example = "false",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpBusyPoll { get; } = new()
    {
        Path = "ntp.busy-poll",
        Type = ConfigType.Duration,
        Min = "0s",
        Max = "10ms",
        Words = ["off"],
        Default = "50us",
        Doc = "The longest a worker polls its empty sockets before it sleeps; within it, the worker polls only while polling costs less CPU per request than sleeping would (measured as it runs).",
        Example = "200us",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpMaxQueueDelay { get; } = new()
    {
        Path = "ntp.max-queue-delay",
        Type = ConfigType.Duration,
        Min = "100us",
        Max = "1s",
        Words = ["off"],
        Default = "2ms",
        Doc = "Past capacity, the longest a request may have waited in its socket's queue and still be answered: older ones are dropped unanswered (`appliance_ntp_drops_total{reason=\"stale\"}`), NTS ones before decryption, so what is answered is answered promptly. Only while a worker's queue stands (every receive full, the oldest request past the budget, for 100 ms: CoDel's test); `off` answers everything however late.",
        Example = "5ms",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpRateLimit { get; } = new()
    {
        Path = "ntp.rate-limit",
        Type = ConfigType.Section,
        Words = ["off"],
        Default = "{}",
        Doc = "Per-client rate limiting with chrony's `ratelimit` semantics, or `off`.",
        Example = "{ interval: 1s, burst: 16 }",
        Reload = Reload.Live,
        Chrony = "ratelimit",
    };

    public static ConfigKey NtpRateLimitInterval { get; } = new()
    {
        Path = "ntp.rate-limit.interval",
        Type = ConfigType.Duration,
        Min = "1ms",
        Max = "1h",
        Default = "2s",
        Doc = "Average time allowed between requests of one client.",
        Example = "500ms",
        Reload = Reload.Live,
        Chrony = "ratelimit interval",
    };

    public static ConfigKey NtpRateLimitBurst { get; } = new()
    {
        Path = "ntp.rate-limit.burst",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "1000",
        Default = "8",
        Doc = "Requests a client may send in a burst before it is limited.",
        Example = "16",
        Reload = Reload.Live,
        Chrony = "ratelimit burst",
    };

    public static ConfigKey NtpRateLimitLeak { get; } = new()
    {
        Path = "ntp.rate-limit.leak",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "16",
        Default = "2",
        Doc = "A limited client still gets one answer with time in 2^leak.",
        Hint = "0 is refused: it would leave the victims of a flood spoofing their address with no time at all",
        Example = "3",
        Reload = Reload.Live,
        Chrony = "ratelimit leak",
    };

    public static ConfigKey NtpRateLimitKod { get; } = new()
    {
        Path = "ntp.rate-limit.kod",
        Type = ConfigType.Boolean,
        Default = "false",
        Doc = "Answer a limited request that is dropped with a KoD RATE (RFC 5905 §7.4), at most one per client per interval.",
        Example = "true",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtpRateLimitClients { get; } = new()
    {
        Path = "ntp.rate-limit.clients",
        Type = ConfigType.WholeNumber,
        Min = "1024",
        Max = "67108864",
        Default = "1048576",
        Doc = "Clients tracked across all workers (the rate limit and `appliance clients`), 48 bytes each: the tables are allocated at start.",
        Example = "65536",
        Reload = Reload.Restart,
        Chrony = "clientloglimit",
    };

    public static ConfigKey NtpAccess { get; } = new()
    {
        Path = "ntp.access",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "Who may ask: the most specific matching prefix decides, a deny beats an allow of the same length.",
        Example = "{ allow: [\"192.0.2.0/24\"], deny: [\"192.0.2.66\"] }",
        Reload = Reload.Live,
        Chrony = "allow, deny",
    };

    public static ConfigKey NtpAccessAllow { get; } = new()
    {
        Path = "ntp.access.allow",
        Type = ConfigType.PrefixList,
        Default = "[\"0.0.0.0/0\", \"::/0\"]",
        Doc = "Addresses or CIDR prefixes allowed.",
        Example = "[\"192.0.2.0/24\", \"2001:db8::/32\"]",
        Reload = Reload.Live,
        Chrony = "allow",
    };

    public static ConfigKey NtpAccessDeny { get; } = new()
    {
        Path = "ntp.access.deny",
        Type = ConfigType.PrefixList,
        Default = "[]",
        Doc = "Addresses or CIDR prefixes denied.",
        Example = "[\"192.0.2.66\"]",
        Reload = Reload.Live,
        Chrony = "deny",
    };

    public static ConfigKey NtpAccessDenyAction { get; } = new()
    {
        Path = "ntp.access.deny-action",
        Type = ConfigType.Choice,
        Choices = ["ignore", "kod"],
        Default = "ignore",
        Doc = "What a denied client gets: `ignore` (nothing) or `kod` (a KoD DENY, at most one per client per rate-limit interval).",
        Example = "kod",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtpSmear { get; } = new()
    {
        Path = "ntp.smear",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "A separate listener that serves leap-smeared time: each leap second spread over the 24 hours from noon to noon UTC (docs/leap-smear.md). The main listeners never smear.",
        Example = "{ listen: [\"192.0.2.10:123\"] }",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpSmearListen { get; } = new()
    {
        Path = "ntp.smear.listen",
        Type = ConfigType.AddressList,
        Default = "[]",
        Doc = "UDP addresses that answer with smeared time; none (the default) turns the smear listener off. Each must differ from every `ntp.listen` address.",
        Hint = "give the smear listener its own address (or port), and its clients that address alone: a client must never mix smeared and unsmeared servers",
        Example = "[\"192.0.2.10:123\", \"[2001:db8::10]:123\"]",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtpSmearReferenceId { get; } = new()
    {
        Path = "ntp.smear.reference-id",
        Type = ConfigType.Text,
        Default = "SMER",
        Doc = "The reference id the smear listener answers with while synchronised (1 to 4 ASCII letters or digits), so that its answers are told from the main listeners' at a glance.",
        Example = "LEAP",
        Reload = Reload.Restart,
        Chrony = null,
    };

    // ---- nts-ke ----

    public static ConfigKey NtsKe { get; } = new()
    {
        Path = "nts-ke",
        Type = ConfigType.Section,
        Default = "null",
        Doc = "Turns NTS on: the NTS-KE server (RFC 8915 §4) and the cookie keys the NTP path shares with it.",
        Example = "{ certificate: /etc/appliance/tls/fullchain.pem, private-key: /etc/appliance/tls/key.pem }",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtsKeListen { get; } = new()
    {
        Path = "nts-ke.listen",
        Type = ConfigType.AddressList,
        Default = "[\"0.0.0.0:4460\", \"[::]:4460\"]",
        Doc = "TCP addresses for NTS-KE; `[]` runs no NTS-KE listener.",
        Example = "[\"127.0.0.1:4460\"]",
        Reload = Reload.Restart,
        Chrony = "ntsport",
    };

    public static ConfigKey NtsKeCertificate { get; } = new()
    {
        Path = "nts-ke.certificate",
        Type = ConfigType.File,
        Required = true,
        Doc = "PEM certificate chain, leaf first; read again when it changes (a new path takes a restart).",
        Example = "/etc/appliance/tls/fullchain.pem",
        IfMissing = "point it at the PEM certificate chain (leaf first), readable by the appliance",
        Reload = Reload.Restart,
        Chrony = "ntsservercert",
    };

    public static ConfigKey NtsKePrivateKey { get; } = new()
    {
        Path = "nts-ke.private-key",
        Type = ConfigType.File,
        Required = true,
        Doc = "PEM private key of the certificate; both files are read again when they change, or on SIGHUP.",
        Example = "/etc/appliance/tls/key.pem",
        IfMissing = "point it at the certificate's PEM private key, readable by the appliance",
        Reload = Reload.Restart,
        Chrony = "ntsserverkey",
    };

    public static ConfigKey NtsKeKeys { get; } = new()
    {
        Path = "nts-ke.keys",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "The master keys that seal cookies (RFC 8915 §6).",
        Example = "{ rotation: 12h, keep: 14 }",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtsKeKeysStorage { get; } = new()
    {
        Path = "nts-ke.keys.storage",
        Type = ConfigType.Path,
        Default = "/var/lib/appliance/nts-keys",
        Doc = "File the key ring is kept in, so that a restart invalidates no cookie.",
        Example = "/var/lib/appliance/keys",
        Reload = Reload.Restart,
        Chrony = "ntsdumpdir",
    };

    public static ConfigKey NtsKeKeysRotation { get; } = new()
    {
        Path = "nts-ke.keys.rotation",
        Type = ConfigType.Duration,
        Min = "1m",
        Max = "30d",
        Default = "24h",
        Doc = "How long a master key seals new cookies; key ids count rotation periods. A reload keeps the current key until the new period's end.",
        Example = "12h",
        Reload = Reload.Live,
        Chrony = "ntsrotate",
    };

    public static ConfigKey NtsKeKeysKeep { get; } = new()
    {
        Path = "nts-ke.keys.keep",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "1000",
        Default = "7",
        Doc = "How many earlier keys still open cookies.",
        Example = "14",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtsKeKeysFleetSecret { get; } = new()
    {
        Path = "nts-ke.keys.fleet-secret",
        Type = ConfigType.File,
        Words = ["null"],
        Default = "null",
        Doc = "A file of at least 32 random bytes from which every appliance of a fleet derives the same keys.",
        Example = "/etc/appliance/fleet.key",
        IfMissing = "point it at a file of at least 32 random bytes, made with: head -c 32 /dev/urandom > fleet.key; chmod 600 fleet.key",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey NtsKeNtpServer { get; } = new()
    {
        Path = "nts-ke.ntp-server",
        Type = ConfigType.HostPort,
        DefaultPort = NtpPort,
        Words = ["null"],
        Default = "null",
        DefaultNote = "no Server record, and a Port record only when the first `ntp.listen` port is not 123",
        Doc = "Where clients should send NTP: sent as the NTPv4 Server and Port records (RFC 8915 §4.1.7, §4.1.8).",
        Example = "\"ntp.example.net:123\"",
        Reload = Reload.Live,
        Chrony = "ntsntpserver",
    };

    public static ConfigKey NtsKeMaxConnections { get; } = new()
    {
        Path = "nts-ke.max-connections",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "100000",
        Default = "1000",
        Doc = "NTS-KE connections open at once; excess connections are closed at once.",
        Example = "5000",
        Reload = Reload.Live,
        Chrony = "maxntsconnections",
    };

    public static ConfigKey NtsKeHandshakeTimeout { get; } = new()
    {
        Path = "nts-ke.handshake-timeout",
        Type = ConfigType.Duration,
        Min = "100ms",
        Max = "1m",
        Default = "5s",
        Doc = "Time allowed for the TLS handshake, from accept.",
        Example = "2s",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtsKeIdleTimeout { get; } = new()
    {
        Path = "nts-ke.idle-timeout",
        Type = ConfigType.Duration,
        Min = "100ms",
        Max = "1m",
        Default = "5s",
        Doc = "Time allowed between reads of the request after the handshake, within the exchange's deadline.",
        Example = "2s",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtsKeRequestTimeout { get; } = new()
    {
        Path = "nts-ke.request-timeout",
        Type = ConfigType.Duration,
        Min = "100ms",
        Max = "1m",
        Default = "2s",
        Doc = "Added to `handshake-timeout`: the one deadline, from accept, by which an exchange is over, however its octets trickle in.",
        Example = "1s",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtsKeMaxRequest { get; } = new()
    {
        Path = "nts-ke.max-request",
        Type = ConfigType.WholeNumber,
        Min = "64",
        Max = "65536",
        Default = "1024",
        Doc = "Largest request accepted, in bytes; a real request is about 20.",
        Example = "512",
        Reload = Reload.Live,
        Chrony = null,
    };

    /// <summary>The AEAD names the <c>aeads</c> keys take: the protocol's own list, by name.</summary>
    private static string[] AeadNames => [.. AeadAlgorithms.All.Select(AeadAlgorithms.Name)];

    public static ConfigKey NtsKeAeads { get; } = new()
    {
        Path = "nts-ke.aeads",
        Type = ConfigType.ChoiceList,
        Choices = AeadNames,
        Default = "[AES-SIV-CMAC-256, AES-128-GCM-SIV, AES-SIV-CMAC-512]",
        Doc = "The AEADs NTS-KE agrees to; a client gets the first one of its own list that is here (RFC 8915 §4.1.5). "
            + "AES-SIV-CMAC-256 is the one every NTS client speaks; AES-128-GCM-SIV (RFC 8452) is what chrony 4.4 and later prefer (see docs/nts.md for its key derivation).",
        Example = "[AES-SIV-CMAC-256]",
        Reload = Reload.Live,
        Chrony = "ntsaeads",
    };

    public static ConfigKey NtsKeClientLimit { get; } = new()
    {
        Path = "nts-ke.client-limit",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "NTS-KE connections allowed per client: an IPv4 address, or an IPv6 /64.",
        Example = "{ connections: 5, interval: 1m }",
        Reload = Reload.Live,
        Chrony = "ntsratelimit",
    };

    public static ConfigKey NtsKeClientLimitConnections { get; } = new()
    {
        Path = "nts-ke.client-limit.connections",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "100000",
        Default = "20",
        Doc = "New connections one client may open per interval.",
        Example = "5",
        Reload = Reload.Live,
        Chrony = "ntsratelimit burst",
    };

    public static ConfigKey NtsKeClientLimitInterval { get; } = new()
    {
        Path = "nts-ke.client-limit.interval",
        Type = ConfigType.Duration,
        Min = "1s",
        Max = "1h",
        Default = "10s",
        Doc = "The interval `connections` counts over.",
        Example = "1m",
        Reload = Reload.Live,
        Chrony = "ntsratelimit interval",
    };

    public static ConfigKey NtsKeClientLimitConcurrent { get; } = new()
    {
        Path = "nts-ke.client-limit.concurrent",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "100000",
        Default = "10",
        Doc = "Connections one client may hold open at once; more are closed at accept.",
        Example = "4",
        Reload = Reload.Live,
        Chrony = null,
    };

    // ---- roughtime ----

    public static ConfigKey Roughtime { get; } = new()
    {
        Path = "roughtime",
        Type = ConfigType.Section,
        Default = "null",
        Doc = "Turns the Roughtime server on (RFC 10049, docs/roughtime.md): signed rough time, for clients that must check TLS certificates before they can use NTS. `{}` serves it with the defaults below.",
        Example = "{ listen: [\"0.0.0.0:2002\"] }",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey RoughtimeListen { get; } = new()
    {
        Path = "roughtime.listen",
        Type = ConfigType.AddressList,
        Default = "[\"0.0.0.0:2002\", \"[::]:2002\"]",
        Doc = "UDP (and, with `tcp`, TCP) addresses for Roughtime. 2002 is the port the deployed servers use; RFC 10049 §12.1 has IANA assign 5319.",
        NotEmpty = true,
        Example = "[\"192.0.2.10:2002\", \"192.0.2.10:5319\"]",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey RoughtimeTcp { get; } = new()
    {
        Path = "roughtime.tcp",
        Type = ConfigType.Boolean,
        Default = "true",
        Doc = "Serve Roughtime on TCP too, on the same addresses (RFC 10049 §5: the same framing, several requests per connection).",
        Example = "false",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey RoughtimeKey { get; } = new()
    {
        Path = "roughtime.key",
        Type = ConfigType.Path,
        Default = "/var/lib/appliance/roughtime.key",
        Doc = "File of the long-term Ed25519 key (its 32-byte seed in hex, 0600): made on the first start, then read at every start. Its public key (`appliance keys`) is what clients are given; a new key means every client must be given the new one.",
        Example = "/var/lib/appliance/keys/roughtime.key",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey RoughtimeOnlineKeyLifetime { get; } = new()
    {
        Path = "roughtime.online-key-lifetime",
        Type = ConfigType.Duration,
        Min = "10m",
        Max = "30d",
        Default = "24h",
        Doc = "How long the long-term key delegates to each online key (its MINT to MAXT, RFC 10049 §5.2.6); a new online key is made, in memory only, when half of it is left.",
        Example = "6h",
        Reload = Reload.Restart,
        Chrony = null,
    };

    // ---- clock ----

    public static ConfigKey Clock { get; } = new()
    {
        Path = "clock",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "What time is served, and how the clock is steered.",
        Example = "{ mode: software, local: { stratum: 10 } }",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ClockMode { get; } = new()
    {
        Path = "clock.mode",
        Type = ConfigType.Choice,
        Choices = ["kernel", "software"],
        Default = "kernel",
        Doc = "`kernel` steers CLOCK_REALTIME (needs CAP_SYS_TIME); `software` never touches the system clock.",
        Example = "software",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ClockLocal { get; } = new()
    {
        Path = "clock.local",
        Type = ConfigType.Section,
        Words = ["null"],
        Default = "null",
        Doc = "Serve the host clock at a fixed stratum whenever no source is usable (chrony's `local stratum N`).",
        Example = "{ stratum: 10 }",
        Reload = Reload.Restart,
        Chrony = "local",
    };

    public static ConfigKey ClockLocalStratum { get; } = new()
    {
        Path = "clock.local.stratum",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "15",
        Default = "10",
        Doc = "Stratum to serve the host clock at.",
        Example = "8",
        Reload = Reload.Restart,
        Chrony = "local stratum",
    };

    public static ConfigKey ClockLeapSeconds { get; } = new()
    {
        Path = "clock.leap-seconds",
        Type = ConfigType.File,
        Words = ["null"],
        Default = "null",
        DefaultNote = "not set: the leap bits follow the majority of the selected sources",
        Doc = "A `leap-seconds.list` file (IERS/NIST format), its hash verified at start.",
        Example = "/usr/share/zoneinfo/leap-seconds.list",
        IfMissing = "point it at the IERS/NIST list, e.g. /usr/share/zoneinfo/leap-seconds.list (Debian package tzdata)",
        Reload = Reload.Restart,
        Chrony = "leapseclist, leapsectz",
    };

    public static ConfigKey ClockHoldover { get; } = new()
    {
        Path = "clock.holdover",
        Type = ConfigType.Duration,
        Min = "0s",
        Max = "30d",
        Default = "12h",
        Doc = "How long to keep serving from the free-running estimate after every source is lost.",
        Example = "2h",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ClockStepThreshold { get; } = new()
    {
        Path = "clock.step-threshold",
        Type = ConfigType.Duration,
        Min = "1ms",
        Max = "10s",
        Default = "128ms",
        Doc = "Offsets larger than this (for 300 s, RFC 5905 stepout) are stepped; smaller ones are slewed.",
        Example = "50ms",
        Reload = Reload.Restart,
        Chrony = "makestep",
    };

    public static ConfigKey ClockPanicThreshold { get; } = new()
    {
        Path = "clock.panic-threshold",
        Type = ConfigType.Duration,
        Min = "1s",
        Max = "36500d",
        Default = "1000s",
        Doc = "An offset larger than this is refused, except once at start-up (RFC 5905 PANICT).",
        Example = "600s",
        Reload = Reload.Restart,
        Chrony = "maxchange",
    };

    public static ConfigKey ClockMinSources { get; } = new()
    {
        Path = "clock.min-sources",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "16",
        Default = "1",
        Doc = "Sources that must survive selection before the clock is disciplined.",
        Example = "2",
        Reload = Reload.Restart,
        Chrony = "minsources",
    };

    public static ConfigKey ClockLastKnownTime { get; } = new()
    {
        Path = "clock.last-known-time",
        Type = ConfigType.Path,
        Words = ["auto", "off"],
        Default = "auto",
        DefaultNote = "`auto`: `/var/lib/appliance/last-known-time` in kernel mode; `off` in software mode, which never sets the system clock (and two instances must not share one file)",
        Doc = "File of the last time the clock was known good (written once synchronised, every 10 minutes after and at stop, fsync'd; only from an NTS source or a reference clock, or two sources that agree): with the build's time, the floor below which the system clock is treated as wrong at start (docs/deploying.md#cold-start), or `off`.",
        Example = "/persist/appliance/last-known-time",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ClockSkipCertificateDates { get; } = new()
    {
        Path = "clock.skip-certificate-dates",
        Type = ConfigType.WholeNumber,
        Min = "0",
        Max = "100",
        Default = "0",
        Doc = "NTS-KE does not check certificate validity periods until the clock has been updated this many times (a risk: an expired certificate, its key perhaps leaked since, is then accepted on its chain and name alone; NTS-KE checks no revocation, with or without this). 0: always checked.",
        Example = "4",
        Reload = Reload.Restart,
        Chrony = "nocerttimecheck",
    };

    public static ConfigKey ClockRoughtime { get; } = new()
    {
        Path = "clock.roughtime",
        Type = ConfigType.MappingList,
        Default = "[]",
        Doc = "Roughtime servers (RFC 10049) asked while the clock is unsynchronised: their signed answers, where enough agree, bound \"now\" for NTS-KE's certificate checks and for the first synchronisation, which is refused outside the bound (docs/deploying.md#cold-start).",
        Example = "[{ address: \"roughtime.example.net:2002\", public-key: \"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\" }]",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ClockRoughtimeAddress { get; } = new()
    {
        Path = "clock.roughtime[].address",
        Type = ConfigType.HostPort,
        Required = true,
        DefaultPort = 2002,
        DefaultNote = "port 2002",
        Doc = "`host`, `host:port` or `[IPv6]:port` of the server (UDP); a name is resolved at each query.",
        Example = "\"roughtime.example.net:2002\"",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ClockRoughtimePublicKey { get; } = new()
    {
        Path = "clock.roughtime[].public-key",
        Type = ConfigType.Text,
        Required = true,
        Doc = "The server's long-term Ed25519 public key, 32 bytes in base64 (or 64 hex digits), as its operator publishes it (`appliance keys` for an appliance's).",
        Example = "\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ClockRoughtimeQuorum { get; } = new()
    {
        Path = "clock.roughtime-quorum",
        Type = ConfigType.WholeNumber,
        Min = "1",
        Max = "16",
        Words = ["auto"],
        Default = "auto",
        DefaultNote = "`auto`: a majority of `clock.roughtime` (1 of 1, 2 of 2 or 3, 3 of 4 or 5)",
        Doc = "How many Roughtime servers' intervals must overlap for their intersection to bound \"now\".",
        Example = "2",
        Reload = Reload.Restart,
        Chrony = null,
    };

    // ---- sources ----

    public static ConfigKey Sources { get; } = new()
    {
        Path = "sources",
        Type = ConfigType.SourceList,
        Default = "[]",
        Doc = "Where time comes from: a list, each entry naming its kind. A reload starts added entries and stops removed ones; unchanged ones keep their state.",
        Example = "[{ ntp: { address: \"ntp.example.net\" } }]",
        Reload = Reload.Live,
        Chrony = "server, pool, peer, refclock",
    };

    public static ConfigKey NtpSource { get; } = new()
    {
        Path = "sources[].ntp",
        Type = ConfigType.Section,
        ShortForm = "address",
        Doc = "An upstream NTP server (RFC 5905), or with `nts: true` an NTS server (RFC 8915).",
        Example = "{ address: \"ntp.example.net\", iburst: true }",
        Reload = Reload.Live,
        Chrony = "server, pool, peer",
    };

    public static ConfigKey NtpSourceAddress { get; } = new()
    {
        Path = "sources[].ntp.address",
        Type = ConfigType.HostPort,
        Required = true,
        DefaultPort = NtpPort,
        DefaultNote = "port 123, or with `nts: true` the NTS-KE port 4460",
        Doc = "`host`, `host:port` or `[IPv6]:port`; a name is resolved when the source starts.",
        Example = "\"ntp.example.net\"",
        Reload = Reload.Live,
        Chrony = "server, pool, peer, server port, server ntsport",
    };

    public static ConfigKey NtpSourceNts { get; } = new()
    {
        Path = "sources[].ntp.nts",
        Type = ConfigType.Boolean,
        Default = "false",
        Doc = "Authenticate the source with NTS (RFC 8915); the port is then the NTS-KE port.",
        Example = "true",
        Reload = Reload.Live,
        Chrony = "server nts",
    };

    public static ConfigKey NtpSourceName { get; } = new()
    {
        Path = "sources[].ntp.name",
        Type = ConfigType.Text,
        DefaultNote = "the host of `address`",
        Doc = "NTS only: the name the server's certificate must carry (and the TLS SNI).",
        Example = "time.example.net",
        Requires = "nts: true",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey NtpSourceTrust { get; } = new()
    {
        Path = "sources[].ntp.trust",
        Type = ConfigType.File,
        DefaultNote = "the system's trust anchors",
        Doc = "NTS only: a PEM file of the CA certificates to trust for this source.",
        Example = "/etc/appliance/internal-ca.pem",
        Requires = "nts: true",
        IfMissing = "point it at a PEM file of the CA certificates to trust for this source",
        Reload = Reload.Live,
        Chrony = "ntstrustedcerts",
    };

    public static ConfigKey NtpSourceAeads { get; } = new()
    {
        Path = "sources[].ntp.aeads",
        Type = ConfigType.ChoiceList,
        Choices = AeadNames,
        Default = "[AES-SIV-CMAC-256]",
        Doc = "NTS only: the AEADs offered in the key exchange, the preferred first. AES-SIV-CMAC-256 is the one every NTS server speaks; "
            + "offer AES-128-GCM-SIV first only to servers known to agree on its key derivation (chrony 4.4 and later, this appliance; docs/nts.md).",
        Example = "[AES-128-GCM-SIV, AES-SIV-CMAC-256]",
        Requires = "nts: true",
        Reload = Reload.Live,
        Chrony = "ntsaeads",
    };

    public static ConfigKey NtpSourceIburst { get; } = new()
    {
        Path = "sources[].ntp.iburst",
        Type = ConfigType.Boolean,
        Default = "true",
        Doc = "Send four requests two seconds apart while the source has not answered yet.",
        Example = "false",
        Reload = Reload.Live,
        Chrony = "server iburst",
    };

    public static ConfigKey NtpSourceMinPoll { get; } = new()
    {
        Path = "sources[].ntp.minpoll",
        Type = ConfigType.WholeNumber,
        Min = "-4",
        Max = "17",
        Default = "6",
        Doc = "The shortest poll interval, as log2 seconds (6 = 64 s).",
        Example = "4",
        Reload = Reload.Live,
        Chrony = "server minpoll",
    };

    public static ConfigKey NtpSourceMaxPoll { get; } = new()
    {
        Path = "sources[].ntp.maxpoll",
        Type = ConfigType.WholeNumber,
        Min = "-4",
        Max = "17",
        Default = "10",
        DefaultNote = "or `minpoll` when that is larger",
        Doc = "The longest poll interval, as log2 seconds (10 = 1024 s).",
        Example = "8",
        Reload = Reload.Live,
        Chrony = "server maxpoll",
    };

    public static ConfigKey GpsdSource { get; } = new()
    {
        Path = "sources[].gpsd",
        Type = ConfigType.Section,
        ShortForm = "address",
        Doc = "A gpsd: GPS time and PPS edges over its JSON protocol.",
        Example = "{ address: \"127.0.0.1:2947\", pps: true }",
        Reload = Reload.Live,
        Chrony = "refclock SOCK, refclock SHM",
    };

    public static ConfigKey GpsdSourceAddress { get; } = new()
    {
        Path = "sources[].gpsd.address",
        Type = ConfigType.HostPort,
        DefaultPort = 2947,
        Default = "\"127.0.0.1:2947\"",
        Doc = "gpsd's TCP address (gpsd -S sets its port).",
        Example = "\"gps.local:2947\"",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey GpsdSourcePps { get; } = new()
    {
        Path = "sources[].gpsd.pps",
        Type = ConfigType.Boolean,
        Default = "true",
        Doc = "Use gpsd's PPS messages when it sends them.",
        Example = "false",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey GpsdSourceDelay { get; } = new()
    {
        Path = "sources[].gpsd.delay",
        Type = ConfigType.Duration,
        Min = "0s",
        Max = "1s",
        Default = "200ms",
        Doc = "The uncertainty window of serial time: the sample's delay, so it cannot outvote precise sources.",
        Example = "100ms",
        Reload = Reload.Live,
        Chrony = "refclock delay",
    };

    public static ConfigKey GpsdSourceOffset { get; } = new()
    {
        Path = "sources[].gpsd.offset",
        Type = ConfigType.SignedDuration,
        Max = "1s",
        Default = "0s",
        Doc = "Added to serial time: the receiver's known lateness; may be negative.",
        Example = "-5ms",
        Reload = Reload.Live,
        Chrony = "refclock offset",
    };

    public static ConfigKey GpsdSourceMinSatellites { get; } = new()
    {
        Path = "sources[].gpsd.min-satellites",
        Type = ConfigType.WholeNumber,
        Min = "0",
        Max = "32",
        Default = "4",
        Doc = "A fix must use at least this many satellites, when gpsd reports them.",
        Example = "6",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey PpsSource { get; } = new()
    {
        Path = "sources[].pps",
        Type = ConfigType.Section,
        ShortForm = "device",
        Doc = "A kernel PPS device (RFC 2783): pulses numbered by another source's time of day.",
        Example = "{ device: /dev/pps0, lock: \"127.0.0.1:2947\" }",
        Reload = Reload.Live,
        Chrony = "refclock PPS",
    };

    public static ConfigKey PpsSourceDevice { get; } = new()
    {
        Path = "sources[].pps.device",
        Type = ConfigType.Device,
        Required = true,
        Doc = "The PPS device.",
        Example = "/dev/pps0",
        IfMissing = "check ls /dev/pps*: the kernel creates one per PPS client (pps-gpio, pps-ldisc on a serial port's DCD)",
        Reload = Reload.Live,
        Chrony = "refclock PPS",
    };

    public static ConfigKey PpsSourceEdge { get; } = new()
    {
        Path = "sources[].pps.edge",
        Type = ConfigType.Choice,
        Choices = ["assert", "clear"],
        Default = "assert",
        Doc = "Which edge of the pulse is on time for your receiver.",
        Example = "clear",
        Reload = Reload.Live,
        Chrony = "refclock PPS DEVICE:clear",
    };

    public static ConfigKey PpsSourceLock { get; } = new()
    {
        Path = "sources[].pps.lock",
        Type = ConfigType.Text,
        DefaultNote = "none, and the disciplined clock numbers the pulses",
        Doc = "The source that numbers the pulses, by its metrics name (`host:port` of a gpsd or NTP source).",
        Example = "\"127.0.0.1:2947\"",
        Reload = Reload.Live,
        Chrony = "refclock lock",
    };

    public static ConfigKey PpsSourceMaxDeviation { get; } = new()
    {
        Path = "sources[].pps.max-deviation",
        Type = ConfigType.Duration,
        Min = "1us",
        Max = "100ms",
        Default = "100us",
        Doc = "Drop a pulse further than this from the median of the last eight.",
        Example = "20us",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey PhcSource { get; } = new()
    {
        Path = "sources[].phc",
        Type = ConfigType.Section,
        ShortForm = "device",
        Doc = "A PTP hardware clock, compared with the system clock by the PTP_SYS_OFFSET ioctl.",
        Example = "{ device: /dev/ptp0, utc-offset: 37s }",
        Reload = Reload.Live,
        Chrony = "refclock PHC",
    };

    public static ConfigKey PhcSourceDevice { get; } = new()
    {
        Path = "sources[].phc.device",
        Type = ConfigType.Device,
        Required = true,
        Doc = "The PHC device (`ethtool -T eth0` names the NIC's).",
        Example = "/dev/ptp0",
        IfMissing = "check ls /sys/class/ptp: a NIC with a hardware clock (ethtool -T shows 'PTP Hardware Clock: N'), or ptp_kvm in a VM",
        Reload = Reload.Live,
        Chrony = "refclock PHC",
    };

    public static ConfigKey PhcSourcePoll { get; } = new()
    {
        Path = "sources[].phc.poll",
        Type = ConfigType.WholeNumber,
        Min = "-4",
        Max = "6",
        Default = "0",
        Doc = "log2 seconds between readings (0 = 1 s).",
        Example = "-1",
        Reload = Reload.Live,
        Chrony = "refclock dpoll",
    };

    public static ConfigKey PhcSourceUtcOffset { get; } = new()
    {
        Path = "sources[].phc.utc-offset",
        Type = ConfigType.Duration,
        Min = "0s",
        Max = "100s",
        Default = "37s",
        Doc = "The PHC's time minus UTC: `37s` for a PHC on TAI (as ptp4l keeps it), `0s` for one on UTC.",
        Example = "0s",
        Reload = Reload.Live,
        Chrony = "refclock tai",
    };

    public static ConfigKey PtpSource { get; } = new()
    {
        Path = "sources[].ptp",
        Type = ConfigType.Section,
        ShortForm = "interface",
        Doc = "A PTP grandmaster (IEEE 1588-2008 over UDP/IPv4); the appliance is a slave-only ordinary clock.",
        Example = "{ interface: eth1, domain: 0 }",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey PtpSourceInterface { get; } = new()
    {
        Path = "sources[].ptp.interface",
        Type = ConfigType.Text,
        Required = true,
        Doc = "The interface the grandmaster is reached on.",
        Example = "eth1",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey PtpSourceDomain { get; } = new()
    {
        Path = "sources[].ptp.domain",
        Type = ConfigType.WholeNumber,
        Min = "0",
        Max = "255",
        Default = "0",
        Doc = "The PTP domain.",
        Example = "24",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey PtpSourceDelayInterval { get; } = new()
    {
        Path = "sources[].ptp.delay-interval",
        Type = ConfigType.WholeNumber,
        Min = "-4",
        Max = "6",
        Default = "0",
        Doc = "log2 seconds between Delay_Req messages (0 = 1 s).",
        Example = "-2",
        Reload = Reload.Live,
        Chrony = null,
    };

    // ---- metrics ----

    public static ConfigKey Metrics { get; } = new()
    {
        Path = "metrics",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "The Prometheus endpoint.",
        Example = "{ listen: off }",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey MetricsListen { get; } = new()
    {
        Path = "metrics.listen",
        Type = ConfigType.Address,
        Words = ["off", "null"],
        Default = "\"127.0.0.1:9975\"",
        Doc = "TCP address of `/metrics` and the status page, or `off`; it has no authentication.",
        Example = "\"127.0.0.1:9100\"",
        Reload = Reload.Restart,
        Chrony = null,
    };

    // ---- control ----

    public static ConfigKey Control { get; } = new()
    {
        Path = "control",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "The control socket the `appliance status|sources|clients|serverstats|keys|reload|rotate-keys` verbs talk to.",
        Example = "{ socket: /run/appliance/control.sock }",
        Reload = Reload.Restart,
        Chrony = null,
    };

    public static ConfigKey ControlSocket { get; } = new()
    {
        Path = "control.socket",
        Type = ConfigType.Path,
        Words = ["auto", "off"],
        Default = "auto",
        DefaultNote = "`auto`: `$RUNTIME_DIRECTORY/control.sock` under systemd (`RuntimeDirectory=appliance`), else `/run/appliance/control.sock`",
        Doc = "Unix socket of the control verbs (mode 0660: the service's user and group may read; only the user or root may reload or rotate keys), or `off`.",
        Example = "/run/appliance/control.sock",
        Reload = Reload.Restart,
        Chrony = null,
    };

    // ---- user ----

    public static ConfigKey User { get; } = new()
    {
        Path = "user",
        Type = ConfigType.User,
        Default = "null",
        DefaultNote = "the user that started the appliance; as root it warns",
        Doc = "Started as root (outside systemd), switch to this user and its groups before anything is opened or bound, keeping only CAP_NET_BIND_SERVICE and CAP_SYS_TIME.",
        Hint = "the directories the appliance makes (the control socket's, the NTS key storage's) are made for it; files it reads must be readable by it",
        IfMissing = "create the user (useradd --system --no-create-home --shell /usr/sbin/nologin appliance), or name an existing unprivileged user",
        Example = "appliance",
        Reload = Reload.Restart,
        Chrony = null,
    };

    // ---- log ----

    public static ConfigKey Log { get; } = new()
    {
        Path = "log",
        Type = ConfigType.Section,
        Default = "{}",
        Doc = "What the appliance logs.",
        Example = "{ level: warning }",
        Reload = Reload.Live,
        Chrony = null,
    };

    public static ConfigKey LogLevel { get; } = new()
    {
        Path = "log.level",
        Type = ConfigType.Choice,
        Choices = ["debug", "information", "warning", "error"],
        Default = "information",
        Doc = "The least severe messages logged.",
        Example = "warning",
        Reload = Reload.Live,
        Chrony = null,
    };

    /// <summary>Every key, in the order of docs/configuration.md.</summary>
    public static IReadOnlyList<ConfigKey> All { get; } =
    [
        Ntp, NtpListen, NtpListenAddress, NtpListenRequireNts, NtpRequireNts, NtpWorkers, NtpBatch, NtpCpuAffinity,
        NtpBackgroundNice, NtpHardwareTimestamps, NtpInterleaved, NtpBusyPoll, NtpMaxQueueDelay, NtpRateLimit, NtpRateLimitInterval, NtpRateLimitBurst, NtpRateLimitLeak,
        NtpRateLimitKod, NtpRateLimitClients, NtpAccess, NtpAccessAllow, NtpAccessDeny, NtpAccessDenyAction,
        NtpSmear, NtpSmearListen, NtpSmearReferenceId,
        NtsKe, NtsKeListen, NtsKeCertificate, NtsKePrivateKey, NtsKeKeys, NtsKeKeysStorage, NtsKeKeysRotation,
        NtsKeKeysKeep, NtsKeKeysFleetSecret, NtsKeNtpServer, NtsKeMaxConnections, NtsKeHandshakeTimeout,
        NtsKeIdleTimeout, NtsKeRequestTimeout, NtsKeMaxRequest, NtsKeAeads, NtsKeClientLimit, NtsKeClientLimitConnections,
        NtsKeClientLimitInterval, NtsKeClientLimitConcurrent,
        Roughtime, RoughtimeListen, RoughtimeTcp, RoughtimeKey, RoughtimeOnlineKeyLifetime,
        Clock, ClockMode, ClockLocal, ClockLocalStratum, ClockLeapSeconds, ClockHoldover, ClockStepThreshold,
        ClockPanicThreshold, ClockMinSources, ClockLastKnownTime, ClockSkipCertificateDates, ClockRoughtime, ClockRoughtimeAddress,
        ClockRoughtimePublicKey, ClockRoughtimeQuorum,
        Sources, NtpSource, NtpSourceAddress, NtpSourceNts, NtpSourceName, NtpSourceTrust, NtpSourceAeads, NtpSourceIburst,
        NtpSourceMinPoll, NtpSourceMaxPoll,
        GpsdSource, GpsdSourceAddress, GpsdSourcePps, GpsdSourceDelay, GpsdSourceOffset, GpsdSourceMinSatellites,
        PpsSource, PpsSourceDevice, PpsSourceEdge, PpsSourceLock, PpsSourceMaxDeviation,
        PhcSource, PhcSourceDevice, PhcSourcePoll, PhcSourceUtcOffset,
        PtpSource, PtpSourceInterface, PtpSourceDomain, PtpSourceDelayInterval,
        Metrics, MetricsListen,
        Control, ControlSocket,
        User,
        Log, LogLevel,
    ];

    private static readonly Dictionary<string, ConfigKey> s_byPath = All.ToDictionary(k => k.Path, StringComparer.Ordinal);

    private static readonly ILookup<string, ConfigKey> s_byParent = All.ToLookup(k => k.Parent, StringComparer.Ordinal);

    /// <summary>The key at <paramref name="path"/>, or null.</summary>
    public static ConfigKey? Find(string path) => s_byPath.GetValueOrDefault(path);

    /// <summary>The keys written directly in the mapping at <paramref name="path"/> ("" for the top level, "sources[]" for a source entry).</summary>
    public static IReadOnlyList<ConfigKey> ChildrenOf(string path) => s_byParent[path].ToArray();
}
