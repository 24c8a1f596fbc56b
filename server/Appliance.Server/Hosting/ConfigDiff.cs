using System.Globalization;
using Appliance.Protocol;
using Appliance.Server.Configuration;
using K = Appliance.Server.Configuration.ConfigKeys;

namespace Appliance.Server.Hosting;

/// <summary>
/// What changed between two configurations, key by key of the table (<see cref="ConfigKeys"/>),
/// each change sorted by the key's <see cref="Reload"/> column. Every key has a value here, or is
/// listed in <see cref="Covered"/> with the key whose value includes it (a test checks the table is
/// covered). Values are compared as text; a key whose section was switched on or off is reported
/// as that section alone.
/// </summary>
public static class ConfigDiff
{
    /// <summary>The keys (in table order) whose values differ, with their Reload column.</summary>
    public static IReadOnlyList<ConfigKey> Changed(ApplianceConfig old, ApplianceConfig next)
    {
        var changed = new List<ConfigKey>();
        foreach (ConfigKey key in K.All)
        {
            if (!s_values.TryGetValue(key.Path, out Func<ApplianceConfig, string>? value)
                || changed.Any(c => key.Path.StartsWith(c.Path + ".", StringComparison.Ordinal)))
            {
                continue;
            }
            if (!string.Equals(value(old), value(next), StringComparison.Ordinal))
            {
                changed.Add(key);
            }
        }
        return changed;
    }

    /// <summary>The value of <paramref name="key"/> in <paramref name="config"/> as compared; null for a key that has none of its own.</summary>
    public static string? Value(ConfigKey key, ApplianceConfig config) => s_values.TryGetValue(key.Path, out Func<ApplianceConfig, string>? value) ? value(config) : null;

    /// <summary>Keys without a value of their own, with the key whose value covers them.</summary>
    public static IReadOnlyDictionary<string, string> Covered { get; } = new Dictionary<string, string>(
        K.All.Where(IsSourceKey).Select(k => KeyValuePair.Create(k.Path, K.Sources.Path)), StringComparer.Ordinal)
    {
        [K.Ntp.Path] = "its keys",
        [K.NtpListenAddress.Path] = K.NtpListen.Path,
        [K.NtpListenRequireNts.Path] = K.NtpRequireNts.Path,
        [K.NtpAccess.Path] = "its keys",
        [K.NtpSmear.Path] = "its keys",
        [K.NtsKeKeys.Path] = "its keys",
        [K.NtsKeClientLimit.Path] = "its keys",
        [K.Clock.Path] = "its keys",
        [K.ClockRoughtimeAddress.Path] = K.ClockRoughtime.Path,
        [K.ClockRoughtimePublicKey.Path] = K.ClockRoughtime.Path,
        [K.Metrics.Path] = "its keys",
        [K.Log.Path] = "its keys",
        [K.Control.Path] = "its keys",
    };

    /// <summary>The text a value is compared as (and the probes of the tests write the same way).</summary>
    public static string Text(object? value) => value switch
    {
        null => "null",
        string s => s,
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        System.Collections.IEnumerable items => "[" + string.Join(", ", items.Cast<object?>().Select(Text)) + "]",
        _ => value.ToString() ?? "",
    };

    /// <summary>
    /// An access list's prefixes of one kind, sorted: the order they were written in decides nothing.
    /// Allowed prefixes beside ::/0 say nothing more (the binder folds the default list to <see cref="AccessList.AllowAll"/>).
    /// </summary>
    public static string Prefixes(AccessList? access, bool allow)
    {
        if (access is null)
        {
            return "null";
        }
        IEnumerable<AccessRule> rules = access.Rules.Where(r => r.Allow == allow);
        if (allow && rules.Any(r => r.PrefixLength == 0))
        {
            return "everyone";
        }
        return Text(rules.Select(r => $"{r.Prefix}/{r.PrefixLength}").Order(StringComparer.Ordinal));
    }

    private static string Rate(ApplianceConfig c, Func<RateLimitSettings, object> field) => c.Ntp.RateLimit is { } rate ? Text(field(rate)) : "off";

    private static string Nts(ApplianceConfig c, Func<NtsKeConfig, object?> field) => c.NtsKe is { } nts ? Text(field(nts)) : "null";

    private static string Roughtime(ApplianceConfig c, Func<RoughtimeConfig, object?> field) => c.Roughtime is { } r ? Text(field(r)) : "null";

