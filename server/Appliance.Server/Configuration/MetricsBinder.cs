using YamlDotNet.RepresentationModel;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Configuration;

/// <summary>Binds the <c>metrics</c> section.</summary>
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
}
