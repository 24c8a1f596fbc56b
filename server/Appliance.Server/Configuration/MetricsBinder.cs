using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Configuration;

/// <summary>Binds the <c>metrics</c>, <c>control</c> and <c>roughtime</c> sections (each a few keys).</summary>
internal static class MetricsBinder
{
    public static MetricsConfig Bind(ConfigReader r, Section metrics)
    {
        YamlNode listen = metrics[K.MetricsListen]!;
        return new MetricsConfig(ConfigReader.Is(listen, "off") || ConfigReader.Is(listen, "null") ? null : r.Address(listen, K.MetricsListen));
    }

    /// <summary>The <c>control</c> section.</summary>
    public static ControlConfig BindControl(ConfigReader r, Section control)
    {
        YamlNode socket = control[K.ControlSocket]!;
        if (ConfigReader.Is(socket, "off"))
        {
            return new ControlConfig(null, false);
        }
        return ConfigReader.Is(socket, "auto") ? ControlConfig.Auto : new ControlConfig(r.Text(control, K.ControlSocket), true);
    }

    /// <summary>The <c>roughtime</c> section; null when it is not set (Roughtime off).</summary>
    public static RoughtimeConfig? BindRoughtime(ConfigReader r, Section roughtime)
    {
        if (roughtime.IsNull)
        {
            return null;
        }
        var listen = new List<System.Net.IPEndPoint>();
        foreach (YamlNode item in r.Items(roughtime[K.RoughtimeListen]!, K.RoughtimeListen))
        {
            if (r.Address(item, K.RoughtimeListen) is { } endPoint)
            {
                listen.Add(endPoint);
            }
        }
        return new RoughtimeConfig(listen, r.Boolean(roughtime, K.RoughtimeTcp), r.Text(roughtime, K.RoughtimeKey) ?? "",
            r.Duration(roughtime, K.RoughtimeOnlineKeyLifetime));
    }
}
