using System.Globalization;

namespace Appliance.Timestamping;

/// <summary>
/// One thread's identity and capability sets as the kernel reports them in /proc/PID/task/TID/status
/// (proc(5)): Uid and Gid (real, effective, saved, filesystem) and the five capability sets as hex masks.
/// Credentials are per thread in Linux, so a process is only as confined as its least confined thread.
/// </summary>
public sealed record ThreadCredentials(int Tid, string Name, IReadOnlyList<uint> Uids, IReadOnlyList<uint> Gids,
    ulong Inheritable, ulong Permitted, ulong Effective, ulong Bounding, ulong Ambient)
{
    /// <summary>
    /// Reads a status file's text; null when a field this needs is missing or malformed (a kernel
    /// without ambient capabilities, before 4.3, has no CapAmb line: it counts as malformed too, since
    /// nothing could then prove the set empty).
    /// </summary>
    public static ThreadCredentials? Parse(int tid, string status)
    {
        string name = "";
        uint[]? uids = null, gids = null;
        ulong? inheritable = null, permitted = null, effective = null, bounding = null, ambient = null;
        foreach (string line in status.Split('\n'))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0)
            {
                continue;
            }
            string value = line[(colon + 1)..].Trim();
            switch (line[..colon])
            {
                case "Name": name = value; break;
                case "Uid": uids = Ids(value); break;
                case "Gid": gids = Ids(value); break;
                case "CapInh": inheritable = Mask(value); break;
                case "CapPrm": permitted = Mask(value); break;
                case "CapEff": effective = Mask(value); break;
                case "CapBnd": bounding = Mask(value); break;
                case "CapAmb": ambient = Mask(value); break;
            }
        }
        if (uids is null || gids is null || inheritable is not { } i || permitted is not { } p || effective is not { } e
            || bounding is not { } b || ambient is not { } a)
        {
            return null;
        }
        return new ThreadCredentials(tid, name, uids, gids, i, p, e, b, a);
    }

    private static uint[]? Ids(string value)
    {
        string[] parts = value.Split(['\t', ' '], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 4)
        {
            return null;
        }
        var ids = new uint[4];
        for (int i = 0; i < 4; i++)
        {
            if (!uint.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
            {
                return null;
            }
        }
        return ids;
    }

    private static ulong? Mask(string value) =>
        value.Length is > 0 and <= 16 && ulong.TryParse(value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong mask) ? mask : null;

    /// <summary>
    /// What is wrong with <paramref name="threads"/> for a process that must run as
    /// <paramref name="uid"/>:<paramref name="gid"/> holding no capability outside
    /// <paramref name="allowed"/>: one line per thread and problem; empty when every thread is right.
    /// Inheritable and ambient must be empty (they only matter at execve, which the appliance never
    /// runs once serving, so nothing may pass on through them); permitted, effective and bounding may
    /// hold the allowed capabilities and no other. No thread at all is a problem too: nothing was proven.
    /// </summary>
    public static IReadOnlyList<string> Problems(IReadOnlyCollection<ThreadCredentials> threads, uint uid, uint gid, ulong allowed)
    {
        var problems = new List<string>();
        if (threads.Count == 0)
        {
            problems.Add("no thread's credentials could be read");
        }
        foreach (ThreadCredentials t in threads)
        {
            string who = $"thread {t.Tid} ({t.Name})";
            if (t.Uids.Any(id => id != uid))
            {
                problems.Add($"{who} has uids {string.Join(' ', t.Uids)}, not {uid}");
            }
            if (t.Gids.Any(id => id != gid))
            {
                problems.Add($"{who} has gids {string.Join(' ', t.Gids)}, not {gid}");
            }
            Beyond(problems, who, "permitted", t.Permitted, allowed);
            Beyond(problems, who, "effective", t.Effective, allowed);
            Beyond(problems, who, "bounding", t.Bounding, allowed);
            Beyond(problems, who, "inheritable", t.Inheritable, 0);
            Beyond(problems, who, "ambient", t.Ambient, 0);
        }
        return problems;
    }

    private static void Beyond(List<string> problems, string who, string set, ulong mask, ulong allowed)
    {
        if ((mask & ~allowed) != 0)
        {
            problems.Add($"{who} holds {Capabilities.Names(mask & ~allowed)} in its {set} set");
        }
    }
}

/// <summary>Capability numbers and names (linux/capability.h).</summary>
public static class Capabilities
{
    public const int NetBindService = 10;
    public const int SysTime = 25;

    private static readonly string[] s_names =
    [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
        "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
        "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ];

    /// <summary>The mask holding exactly <paramref name="capabilities"/>.</summary>
    public static ulong Mask(params ReadOnlySpan<int> capabilities)
    {
        ulong mask = 0;
        foreach (int capability in capabilities)
        {
            mask |= 1UL << capability;
        }
        return mask;
    }

    /// <summary>The capabilities in <paramref name="mask"/> by name ("cap 45" past the table), lowest first; "none" for 0.</summary>
    public static string Names(ulong mask)
    {
        var names = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            if ((mask & (1UL << bit)) != 0)
            {
                names.Add(bit < s_names.Length ? s_names[bit] : $"cap {bit}");
            }
        }
        return names.Count == 0 ? "none" : string.Join(", ", names);
    }
}
