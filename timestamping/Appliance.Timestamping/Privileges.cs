using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>An account of the user database: what the appliance switches to.</summary>
/// <param name="Groups">The supplementary groups, as initgroups(3) makes them (the primary one included).</param>
public sealed record UserAccount(string Name, uint Uid, uint Gid, IReadOnlyList<uint> Groups);

/// <summary>A privilege operation that failed: the process must not serve.</summary>
public sealed class PrivilegeException(string message) : Exception(message);

/// <summary>
/// Switching the process from root to a service user that keeps a few capabilities, for every thread.
/// Credentials are per thread in Linux. glibc's setresuid, setresgid and setgroups reach every thread
/// (SIGSETXID), but capset(2) and the prctl(2)s (bounding set, securebits, ambient) reach the caller
/// alone, a new thread copies its creator's, and the .NET runtime has threads before Main. So the
/// switch takes two images of the same program:
/// <list type="number">
/// <item><see cref="ExecAsUser"/>, as root: the groups and gids of the user, SECBIT_NO_SETUID_FIXUP (kept
/// across execve, inherited by threads), the bounding set cut to the capabilities kept, empty
/// inheritable and ambient sets, the real uid the user's (effective and saved stay 0), then execve of
/// the same executable and arguments. The new image starts with every thread made from that one: as
/// effective root its permitted and effective sets are the bounding set (capabilities(7), "Capabilities
/// and execution of programs by root"), nothing more, on every thread.</item>
/// <item><see cref="CompleteSwitch"/>, in the new image: setresuid(user, user, user), which an
/// unprivileged process may do since the real uid is the user's; glibc applies it to every thread, and
/// NO_SETUID_FIXUP leaves their capability sets as they are.</item>
/// </list>
/// <see cref="ReadThreads"/> then reads what the kernel says each thread holds. The first image is
/// executed under AT_SECURE (its real and effective uids differ): glibc ignores LD_* and TMPDIR there.
/// </summary>
public static unsafe class Privileges
{
    /// <summary>This thread's real and effective uids.</summary>
    public static (uint Real, uint Effective) Uids()
    {
        if (Libc.GetResUid(out uint real, out uint effective, out _) != 0)
        {
            throw Failure("getresuid");
        }
        return (real, effective);
    }

    /// <summary>The account named <paramref name="name"/> with its groups, or null when there is none.</summary>
    public static UserAccount? FindUser(string name)
    {
        Passwd entry;
        Passwd* result = null;
        for (nuint length = 1024; ; length *= 2)
        {
            byte[] buffer = new byte[length];
            int error;
            fixed (byte* b = buffer)
            {
                error = Libc.GetPwNamR(name, &entry, b, length, &result);
            }
            if (error == 34 && length < (1 << 20)) // ERANGE: a larger buffer
            {
                continue;
            }
            // Not found is 0 with no result; some NSS modules say so with ENOENT, ESRCH, EBADF or EPERM (getpwnam_r(3)).
            if (error is 1 or 2 or 3 or 9)
            {
                return null;
            }
            if (error != 0)
            {
                throw new PrivilegeException($"cannot look up user {name}: {Marshal.GetPInvokeErrorMessage(error)}");
            }
            break;
        }
        if (result is null)
        {
            return null;
        }
        return new UserAccount(name, entry.Uid, entry.Gid, GroupsOf(name, entry.Gid));
    }

    private static uint[] GroupsOf(string name, uint gid)
    {
        int count = 32;
        while (true)
        {
            uint[] groups = new uint[count];
            int wanted = count;
            int found;
            fixed (uint* g = groups)
            {
                found = Libc.GetGroupList(name, gid, g, &wanted);
            }
            if (found >= 0)
            {
                return groups[..found];
            }
            if (wanted <= count || wanted > 65536)
            {
                throw new PrivilegeException($"cannot list the groups of user {name}");
            }
            count = wanted;
        }
    }

