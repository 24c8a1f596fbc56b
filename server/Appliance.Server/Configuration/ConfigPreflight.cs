namespace Appliance.Server.Configuration;

/// <summary>A file or device the configuration names, and where: what <see cref="ConfigPreflight"/> checks.</summary>
public sealed record FileReference(ConfigKey Key, string Path, int Line, int Column);

/// <summary>
/// The file-system half of validation: that every file and device the configuration names exists.
/// Kept apart from parsing so that parsing reads nothing but the text, and so that a reload can run
/// this alone against the files of the configuration it already holds (a renewed certificate, a
/// new leap-seconds.list).
/// </summary>
public static class ConfigPreflight
{
    public static IReadOnlyList<ConfigError> Check(IEnumerable<FileReference> files)
    {
        var errors = new List<ConfigError>();
        foreach (FileReference file in files)
        {
            if (File.Exists(file.Path))
            {
                continue;
            }
            string kind = file.Key.Type == ConfigType.Device ? "device" : "file";
            string message = Directory.Exists(file.Path)
                ? $"{file.Key.Path}: {file.Path} is a directory, not a {kind}"
                : $"{file.Key.Path}: no {kind} {file.Path}";
            errors.Add(new ConfigError(file.Line, file.Column, message, file.Key.IfMissing ?? file.Key.Fix));
        }
        return errors;
    }
}
