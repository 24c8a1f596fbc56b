using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Configuration;

/// <summary>Binds the <c>clock</c> section: the mode, the local reference, leap seconds and the core's thresholds.</summary>
internal static class ClockBinder
{
    public static ClockConfig Bind(ConfigReader r, Section clock)
    {
        Section localSection = r.Section(clock, K.ClockLocal);
        LocalReferenceConfig? local = localSection.IsNull || localSection.Invalid
            ? null
            : new LocalReferenceConfig((byte)r.Integer(localSection, K.ClockLocalStratum));
        ClockMode mode = r.Choice<ClockMode>(clock, K.ClockMode);
        RoughtimeServerList roughtime = BindRoughtime(r, clock);
        YamlNode quorumNode = clock[K.ClockRoughtimeQuorum]!;
        int quorum = ConfigReader.Is(quorumNode, "auto") ? (roughtime.Items.Count / 2) + 1 : r.Integer(quorumNode, K.ClockRoughtimeQuorum);
        if (roughtime.Items.Count > 0 && quorum > roughtime.Items.Count)
        {
            r.Error(quorumNode, $"'{K.ClockRoughtimeQuorum.Path}' is {quorum}, more than the {roughtime.Items.Count} server(s) in '{K.ClockRoughtime.Path}'", K.ClockRoughtimeQuorum.Fix);
        }
        YamlNode lastKnown = clock[K.ClockLastKnownTime]!;
        string? lastKnownTime = ConfigReader.Is(lastKnown, "off") ? null
            : ConfigReader.Is(lastKnown, "auto") ? (mode == ClockMode.Kernel ? ClockConfig.DefaultLastKnownTime : null)
            : r.Text(clock, K.ClockLastKnownTime);
        return new ClockConfig(
            mode,
            local,
            r.File(clock, K.ClockLeapSeconds),
            r.Duration(clock, K.ClockHoldover),
            r.Duration(clock, K.ClockStepThreshold),
            r.Duration(clock, K.ClockPanicThreshold),
            r.Integer(clock, K.ClockMinSources),
            lastKnownTime,
            r.Integer(clock, K.ClockSkipCertificateDates),
            roughtime,
            quorum);
    }

    /// <summary>clock.roughtime: each entry an address and the server's public key.</summary>
    private static RoughtimeServerList BindRoughtime(ConfigReader r, Section clock)
    {
        YamlNode list = clock[K.ClockRoughtime]!;
        if (ConfigReader.IsNull(list))
        {
            return RoughtimeServerList.Empty;
        }
        var servers = new List<RoughtimeServerConfig>();
        foreach (YamlNode item in r.Items(list, K.ClockRoughtime))
        {
            if (r.Mapping(item, K.ClockRoughtime.Path + "[]", K.ClockRoughtime.Fix) is not { } children)
            {
                continue;
            }
            var entry = new Section(K.ClockRoughtime.Path + "[]", item, children);
            YamlNode? addressNode = r.Required(entry, K.ClockRoughtimeAddress);
            YamlNode? keyNode = r.Required(entry, K.ClockRoughtimePublicKey);
            HostPort? address = addressNode is null ? null : r.Remote(addressNode, K.ClockRoughtimeAddress, K.ClockRoughtimeAddress.DefaultPort);
            byte[]? key = keyNode is null ? null : PublicKey(r, keyNode);
            if (address is { } a && key is not null)
            {
                servers.Add(new RoughtimeServerConfig(a.Host, a.Port, key));
            }
        }
        return new RoughtimeServerList(servers);
    }

    /// <summary>32 bytes, written in base64 (as RFC 10049 §7's server lists do) or hex.</summary>
    private static byte[]? PublicKey(ConfigReader r, YamlNode node)
    {
        string text = (node as YamlScalarNode)?.Value?.Trim() ?? "";
        byte[]? key = null;
        if (text.Length == 64 && text.All(Uri.IsHexDigit))
        {
            key = Convert.FromHexString(text);
        }
        else
        {
            var buffer = new byte[33];
            if (Convert.TryFromBase64String(text, buffer, out int written) && written == 32)
            {
                key = buffer[..32];
            }
        }
        if (key is null)
        {
            r.Error(node, $"'{K.ClockRoughtimePublicKey.Path}' must be a 32-byte Ed25519 public key, in base64 (44 characters) or hex (64 digits)", K.ClockRoughtimePublicKey.Fix);
        }
        return key;
    }

    /// <summary>
    /// Something must give the time: a source or the local reference. Reported only when nothing
    /// that might be one was written: a source entry in error, a clock.local in error or a misspelt
    /// section has its own error, and this one would only echo it.
    /// </summary>
    public static void CheckTimeSource(ConfigReader r, Section top, Section clock)
    {
        bool sourcesWritten = top.Find(K.Sources) is { } sources && !ConfigReader.IsNull(sources)
            && sources is not YamlSequenceNode { Children.Count: 0 };
        bool localWritten = clock.Find(K.ClockLocal) is { } local && !ConfigReader.IsNull(local);
        bool misspelt = r.Misspelled("", K.Sources.Name) || r.Misspelled("", K.Clock.Name) || r.Misspelled(K.Clock.Path, K.ClockLocal.Name);
        if (!sourcesWritten && !localWritten && !misspelt)
        {
            r.Error(top.Find(K.Clock) ?? top.Node, "no time source: neither sources nor clock.local is set", ConfigRules.NoTimeSource);
        }
    }
}
