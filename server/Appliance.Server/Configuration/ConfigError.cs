namespace Appliance.Server.Configuration;

/// <summary>One configuration error: where it is, what is wrong, and how to fix it.</summary>
public sealed record ConfigError(int Line, int Column, string Message, string Fix)
{
    public string Format(string source) => $"{source}:{Line}:{Column}: error: {Message}\n    fix: {Fix}";
}

/// <summary>The result of loading a configuration: a config, or every error found.</summary>
public sealed record ConfigResult(ApplianceConfig? Config, IReadOnlyList<ConfigError> Errors)
{
    public bool IsValid => Config is not null && Errors.Count == 0;

    /// <summary>The files and devices the configuration names, for <see cref="ConfigPreflight"/> (a reload re-runs it on these).</summary>
    public IReadOnlyList<FileReference> Files { get; init; } = [];
}
