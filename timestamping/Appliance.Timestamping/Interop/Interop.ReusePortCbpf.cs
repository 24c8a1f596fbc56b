using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

/// <summary>struct sock_filter: one classic-BPF instruction, 8 bytes.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct SockFilter(ushort code, byte jt, byte jf, uint k)
{
    public ushort Code = code;
    public byte JumpTrue = jt;
    public byte JumpFalse = jf;
    public uint K = k;
}

/// <summary>struct sock_fprog: 16 bytes (length, padding, pointer).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SockFprog
{
    public ushort Length;
    public SockFilter* Filter;
}

/// <summary>Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).</summary>
internal static class Bpf
{
    public const ushort LdWAbs = 0x00 | 0x00 | 0x20;   // BPF_LD | BPF_W | BPF_ABS
    public const ushort AluMulK = 0x04 | 0x20 | 0x00;  // BPF_ALU | BPF_MUL | BPF_K
    public const ushort AluRshK = 0x04 | 0x70 | 0x00;  // BPF_ALU | BPF_RSH | BPF_K
    public const ushort AluXorX = 0x04 | 0xa0 | 0x08;  // BPF_ALU | BPF_XOR | BPF_X
    public const ushort AluModK = 0x04 | 0x90 | 0x00;  // BPF_ALU | BPF_MOD | BPF_K
    public const ushort Tax = 0x07 | 0x00;             // BPF_MISC | BPF_TAX
    public const ushort RetA = 0x06 | 0x10;            // BPF_RET | BPF_A

    /// <summary>SKF_NET_OFF: loads relative to the network (IP) header.</summary>
    public const uint NetOffset = unchecked((uint)-0x100000);
}