    /// <summary>
    /// Makes <paramref name="path"/> a directory of <paramref name="owner"/> with <paramref name="mode"/>
    /// when it does not exist (missing parents as root, 0755, as mkdir -p); an existing one is left
    /// as it is. Returns whether it was made.
    /// </summary>
    public static bool CreateOwnedDirectory(string path, UnixFileMode mode, UserAccount owner)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full))
        {
            return false;
        }
        if (Path.GetDirectoryName(full) is { } parent)
        {
            Directory.CreateDirectory(parent);
        }
        Directory.CreateDirectory(full, mode);
        if (Libc.LChown(full, owner.Uid, owner.Gid) != 0)
        {
            throw Failure($"chown {owner.Name}: {full}");
        }
        // The mode again: the umask may have taken bits the user needs (0750 under umask 027 stays, 0077 would not).
        File.SetUnixFileMode(full, mode);
        return true;
    }

    /// <summary>
    /// The first step (see the class): as root, becomes <paramref name="user"/>'s groups and real uid
    /// keeping only <paramref name="keep"/> in the bounding set, then executes this executable again
    /// with its arguments and environment plus <paramref name="marker"/> (NAME=VALUE), by which the
    /// new image knows to call <see cref="CompleteSwitch"/>. Returns only by throwing. Runs on one
    /// thread from start to end: the prctl and capset calls act on the calling thread, the one that
    /// executes.
    /// </summary>
    public static void ExecAsUser(UserAccount user, ulong keep, string marker)
    {
        string executable = Environment.ProcessPath ?? throw new PrivilegeException("cannot tell which executable this process runs");
        byte[] arguments = File.ReadAllBytes("/proc/self/cmdline");
        byte[] environment = [.. File.ReadAllBytes("/proc/self/environ"), .. Encoding.UTF8.GetBytes(marker), 0];
        int lastCapability = int.Parse(File.ReadAllText("/proc/sys/kernel/cap_last_cap").Trim(), CultureInfo.InvariantCulture);

        uint[] groups = [.. user.Groups];
        fixed (uint* g = groups)
        {
            Check(Libc.SetGroups((nuint)groups.Length, g), $"setgroups for {user.Name}");
        }
        Check(Libc.SetResGid(user.Gid, user.Gid, user.Gid), $"setresgid {user.Gid}");
        int secureBits = Libc.Prctl(Libc.PrGetSecureBits, 0, 0, 0, 0);
        Check(secureBits < 0 ? -1 : Libc.Prctl(Libc.PrSetSecureBits, (nuint)(secureBits | Libc.SecBitNoSetuidFixup), 0, 0, 0),
            "prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP)");
        for (int capability = 0; capability <= lastCapability; capability++)
        {
            if ((keep & (1UL << capability)) == 0)
            {
                Check(Libc.Prctl(Libc.PrCapBsetDrop, (nuint)capability, 0, 0, 0), $"prctl(PR_CAPBSET_DROP, {capability})");
            }
        }
        // Only the real uid: the saved and effective uids stay 0, which is what lets the new image set
        // all three to the user without CAP_SETUID (setresuid(2): an unprivileged process may set each to the current real uid).
        Check(Libc.SetResUid(user.Uid, 0, 0), $"setresuid {user.Uid} 0 0");
        // Root's new permitted set at execve is bounding | inheritable: the inheritable set must be empty.
        CapUserHeader header = new() { Version = CapUserHeader.Version3 };
        CapUserData* data = stackalloc CapUserData[2];
        Check(Libc.CapGet(&header, data), "capget");
        data[0].Inheritable = 0;
        data[1].Inheritable = 0;
        Check(Libc.CapSet(&header, data), "capset");
        Check(Libc.Prctl(Libc.PrCapAmbient, Libc.PrCapAmbientClearAll, 0, 0, 0), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");

        byte[] path = [.. Encoding.UTF8.GetBytes(executable), 0];
        fixed (byte* p = path, a = arguments, e = environment)
        {
            byte** argv = Pointers(a, arguments.Length);
            byte** envp = Pointers(e, environment.Length);
            Libc.Execve(p, argv, envp);
            int errno = Marshal.GetLastPInvokeError();
            NativeMemory.Free(argv);
            NativeMemory.Free(envp);
            throw new PrivilegeException($"execve {executable}: {Marshal.GetPInvokeErrorMessage(errno)}");
        }
    }

    /// <summary>The null-terminated pointer array over the NUL-separated strings of <paramref name="block"/> (as /proc/self/cmdline and environ are).</summary>
    private static byte** Pointers(byte* block, int length)
    {
        int count = 0;
        for (int i = 0; i < length; i++)
        {
            count += block[i] == 0 ? 1 : 0;
        }
        byte** pointers = (byte**)NativeMemory.Alloc((nuint)(count + 1), (nuint)sizeof(byte*));
        int n = 0;
        for (int start = 0, i = 0; i < length; i++)
        {
            if (block[i] == 0)
            {
                pointers[n++] = block + start;
                start = i + 1;
            }
        }
        pointers[n] = null;
        return pointers;
    }

    /// <summary>
    /// Whether this image was made by <see cref="ExecAsUser"/> for <paramref name="user"/>: real uid the
    /// user's, effective 0, SECBIT_NO_SETUID_FIXUP set, and nothing outside <paramref name="keep"/> in
    /// the calling thread's bounding set. Null when so, else what differs.
    /// </summary>
    public static string? CheckExecuted(UserAccount user, ulong keep)
    {
        (uint real, uint effective) = Uids();
        if (real != user.Uid || effective != 0)
        {
            return $"the uids are {real} (real) and {effective} (effective), not {user.Uid} and 0";
        }
        int secureBits = Libc.Prctl(Libc.PrGetSecureBits, 0, 0, 0, 0);
        if (secureBits < 0 || (secureBits & Libc.SecBitNoSetuidFixup) == 0)
        {
            return "SECBIT_NO_SETUID_FIXUP is not set";
        }
        for (int capability = 0; capability < 64; capability++)
        {
            if ((keep & (1UL << capability)) == 0 && Libc.Prctl(Libc.PrCapBsetRead, (nuint)capability, 0, 0, 0) == 1)
            {
                return $"the bounding set still holds {Capabilities.Names(1UL << capability)}";
            }
        }
        return null;
    }

    /// <summary>The second step (see the class): every thread's uids become <paramref name="user"/>'s.</summary>
    public static void CompleteSwitch(UserAccount user) => Check(Libc.SetResUid(user.Uid, user.Uid, user.Uid), $"setresuid {user.Uid}");

    /// <summary>
    /// Every thread's credentials: /proc/self/status (the process, as the main thread sees it) and
    /// each /proc/self/task/TID/status. A thread that ends while they are read is left out; any other
    /// failure to read one throws, since an unread thread is an unchecked one.
    /// </summary>
    public static IReadOnlyList<ThreadCredentials> ReadThreads()
    {
        var threads = new List<ThreadCredentials>();
        Add(threads, Environment.ProcessId, "/proc/self/status");
        foreach (string task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            if (int.TryParse(Path.GetFileName(task), NumberStyles.None, CultureInfo.InvariantCulture, out int tid))
            {
                Add(threads, tid, Path.Combine(task, "status"));
            }
        }
        return threads;
    }

    private static void Add(List<ThreadCredentials> threads, int tid, string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (IOException) when (!File.Exists(path))
        {
            return; // the thread ended (opened after it went: ENOENT; read while it went: ESRCH)
        }
        threads.Add(ThreadCredentials.Parse(tid, text) ?? throw new PrivilegeException($"{path}: no Uid, Gid and Cap* lines to check"));
    }

    /// <summary>Whether the process may be dumped or ptraced by its user (PR_GET_DUMPABLE); after the switch it is not.</summary>
    public static bool Dumpable => Libc.Prctl(Libc.PrGetDumpable, 0, 0, 0, 0) == 1;

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw Failure(call);
        }
    }

    private static PrivilegeException Failure(string call) =>
        new($"{call}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
}
