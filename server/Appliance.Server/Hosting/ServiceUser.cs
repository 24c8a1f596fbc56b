using Appliance.Server.Configuration;
using Appliance.Timestamping;

namespace Appliance.Server.Hosting;

/// <summary>What <see cref="ServiceUser.Enter"/> found: an error to stop with, or lines to log and go on.</summary>
/// <param name="Switched">The user this process switched to (its threads checked), or null when it did not switch.</param>
public readonly record struct ServiceUserOutcome(string? Error, string? Warning, string? Information, UserAccount? Switched = null);

/// <summary>
/// The configuration's <c>user</c>: least privilege when started as root outside systemd. Runs
/// before anything is opened or bound (binding a port under 1024 needs only the CAP_NET_BIND_SERVICE
/// that is kept, and a reload re-binds and re-reads as the user anyway), so that every file, socket
/// and thread of the served process belongs to the user from the start. The switch itself is
/// <see cref="Privileges"/>' two images: this process, as root, makes the directories the user needs
/// and executes itself again; the new image, marked by <see cref="MarkerVariable"/>, completes the
/// switch and checks every thread.
/// </summary>
public static class ServiceUser
{
    /// <summary>Set in the environment of the image <see cref="Privileges.ExecAsUser"/> starts: finish the switch.</summary>
    public const string MarkerVariable = "APPLIANCE_SWITCHING_USER";

    /// <summary>
    /// What the appliance keeps: binding NTP's port 123 (and NTS-KE or metrics ports below 1024) and
    /// steering the clock in kernel mode. Nothing else: not even CAP_SETUID, the switch needs none.
    /// </summary>
    public static ulong Kept { get; } = Capabilities.Mask(Capabilities.NetBindService, Capabilities.SysTime);

    public static string RootWarning =>
        "running as root with every privilege: set `user: appliance` in the configuration (the appliance switches to that user "
        + "after start-up, keeping only CAP_NET_BIND_SERVICE and CAP_SYS_TIME), or run it under the shipped systemd unit (appliance.service)";

    /// <summary>
    /// Takes the configured user: returns at once when there is nothing to do; as root, executes the
    /// appliance again (returning only on failure); in the image so started, completes the switch and
    /// checks every thread (<see cref="Check"/>).
    /// </summary>
    public static ServiceUserOutcome Enter(ApplianceConfig config)
    {
        (uint real, uint effective) = Privileges.Uids();
        bool switching = Environment.GetEnvironmentVariable(MarkerVariable) is not null;
        if (config.User is not { } name)
        {
            if (switching)
            {
                return Error("the appliance was executed again to switch user, but its configuration now names no user: start it again");
            }
            return effective == 0 ? new ServiceUserOutcome(null, RootWarning, null) : default;
        }
        UserAccount? account;
        try
        {
            account = Privileges.FindUser(name);
        }
        catch (PrivilegeException e)
        {
            return Error(e.Message);
        }
        if (account is null)
        {
            return Error($"user: no user '{name}' on this machine; {ConfigKeys.User.IfMissing}");
        }
        if (switching)
        {
            return Complete(account);
        }
        if (effective != 0)
        {
            if (real == account.Uid && effective == account.Uid)
            {
                return new ServiceUserOutcome(null, null, $"running as user {name} (uid {account.Uid})");
            }
            return Error($"`user: {name}` needs the appliance started as root, to switch to {name} (uid {account.Uid}), "
                + $"but it was started as uid {effective}: start it as root, or as {name} (as the shipped systemd unit does), or remove user from the configuration");
        }
        if (account.Uid == 0)
        {
            return Error($"user: '{name}' is uid 0, which keeps every privilege: name an unprivileged user, e.g. `user: appliance`");
        }
        try
        {
            PrepareDirectories(config, account);
            Privileges.ExecAsUser(account, Kept, MarkerVariable + "=1");
        }
        catch (Exception e) when (e is PrivilegeException or IOException or UnauthorizedAccessException)
        {
            return Error($"cannot switch to user {name}: {e.Message}");
        }
        return Error($"cannot switch to user {name}: execve returned"); // not reached: ExecAsUser returns by throwing
    }

    /// <summary>
    /// Every thread as it must be once switched: the user's uid and gid everywhere, no capability
    /// beyond <see cref="Kept"/>, empty inheritable and ambient sets. One line per problem; none: confined.
    /// </summary>
    public static IReadOnlyList<string> Check(UserAccount account) =>
        ThreadCredentials.Problems(Privileges.ReadThreads(), account.Uid, account.Gid, Kept);

    private static ServiceUserOutcome Complete(UserAccount account)
    {
        string? wrong = Privileges.CheckExecuted(account, Kept);
        if (wrong is not null)
        {
            return Error($"cannot finish switching to user {account.Name}: {wrong}");
        }
        try
        {
            Privileges.CompleteSwitch(account);
        }
        catch (PrivilegeException e)
        {
            return Error($"cannot finish switching to user {account.Name}: {e.Message}");
        }
        Environment.SetEnvironmentVariable(MarkerVariable, null);
        IReadOnlyList<string> problems = Check(account);
        if (problems.Count > 0)
        {
            return Error($"refusing to serve: after switching to user {account.Name}, {string.Join("; ", problems)}");
        }
        return new ServiceUserOutcome(null, null,
            $"running as user {account.Name} (uid {account.Uid}, gid {account.Gid}) with {Capabilities.Names(Kept)} only", account);
    }

    /// <summary>
    /// The directories the user must own and cannot make itself (their parents are root's): the
    /// control socket's (0750: its group may reach the socket), the NTS key storage's and the Roughtime
    /// key's (0700: the keys are the user's alone), when they do not exist. Existing ones are left as they are; if the
    /// user cannot use them the start fails naming the chown that fixes it.
    /// </summary>
    private static void PrepareDirectories(ApplianceConfig config, UserAccount account)
    {
        const UnixFileMode Owner = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        if (config.Control.Socket is { } socket)
        {
            Privileges.CreateOwnedDirectory(Path.GetDirectoryName(Path.GetFullPath(socket))!, Owner | UnixFileMode.GroupRead | UnixFileMode.GroupExecute, account);
        }
        if (config.NtsKe is { Keys: { FleetSecret: null, Storage: { } storage } })
        {
            Privileges.CreateOwnedDirectory(Path.GetDirectoryName(Path.GetFullPath(storage))!, Owner, account);
        }
        if (config.Roughtime is { Key: { } key })
        {
            Privileges.CreateOwnedDirectory(Path.GetDirectoryName(Path.GetFullPath(key))!, Owner, account);
        }
    }

    /// <summary>
    /// The advice for a file the switched appliance may not use, added to the error: which user it
    /// runs as and the chown that gives it the files (recursive for a directory). Empty when no user is configured.
    /// </summary>
    public static string OwnershipFix(string? user, params ReadOnlySpan<string> paths) =>
        user is null ? "" : $" (the appliance runs as {user}; fix: chown {(Directory.Exists(paths[0]) ? "-R " : "")}{user}: {string.Join(' ', paths.ToArray())})";

    private static ServiceUserOutcome Error(string message) => new(message, null, null);
}
