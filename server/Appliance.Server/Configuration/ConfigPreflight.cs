using Appliance.Timestamping;

namespace Appliance.Server.Configuration;

/// <summary>A file, device or user account the configuration names, and where: what <see cref="ConfigPreflight"/> checks.</summary>
/// <param name="Path">The file's path, or for a <see cref="ConfigType.User"/> key the user's name.</param>
public sealed record FileReference(ConfigKey Key, string Path, int Line, int Column);

/// <summary>
/// The machine half of validation: that every file and device the configuration names exists, and
/// the user it names. Kept apart from parsing so that parsing reads nothing but the text, and so
/// that a reload can run this alone against the files of the configuration it already holds (a
/// renewed certificate, a new leap-seconds.list).
/// </summary>
public static class ConfigPreflight
{
    public static IReadOnlyList<ConfigError> Check(IEnumerable<FileReference> files)
    {
        var errors = new List<ConfigError>();
        foreach (FileReference file in files)
        {
            if (file.Key.Type == ConfigType.User)
            {
                if (CheckUser(file) is { } error)
                {
                    errors.Add(error);
                }
                continue;
            }
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

    private static ConfigError? CheckUser(FileReference user)
    {
        UserAccount? account;
        try
        {
            account = Privileges.FindUser(user.Path);
        }
        catch (PrivilegeException e)
        {
            return new ConfigError(user.Line, user.Column, $"{user.Key.Path}: {e.Message}", user.Key.IfMissing ?? user.Key.Fix);
        }
        if (account is null)
        {
            return new ConfigError(user.Line, user.Column, $"{user.Key.Path}: no user '{user.Path}' on this machine", user.Key.IfMissing ?? user.Key.Fix);
        }
        if (account.Uid == 0)
        {
            return new ConfigError(user.Line, user.Column, $"{user.Key.Path}: '{user.Path}' is uid 0, which keeps every privilege",
                "name an unprivileged user, e.g. `user: appliance`, or remove user");
        }
        return null;
    }
}
