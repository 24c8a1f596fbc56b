using System.Text;
using Appliance.Server.Configuration;

namespace Appliance.Server.Migration;

/// <summary>One chrony.conf directive: what usually becomes of it, and why.</summary>
/// <param name="Outcome">The usual outcome; a line's own options can make it worse (see the report).</param>
/// <param name="Note">For the docs and, where <see cref="ChronyMapper"/> has nothing more specific, the report.</param>
public sealed record ChronyDirective(string Name, MigrationOutcome Outcome, string Note)
{
    /// <summary>The appliance keys whose chrony column (<see cref="ConfigKey.Chrony"/>) names this directive.</summary>
    public IReadOnlyList<ConfigKey> Keys => ConfigKeys.All.Where(k => ChronyDirectives.DirectivesOf(k).Contains(Name)).ToArray();
}

/// <summary>
/// Every chrony.conf directive of chrony 4.3's chrony.conf(5), plus leapseclist (4.5): the
/// migration's table, docs/migrating-from-chrony.md's directive table (checked by
/// MigrationDocsTests), and the report's words for directives that need nothing more. Which
/// appliance key a directive maps to is not written here: it is the Chrony column of
/// <see cref="ConfigKeys"/>, read back through <see cref="ChronyDirective.Keys"/>.
/// </summary>
public static class ChronyDirectives
{
    private const MigrationOutcome Mapped = MigrationOutcome.Mapped;
    private const MigrationOutcome Differs = MigrationOutcome.MappedWithDifference;
    private const MigrationOutcome None = MigrationOutcome.NoCounterpart;
    private const MigrationOutcome Not = MigrationOutcome.NotMapped;

    private const string Housekeeping = "chronyd's own files and process settings: the appliance keeps its state under its service's directories";
    private const string Estimator = "tunes chronyd's regression and slewing: the appliance's clock filter and Kalman servo estimate drift and noise themselves";
    private const string Selection = "tunes chronyd's source selection: the appliance's selection (RFC 5905 §11.2) has no such knob; sources are dropped by their own statistics";
    private const string Command = "chronyc's UDP command port: the appliance's control verbs (appliance status, sources, clients, reload, ...) use a Unix socket, reached by file permissions, not by address";
    private const string Rtc = "the real-time clock: the kernel keeps it (11-minute mode) while the appliance disciplines the clock in kernel mode";

