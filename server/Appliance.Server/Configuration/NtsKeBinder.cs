using System.Net;
using Appliance.Protocol.Crypto;
using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Configuration;

/// <summary>Binds the <c>nts-ke</c> section: the NTS-KE listener, its certificate, and the cookie key ring.</summary>
internal static class NtsKeBinder
{
    /// <returns>Null when the section is not set (NTS off).</returns>
    public static NtsKeConfig? Bind(ConfigReader r, Section top, NtpConfig ntp)
    {
        Section nts = r.Section(top, K.NtsKe);
        if (nts.IsNull)
        {
            if (ntp.RequireNts.Any(required => required) && !r.Misspelled("", K.NtsKe.Name))
            {
                r.Error(top.Find(K.Ntp) ?? top.Node, "require-nts is set but NTS is not configured", ConfigRules.RequireNtsWithoutNts);
            }
            return null;
        }

        var listen = new List<IPEndPoint>();
        foreach (YamlNode item in r.Items(nts[K.NtsKeListen]!, K.NtsKeListen))
        {
            if (r.Address(item, K.NtsKeListen) is { } endPoint)
            {
                listen.Add(endPoint);
            }
        }
        string certificate = r.Required(nts, K.NtsKeCertificate) is { } c ? r.File(c, K.NtsKeCertificate) ?? "" : "";
        string privateKey = r.Required(nts, K.NtsKePrivateKey) is { } p ? r.File(p, K.NtsKePrivateKey) ?? "" : "";

        Section keys = r.Section(nts, K.NtsKeKeys);
        var ring = new NtsKeysConfig(
            r.Text(keys, K.NtsKeKeysStorage) ?? "",
            r.Duration(keys, K.NtsKeKeysRotation),
            r.Integer(keys, K.NtsKeKeysKeep),
            r.File(keys, K.NtsKeKeysFleetSecret));

        (string? ntpServer, ushort? ntpPort) = NtpServer(r, nts, ntp);
        Section clients = r.Section(nts, K.NtsKeClientLimit);
        return new NtsKeConfig(listen, certificate, privateKey, ring, ntpServer, ntpPort,
            r.Integer(nts, K.NtsKeMaxConnections),
            r.Duration(nts, K.NtsKeHandshakeTimeout),
            r.Duration(nts, K.NtsKeIdleTimeout),
            r.Duration(nts, K.NtsKeRequestTimeout),
            r.Integer(nts, K.NtsKeMaxRequest),
            r.Integer(clients, K.NtsKeClientLimitConnections),
            r.Duration(clients, K.NtsKeClientLimitInterval),
            r.Integer(clients, K.NtsKeClientLimitConcurrent),
            // One list for both doors: a network denied NTP gets no TLS handshake either.
            ntp.Access,
            Aeads(r, nts, K.NtsKeAeads));
    }

    /// <summary>A list of AEAD names (<see cref="ConfigType.ChoiceList"/>) as the algorithms, in its order.</summary>
    public static AeadList Aeads(ConfigReader r, Section section, ConfigKey key) =>
        new([.. r.Choices(section, key).Select(name => AeadAlgorithms.TryParse(name, out AeadAlgorithm aead) ? aead
            : throw new InvalidOperationException($"{key.Path}: choice {name} is no AEAD"))]);

    /// <summary>The NTPv4 Server and Port records (RFC 8915 §4.1.7, §4.1.8): a port record only where it is not 123.</summary>
    private static (string? Server, ushort? Port) NtpServer(ConfigReader r, Section nts, NtpConfig ntp)
    {
        YamlNode node = nts[K.NtsKeNtpServer]!;
        if (ConfigReader.Is(node, "null"))
        {
            // Unset: no Server record; the clients use the NTS-KE host, at the first listen port when not 123.
            return (null, ntp.Listen.Count > 0 && ntp.Listen[0].Port != ConfigKeys.NtpPort ? (ushort)ntp.Listen[0].Port : null);
        }
        if (r.Remote(node, K.NtsKeNtpServer, K.NtsKeNtpServer.DefaultPort) is not { } server)
        {
            return (null, null);
        }
        return (server.Host, server.Port == ConfigKeys.NtpPort ? null : (ushort)server.Port);
    }
}