    private static readonly Dictionary<string, Func<ApplianceConfig, string>> s_values = new(StringComparer.Ordinal)
    {
        [K.NtpListen.Path] = c => Text(c.Ntp.Listen),
        [K.NtpRequireNts.Path] = c => Text(c.Ntp.RequireNts),
        [K.NtpWorkers.Path] = c => Text(c.Ntp.Workers),
        [K.NtpBatch.Path] = c => Text(c.Ntp.Batch),
        [K.NtpCpuAffinity.Path] = c => Text(c.Ntp.CpuAffinity),
        [K.NtpBackgroundNice.Path] = c => Text(c.Ntp.BackgroundNice),
        [K.NtpHardwareTimestamps.Path] = c => Text(c.Ntp.HardwareTimestamps),
        [K.NtpInterleaved.Path] = c => Text(c.Ntp.Interleaved),
        [K.NtpBusyPoll.Path] = c => Text(c.Ntp.BusyPoll),
        [K.NtpMaxQueueDelay.Path] = c => Text(c.Ntp.MaxQueueDelay),
        [K.NtpRateLimit.Path] = c => c.Ntp.RateLimit is null ? "off" : "on",
        [K.NtpRateLimitInterval.Path] = c => Rate(c, r => r.Interval),
        [K.NtpRateLimitBurst.Path] = c => Rate(c, r => r.Burst),
        [K.NtpRateLimitLeak.Path] = c => Rate(c, r => r.Leak),
        [K.NtpRateLimitKod.Path] = c => Rate(c, r => r.Kod),
        [K.NtpRateLimitClients.Path] = c => Rate(c, r => r.Clients),
        [K.NtpAccessAllow.Path] = c => Prefixes(c.Ntp.Access, allow: true),
        [K.NtpAccessDeny.Path] = c => Prefixes(c.Ntp.Access, allow: false),
        [K.NtpAccessDenyAction.Path] = c => Text(c.Ntp.DenyAction),
        [K.NtpSmearListen.Path] = c => Text(c.Ntp.Smear.Listen),
        [K.NtpSmearReferenceId.Path] = c => Text(c.Ntp.Smear.ReferenceId),
        [K.NtsKe.Path] = c => c.NtsKe is null ? "null" : "on",
        [K.Roughtime.Path] = c => c.Roughtime is null ? "null" : "on",
        [K.RoughtimeListen.Path] = c => Roughtime(c, r => r.Listen),
        [K.RoughtimeTcp.Path] = c => Roughtime(c, r => r.Tcp),
        [K.RoughtimeKey.Path] = c => Roughtime(c, r => r.Key),
        [K.RoughtimeOnlineKeyLifetime.Path] = c => Roughtime(c, r => r.OnlineKeyLifetime),
        [K.NtsKeListen.Path] = c => Nts(c, n => n.Listen),
        [K.NtsKeCertificate.Path] = c => Nts(c, n => n.Certificate),
        [K.NtsKePrivateKey.Path] = c => Nts(c, n => n.PrivateKey),
        [K.NtsKeKeysStorage.Path] = c => Nts(c, n => n.Keys.Storage),
        [K.NtsKeKeysRotation.Path] = c => Nts(c, n => n.Keys.Rotation),
        [K.NtsKeKeysKeep.Path] = c => Nts(c, n => n.Keys.Keep),
        [K.NtsKeKeysFleetSecret.Path] = c => Nts(c, n => n.Keys.FleetSecret),
        [K.NtsKeNtpServer.Path] = c => Nts(c, n => $"{n.NtpServer}:{n.NtpPort}"),
        [K.NtsKeMaxConnections.Path] = c => Nts(c, n => n.MaxConnections),
        [K.NtsKeHandshakeTimeout.Path] = c => Nts(c, n => n.HandshakeTimeout),
        [K.NtsKeIdleTimeout.Path] = c => Nts(c, n => n.IdleTimeout),
        [K.NtsKeRequestTimeout.Path] = c => Nts(c, n => n.RequestTimeout),
        [K.NtsKeMaxRequest.Path] = c => Nts(c, n => n.MaxRequest),
        [K.NtsKeAeads.Path] = c => Nts(c, n => n.Aeads),
        [K.NtsKeClientLimitConnections.Path] = c => Nts(c, n => n.ClientConnections),
        [K.NtsKeClientLimitInterval.Path] = c => Nts(c, n => n.ClientInterval),
        [K.NtsKeClientLimitConcurrent.Path] = c => Nts(c, n => n.ClientConcurrent),
        [K.ClockMode.Path] = c => Text(c.Clock.Mode),
        [K.ClockLocal.Path] = c => c.Clock.Local is null ? "null" : "on",
        [K.ClockLocalStratum.Path] = c => c.Clock.Local is { } local ? Text(local.Stratum) : "null",
        [K.ClockLeapSeconds.Path] = c => Text(c.Clock.LeapSeconds),
        [K.ClockHoldover.Path] = c => Text(c.Clock.Holdover),
        [K.ClockStepThreshold.Path] = c => Text(c.Clock.StepThreshold),
        [K.ClockPanicThreshold.Path] = c => Text(c.Clock.PanicThreshold),
        [K.ClockMinSources.Path] = c => Text(c.Clock.MinSources),
        [K.ClockLastKnownTime.Path] = c => Text(c.Clock.LastKnownTime),
        [K.ClockSkipCertificateDates.Path] = c => Text(c.Clock.SkipCertificateDates),
        [K.ClockRoughtime.Path] = c => string.Join(", ", (c.Clock.Roughtime ?? RoughtimeServerList.Empty).Items.Select(s => $"{s.Name} {Convert.ToBase64String(s.PublicKey)}")),
        [K.ClockRoughtimeQuorum.Path] = c => Text(c.Clock.RoughtimeQuorum),
        // Every source entry, as a whole: the clock service pairs the entries of the two lists.
        [K.Sources.Path] = c => Text(c.Sources),
        [K.MetricsListen.Path] = c => Text(c.Metrics.Listen),
        [K.ControlSocket.Path] = c => Text(c.Control.Socket ?? "off"),
        [K.User.Path] = c => Text(c.User),
        [K.LogLevel.Path] = c => Text(c.Log.Level),
    };

    /// <summary>True for the keys a source entry is written with: their changes are the entry's (see <see cref="K.Sources"/>).</summary>
    public static bool IsSourceKey(ConfigKey key) => key.Path.StartsWith(K.Sources.Path + "[]", StringComparison.Ordinal);
}