    public static IReadOnlyList<ChronyDirective> All { get; } =
    [
        // Time sources.
        new("server", Mapped, "an `ntp` source; iburst, minpoll, maxpoll, nts, port and ntsport map, chrony's other options are reported one by one"),
        new("pool", Differs, "the appliance resolves a name to one address: a pool.ntp.org zone becomes up to `maxsources` (4) sources 0-3.zone, any other pool one source"),
        new("peer", Differs, "polled as a server (client mode): the appliance has no symmetric active mode (RFC 5905 §3)"),
        new("refclock", Mapped, "SOCK and SHM (gpsd's) become one `gpsd` source, PPS a `pps` source (lock to a gpsd refclock kept), PHC a `phc` source"),
        new("sourcedir", Differs, "its .sources files are read in place; the appliance has no directory of dynamic sources: list them and reload"),
        new("confdir", None, "its .conf files are read in place, chrony's order and precedence"),
        new("include", None, "the files it names are read in place"),
        new("manual", Not, "the appliance takes no time typed in by hand: use a source or clock.local"),
        new("initstepslew", None, "the appliance sets the clock from its sources at start-up (panic-threshold lets the first offset through)"),
        new("acquisitionport", None, "the appliance's sources use ephemeral ports"),
        new("bindacqaddress", Not, "sources send from the address the routing table picks: use policy routing to pin it"),
        new("bindacqdevice", Not, "sources send on the interface the routing table picks"),
        new("authselectmode", Not, "the appliance does not mix or require authentication across sources: mark each source nts: true"),
        new("keyfile", None, "symmetric keys (RFC 5905 MAC) are not supported; a source's key option is reported"),
        new("ntstrustedcerts", Mapped, "the `trust` file of every NTS source"),
        new("nosystemcert", Differs, "a source with `trust` trusts that file alone; without it, the system's anchors"),
        new("nocerttimecheck", Mapped, "`clock.skip-certificate-dates`"),
        new("ntsaeads", Mapped, "`nts-ke.aeads` and the `aeads` of every NTS source: ids 15, 17 and 30 by their names, in order"),
        new("ntsrefresh", None, "the appliance's NTS client repeats NTS-KE when its cookies run out"),
        new("ntsdumpdir", Differs, "with an NTS server: the key ring is kept in DIR/appliance-nts-keys (chrony's ntskeys file is not read: clients do NTS-KE once more); chrony's client cookies are not kept"),

        // The clock.
        new("makestep", Differs, "`clock.step-threshold`: chrony steps in its first N updates only, the appliance whenever an offset over the threshold lasts 300 s (RFC 5905 stepout)"),
        new("maxchange", Differs, "`clock.panic-threshold`: chrony ignores such offsets a few times then exits, the appliance refuses them and keeps serving"),
        new("local", Mapped, "`clock.local`: stratum maps; orphan, distance, activate and waitsynced are reported"),
        new("leapsectz", Differs, "the appliance reads a leap-seconds.list, not a tz zone: /usr/share/zoneinfo/leap-seconds.list"),
        new("leapseclist", Mapped, "`clock.leap-seconds`"),
        new("leapsecmode", Not, "how the leap second is applied is not configurable: the kernel inserts it in kernel mode"),
        new("smoothtime", Not, "the appliance serves UTC unsmeared; leap smearing is not offered (pool servers must not smear)"),
        new("minsources", Mapped, "`clock.min-sources`"),
        new("maxdistance", Not, Selection),
        new("maxjitter", Not, Selection),
        new("combinelimit", Not, Selection),
        new("reselectdist", Not, Selection),
        new("stratumweight", Not, Selection),
        new("maxupdateskew", None, Estimator),
        new("maxclockerror", None, Estimator),
        new("maxdrift", None, Estimator),
        new("maxslewrate", None, Estimator),
        new("corrtimeratio", None, Estimator),
        new("fallbackdrift", None, Estimator),
        new("clockprecision", None, "the appliance measures the clock's precision (RFC 5905 precision) at start"),
        new("minsamples", None, Estimator),
        new("maxsamples", None, Estimator),
        new("tempcomp", Not, "no temperature compensation"),
        new("driftfile", None, "the appliance re-learns the frequency at start; in kernel mode the kernel keeps it across a restart"),
        new("dumpdir", None, Housekeeping),
        new("rtcsync", None, Rtc),
        new("rtcfile", None, Rtc),
        new("rtcdevice", None, Rtc),
        new("rtconutc", None, Rtc),
        new("rtcautotrim", None, Rtc),
        new("hwclockfile", None, Rtc),

        // Serving.
        new("allow", Mapped, "`ntp.access.allow` (NTS-KE too): chrony's tree of subnets replayed, `allow all` included; with no allow at all chronyd serves nobody, and the appliance listens on loopback only"),
        new("deny", Mapped, "`ntp.access.deny`"),
        new("bindaddress", Mapped, "the address of `ntp.listen` (and of nts-ke.listen) of its family"),
        new("binddevice", Not, "write the interface's addresses in ntp.listen"),
        new("port", Mapped, "the port of `ntp.listen`; `port 0` (client only) listens on loopback"),
        new("ratelimit", Mapped, "`ntp.rate-limit`: interval 2^N s, burst, leak (0 becomes 1)"),
        new("clientloglimit", Differs, "`ntp.rate-limit.clients`: chrony sets memory, the appliance clients (48 bytes each)"),
        new("noclientlog", None, "the appliance's only client log is its rate-limit table (`appliance clients` reads it); rate-limit: off frees it"),
        new("hwtimestamp", Differs, "`ntp.hardware-timestamps: true`: on every listen socket, not per interface; its options are the NIC's defaults"),
        new("dscp", Not, "set the DSCP with nftables or tc"),
        new("broadcast", Not, "no broadcast mode: clients must ask"),
        new("ntpsigndsocket", Not, "no MS-SNTP signing (Samba): serve those clients from Samba's own ntp signd setup"),
        new("ptpport", Not, "no NTP over PTP; the appliance's `ptp` source takes time from a PTP grandmaster"),
        new("ntsservercert", Mapped, "`nts-ke.certificate`; one certificate: cover further names with its SANs"),
        new("ntsserverkey", Mapped, "`nts-ke.private-key`"),
        new("ntsport", Mapped, "the port of `nts-ke.listen`"),
        new("ntsrotate", Mapped, "`nts-ke.keys.rotation`; 0 (never) becomes the longest, 30d"),
        new("ntsntpserver", Mapped, "`nts-ke.ntp-server`"),
        new("ntsprocesses", None, "NTS-KE runs on the appliance's thread pool"),
        new("maxntsconnections", Mapped, "`nts-ke.max-connections`"),
        new("ntsratelimit", Mapped, "`nts-ke.client-limit`: burst becomes connections per interval 2^N s; leak is not carried"),
        new("bindcmdaddress", None, Command),
        new("bindcmddevice", None, Command),
        new("cmdallow", None, Command),
        new("cmddeny", None, Command),
        new("cmdport", None, Command),
        new("cmdratelimit", None, Command),

        // Logging and the process.
        new("log", None, "the appliance logs to the journal and exports its statistics on /metrics"),
        new("logdir", None, "the appliance logs to the journal"),
        new("logbanner", None, "the appliance logs to the journal"),
        new("logchange", None, "the appliance logs clock steps and exports the offset on /metrics"),
        new("mailonchange", Not, "alert on the appliance's /metrics offset instead"),
        new("pidfile", None, Housekeeping),
        new("user", None, "the systemd unit names the service user"),
        new("lock_all", None, "the appliance preallocates its tables; the unit can set LimitMEMLOCK"),
        new("sched_priority", None, "the systemd unit can set CPUSchedulingPolicy; ntp.cpu-affinity pins workers"),
    ];

