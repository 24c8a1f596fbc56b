using System.Net;
using Appliance.Protocol;
using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Configuration;

/// <summary>Binds the <c>ntp</c> section: listen addresses, workers, rate limit, access.</summary>
internal static class NtpBinder
{
    public static NtpConfig Bind(ConfigReader r, Section ntp)
    {
        bool requireNtsDefault = r.Boolean(ntp, K.NtpRequireNts);
        var listen = new List<IPEndPoint>();
        var requireNts = new List<bool>();
        foreach (YamlNode item in r.Items(ntp[K.NtpListen]!, K.NtpListen))
        {
            // An entry is "address:port", or { address: "address:port", require-nts: true }.
            YamlNode? address = item;
            ConfigKey addressKey = K.NtpListen;
            bool require = requireNtsDefault;
            if (item is YamlMappingNode)
            {
                var entry = new Section("ntp.listen[]", item, r.Mapping(item, "ntp.listen[]", ConfigRules.ListenEntry.Fix) ?? []);
                address = r.Required(entry, K.NtpListenAddress);
                addressKey = K.NtpListenAddress;
                if (entry.Has(K.NtpListenRequireNts))
                {
                    require = r.Boolean(entry, K.NtpListenRequireNts);
                }
            }
            if (address is not null && r.Address(address, addressKey) is { } endPoint)
            {
                listen.Add(endPoint);
                requireNts.Add(require);
            }
        }

        YamlNode workers = ntp[K.NtpWorkers]!;
        YamlNode busyPoll = ntp[K.NtpBusyPoll]!;
        YamlNode maxQueueDelay = ntp[K.NtpMaxQueueDelay]!;
        Section access = r.Section(ntp, K.NtpAccess);
        RateLimitSettings? rateLimit = RateLimit(r, ntp);
        AccessList accessList = Access(r, access);
        DenyAction denyAction = r.Choice<DenyAction>(access, K.NtpAccessDenyAction);
        if (denyAction == DenyAction.Kod && rateLimit is null)
        {
            // KoD DENY is limited through the rate table (one per client per interval); without the
            // table every denied request would be answered: a reflector at line rate.
            r.Error(access.Find(K.NtpAccessDenyAction) ?? access.Node, "deny-action: kod needs rate-limit, which limits the KoDs, but rate-limit is off",
                ConfigRules.DenyKodWithoutRateLimit);
        }
        SmearConfig smear = Smear(r, ntp, listen) with { RequireNts = requireNtsDefault };
        return new NtpConfig(
            listen,
            requireNts,
            ConfigReader.Is(workers, "auto") ? 0 : r.Integer(workers, K.NtpWorkers),
            r.Integer(ntp, K.NtpBatch),
            CpuAffinity(r, ntp),
            r.Integer(ntp, K.NtpBackgroundNice),
            r.Boolean(ntp, K.NtpHardwareTimestamps),
            ConfigReader.Is(busyPoll, "off") ? TimeSpan.Zero : r.Duration(ntp, K.NtpBusyPoll),
            rateLimit,
            accessList,
            denyAction)
        {
            Smear = smear,
            Interleaved = r.Boolean(ntp, K.NtpInterleaved),
            MaxQueueDelay = ConfigReader.Is(maxQueueDelay, "off") ? TimeSpan.Zero : r.Duration(ntp, K.NtpMaxQueueDelay),
        };
    }

