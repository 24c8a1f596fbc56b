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
        return new ClockConfig(
            r.Choice<ClockMode>(clock, K.ClockMode),
            local,
            r.File(clock, K.ClockLeapSeconds),
            r.Duration(clock, K.ClockHoldover),
            r.Duration(clock, K.ClockStepThreshold),
            r.Duration(clock, K.ClockPanicThreshold),
            r.Integer(clock, K.ClockMinSources));
    }

    /// <summary>
    /// Something must give the time: a source or the local reference. Reported only when nothing
    /// that might be one was written: a source entry in error, a clock.local in error or a misspelt
    /// section has its own error, and this one would only echo it.
    /// </summary>
    public static void CheckTimeSource(ConfigReader r, Section top, Section clock)
    {
        bool sourcesWritten = top.Find(K.Sources) is { } sources && !ConfigReader.IsNull(sources)
            && sources is not YamlDotNet.RepresentationModel.YamlSequenceNode { Children.Count: 0 };
        bool localWritten = clock.Find(K.ClockLocal) is { } local && !ConfigReader.IsNull(local);
        bool misspelt = r.Misspelled("", K.Sources.Name) || r.Misspelled("", K.Clock.Name) || r.Misspelled(K.Clock.Path, K.ClockLocal.Name);
        if (!sourcesWritten && !localWritten && !misspelt)
        {
            r.Error(top.Find(K.Clock) ?? top.Node, "no time source: neither sources nor clock.local is set", ConfigRules.NoTimeSource);
        }
    }
}