    private static readonly Dictionary<string, ChronyDirective> s_byName = All.ToDictionary(d => d.Name, StringComparer.Ordinal);

    public static ChronyDirective? Find(string name) => s_byName.GetValueOrDefault(name);

    /// <summary>The directives a key's chrony column names: its first word of each comma-separated part ("server minpoll" names server).</summary>
    public static IReadOnlyList<string> DirectivesOf(ConfigKey key) =>
        key.Chrony is null ? [] : key.Chrony.Split(", ").Select(part => part.Split(' ')[0]).Distinct().ToArray();

    public const string TableStart = "<!-- directive table: generated from ChronyDirectives.All and the Chrony column of ConfigKeys; MigrationDocsTests checks it -->";

    public const string TableEnd = "<!-- end of directive table -->";

    /// <summary>The markdown table of docs/migrating-from-chrony.md, between <see cref="TableStart"/> and <see cref="TableEnd"/>.</summary>
    public static string MarkdownTable()
    {
        var text = new StringBuilder();
        text.Append(TableStart).Append('\n');
        text.Append("| chrony.conf | outcome | appliance key | what happens |\n");
        text.Append("|---|---|---|---|\n");
        foreach (ChronyDirective directive in All.OrderBy(d => d.Name, StringComparer.Ordinal))
        {
            string keys = directive.Keys.Count == 0 ? "" : string.Join(", ", directive.Keys.Select(k => $"`{k.Path}`"));
            text.Append($"| `{directive.Name}` | {MigrationNote.OutcomeText(directive.Outcome)} | {keys} | {directive.Note.Replace("|", "\\|", StringComparison.Ordinal)} |\n");
        }
        text.Append(TableEnd);
        return text.ToString();
    }
}