    /// <summary>The smear listener: addresses none of which is a main listener's, and a reference id of 1–4 ASCII letters or digits.</summary>
    private static SmearConfig Smear(ConfigReader r, Section ntp, List<IPEndPoint> main)
    {
        Section smear = r.Section(ntp, K.NtpSmear);
        var listen = new List<IPEndPoint>();
        foreach (YamlNode item in r.Items(smear[K.NtpSmearListen]!, K.NtpSmearListen))
        {
            if (r.Address(item, K.NtpSmearListen) is not { } endPoint)
            {
                continue;
            }
            // Port 0 is a fresh ephemeral port each time, so only a fixed port can collide. The same
            // address and port would join the main listener's SO_REUSEPORT group and get its clients.
            if (endPoint.Port != 0 && main.Contains(endPoint))
            {
                r.Error(item, $"{endPoint} is both an ntp.listen and an ntp.smear.listen address", ConfigRules.SmearSharesAddress);
                continue;
            }
            if (endPoint.Port != 0 && listen.Contains(endPoint))
            {
                r.Error(item, $"{endPoint} is in ntp.smear.listen twice", "list each address once");
                continue;
            }
            listen.Add(endPoint);
        }
        uint referenceId = SmearConfig.DefaultReferenceId;
        if (smear[K.NtpSmearReferenceId] is { } node && r.Scalar(node, K.NtpSmearReferenceId) is { } text)
        {
            if (text.Length is < 1 or > 4 || !text.All(char.IsAsciiLetterOrDigit))
            {
                r.Error(node, $"'{K.NtpSmearReferenceId.Path}' is '{text}': it must be 1 to 4 ASCII letters or digits", K.NtpSmearReferenceId);
            }
            else
            {
                // RFC 5905 §7.3: an ASCII reference id is left-justified and zero-padded.
                referenceId = 0;
                for (int i = 0; i < 4; i++)
                {
                    referenceId = (referenceId << 8) | (i < text.Length ? text[i] : 0u);
                }
            }
        }
        return new SmearConfig(listen, referenceId);
    }

    private static int[]? CpuAffinity(ConfigReader r, Section ntp)
    {
        YamlNode node = ntp[K.NtpCpuAffinity]!;
        if (ConfigReader.Is(node, "off"))
        {
            return null;
        }
        if (ConfigReader.Is(node, "auto"))
        {
            return Enumerable.Range(0, Environment.ProcessorCount).ToArray();
        }
        if (node is not YamlSequenceNode)
        {
            r.Error(node, $"'{K.NtpCpuAffinity.Path}' must be off, auto, or a list of CPU numbers", K.NtpCpuAffinity);
            return null;
        }
        return r.Items(node, K.NtpCpuAffinity).Select(cpu => r.Integer(cpu, K.NtpCpuAffinity)).ToArray();
    }

    private static RateLimitSettings? RateLimit(ConfigReader r, Section ntp)
    {
        Section rate = r.Section(ntp, K.NtpRateLimit);
        if (rate.Word == "off")
        {
            return null;
        }
        return new RateLimitSettings(
            r.Duration(rate, K.NtpRateLimitInterval),
            r.Integer(rate, K.NtpRateLimitBurst),
            r.Integer(rate, K.NtpRateLimitLeak),
            r.Boolean(rate, K.NtpRateLimitKod),
            r.Integer(rate, K.NtpRateLimitClients));
    }

    private static AccessList Access(ConfigReader r, Section access)
    {
        List<AccessRule> allow = Prefixes(r, access, K.NtpAccessAllow, allow: true);
        List<AccessRule> deny = Prefixes(r, access, K.NtpAccessDeny, allow: false);
        // ::/0 allowed and nothing denied is everyone, whatever else is allowed (the table's
        // default among them): the shared AllowAll says the same in one rule.
        return deny.Count == 0 && allow.Any(rule => rule.PrefixLength == 0) ? AccessList.AllowAll : new AccessList([.. allow, .. deny]);
    }

    private static List<AccessRule> Prefixes(ConfigReader r, Section access, ConfigKey key, bool allow)
    {
        var rules = new List<AccessRule>();
        foreach (YamlNode item in r.Items(access[key]!, key))
        {
            if (r.Scalar(item, key) is not { } text)
            {
                continue;
            }
            if (AccessRule.TryParse(text, allow, out AccessRule rule))
            {
                rules.Add(rule);
            }
            else
            {
                r.Error(item, $"'{key.Path}' has '{text}', which is not an address or prefix", key);
            }
        }
        return rules;
    }
}
