using System.Reflection;

namespace Appliance.Server.Hosting;

/// <summary>
/// What was built: the version (the project's &lt;Version&gt;) and the git commit it was built from.
/// The .NET SDK reads the commit from the checkout at build time (SourceRevisionId) and appends it
/// to the informational version as "+SHA"; outside a git checkout it appends nothing, and the build
/// does not fail: the commit is then "unknown". <c>appliance version</c>, <c>appliance status</c>
/// and <c>appliance_build_info</c> all read it here.
/// </summary>
public static class BuildInfo
{
    public const string Unknown = "unknown";

    private static readonly (string Version, string Commit) s_parsed =
        Parse(typeof(BuildInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion);

    public static string Version => s_parsed.Version;

    /// <summary>The full commit id, or <see cref="Unknown"/> when the build had no git checkout.</summary>
    public static string Commit => s_parsed.Commit;

    /// <summary>
    /// The time of the commit built (SOURCE_DATE_EPOCH when the packager set one), Unix seconds; 0
    /// for a build outside git. No clock running this binary can be earlier (issue #21): it is the
    /// floor for "now" before a last-known time exists.
    /// </summary>
    public static long BuildUnixSeconds { get; } = ParseSeconds(typeof(BuildInfo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .FirstOrDefault(a => a.Key == "BuildUnixSeconds")?.Value);

    public static long ParseSeconds(string? value) =>
        long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long seconds) ? seconds : 0;

    /// <summary>"0.1.0+SHA" → ("0.1.0", "SHA"); "0.1.0" → ("0.1.0", "unknown"); nothing → both unknown.</summary>
    public static (string Version, string Commit) Parse(string? informationalVersion)
    {
        if (string.IsNullOrWhiteSpace(informationalVersion))
        {
            return (Unknown, Unknown);
        }
        int plus = informationalVersion.IndexOf('+', StringComparison.Ordinal);
        if (plus < 0)
        {
            return (informationalVersion, Unknown);
        }
        string commit = informationalVersion[(plus + 1)..];
        return (informationalVersion[..plus], commit.Length == 0 ? Unknown : commit);
    }
}
