using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>struct __user_cap_header_struct (linux/capability.h): 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CapUserHeader
{
    /// <summary>_LINUX_CAPABILITY_VERSION_3: two <see cref="CapUserData"/> (64 capability bits).</summary>
    public const uint Version3 = 0x20080522;

    public uint Version;

    /// <summary>0: the calling thread (capset(2) can set no other).</summary>
    public int Pid;
}

/// <summary>struct __user_cap_data_struct: 12 bytes; version 3 takes two, bits 0–31 then 32–63.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CapUserData
{
    public uint Effective;
    public uint Permitted;
    public uint Inheritable;
}

internal static unsafe partial class Libc
{
    /// <summary>capget(2): <paramref name="data"/> points at two <see cref="CapUserData"/>.</summary>
    [LibraryImport("libc", EntryPoint = "capget", SetLastError = true)]
    internal static partial int CapGet(CapUserHeader* header, CapUserData* data);

    /// <summary>capset(2): sets the calling thread's sets only.</summary>
    [LibraryImport("libc", EntryPoint = "capset", SetLastError = true)]
    internal static partial int CapSet(CapUserHeader* header, CapUserData* data);
}
