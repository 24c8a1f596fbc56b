using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Configuration;

/// <summary>Binds the <c>sources</c> list: each entry names its kind (ntp, gpsd, pps, phc, ptp), bound by its own binder.</summary>
internal static class SourceBinder
{
    private static readonly (ConfigKey Kind, Func<ConfigReader, Section, SourceConfig?> Bind)[] s_kinds =
    [
        (K.NtpSource, Ntp),
        (K.GpsdSource, Gpsd),
        (K.PpsSource, Pps),
        (K.PhcSource, Phc),
        (K.PtpSource, Ptp),
    ];

    public static List<SourceConfig> Bind(ConfigReader r, Section top)
    {
        var sources = new List<SourceConfig>();
        YamlNode list = top[K.Sources]!;
        if (ConfigReader.IsNull(list))
        {
            return sources;
        }
        foreach (YamlNode item in r.Items(list, K.Sources))
        {
            if (r.Mapping(item, "sources[]", ConfigRules.SourceEntry.Fix) is not { } kinds)
            {
                continue;
            }
            // An entry with an unknown kind has its error already ("unknown key 'sources[].gps'"):
            // "names no kind" would be its echo.
            bool onlyUnknown = kinds.Count == 0 && item is YamlMappingNode { Children.Count: > 0 };
            if (kinds.Count != 1)
            {
                if (!onlyUnknown)
                {
                    r.Error(item, "a source must name exactly one kind", ConfigRules.SourceEntry);
                }
                continue;
            }
            (ConfigKey kind, Func<ConfigReader, Section, SourceConfig?> bind) = s_kinds.Single(k => kinds.ContainsKey(k.Kind.Name));
            Section entry = r.SectionAt(kinds[kind.Name], kind);
            if (!entry.Invalid && bind(r, entry) is { } source)
            {
                sources.Add(source);
            }
        }
        return sources;
    }

    private static NtpSourceConfig? Ntp(ConfigReader r, Section s)
    {
        YamlNode? addressNode = r.Required(s, K.NtpSourceAddress);
        bool nts = r.Boolean(s, K.NtpSourceNts);
        HostPort? address = addressNode is null ? null
            : r.Remote(addressNode, K.NtpSourceAddress, nts ? ConfigKeys.NtsKePort : K.NtpSourceAddress.DefaultPort);
        string? name = r.Text(s, K.NtpSourceName);
        string? trust = r.File(s, K.NtpSourceTrust);
        AeadList aeads = NtsKeBinder.Aeads(r, s, K.NtpSourceAeads);
        if (!nts && (s.Has(K.NtpSourceName) || s.Has(K.NtpSourceTrust) || s.Has(K.NtpSourceAeads)))
        {
            r.Error(s.Node, $"source {Describe(addressNode)}: name, trust and aeads only apply to NTS", ConfigRules.NtsOnly);
        }
        bool iburst = r.Boolean(s, K.NtpSourceIburst);
        int before = r.ErrorCount;
        int minPoll = r.Integer(s, K.NtpSourceMinPoll);
        int maxPoll = r.Integer(s, K.NtpSourceMaxPoll);
        if (!s.Has(K.NtpSourceMaxPoll))
        {
            maxPoll = Math.Max(maxPoll, minPoll);
        }
        if (r.ErrorCount == before && minPoll > maxPoll)
        {
            r.Error(s.Node, $"source {Describe(addressNode)}: minpoll {minPoll} is above maxpoll {maxPoll}", ConfigRules.PollOrder);
            return null;
        }
        return address is { } a ? new NtpSourceConfig(a.Host, a.Port, nts, name, trust, iburst, minPoll, maxPoll, aeads) : null;
    }

    private static GpsdSourceConfig? Gpsd(ConfigReader r, Section s)
    {
        HostPort? address = r.Remote(s[K.GpsdSourceAddress]!, K.GpsdSourceAddress, K.GpsdSourceAddress.DefaultPort);
        bool pps = r.Boolean(s, K.GpsdSourcePps);
        TimeSpan delay = r.Duration(s, K.GpsdSourceDelay);
        TimeSpan offset = r.Duration(s, K.GpsdSourceOffset);
        int satellites = r.Integer(s, K.GpsdSourceMinSatellites);
        return address is { } a ? new GpsdSourceConfig(a.Host, a.Port, pps, delay, offset, satellites) : null;
    }

    private static PpsSourceConfig? Pps(ConfigReader r, Section s)
    {
        string? device = r.Required(s, K.PpsSourceDevice) is { } node ? r.File(node, K.PpsSourceDevice) : null;
        bool clear = r.Choice(s, K.PpsSourceEdge) == "clear";
        string? lockTo = r.Text(s, K.PpsSourceLock);
        TimeSpan deviation = r.Duration(s, K.PpsSourceMaxDeviation);
        return device is null ? null : new PpsSourceConfig(device, clear, lockTo, deviation);
    }

    private static PhcSourceConfig? Phc(ConfigReader r, Section s)
    {
        string? device = r.Required(s, K.PhcSourceDevice) is { } node ? r.File(node, K.PhcSourceDevice) : null;
        int poll = r.Integer(s, K.PhcSourcePoll);
        TimeSpan utcOffset = r.Duration(s, K.PhcSourceUtcOffset);
        return device is null ? null : new PhcSourceConfig(device, poll, utcOffset);
    }

    private static PtpSourceConfig? Ptp(ConfigReader r, Section s)
    {
        string? nic = r.Required(s, K.PtpSourceInterface) is { } node ? r.Scalar(node, K.PtpSourceInterface) : null;
        byte domain = (byte)r.Integer(s, K.PtpSourceDomain);
        int interval = r.Integer(s, K.PtpSourceDelayInterval);
        return nic is null ? null : new PtpSourceConfig(nic, domain, interval);
    }

    private static string Describe(YamlNode? address) => address is YamlScalarNode { Value: { } text } ? text : "(no address)";
}
