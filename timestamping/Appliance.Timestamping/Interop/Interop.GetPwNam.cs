using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>struct passwd (pwd.h, x86-64 glibc): 48 bytes, uid at 16, gid at 20.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct Passwd
{
    public byte* Name;
    public byte* Password;
    public uint Uid;
    public uint Gid;
    public byte* Gecos;
    public byte* Home;
    public byte* Shell;
}

internal static unsafe partial class Libc
{
    /// <summary>
    /// getpwnam_r(3): through NSS, as login and systemd's User= see the account. Returns 0 with
    /// <paramref name="result"/> null when there is no such user, ERANGE when the buffer is too small.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "getpwnam_r", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int GetPwNamR(string name, Passwd* entry, byte* buffer, nuint length, Passwd** result);

    /// <summary>getgrouplist(3): the user's groups, the primary one included; -1 when <paramref name="count"/> is too small (then set to the count needed).</summary>
    [LibraryImport("libc", EntryPoint = "getgrouplist", StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int GetGroupList(string user, uint group, uint* groups, int* count);
}
