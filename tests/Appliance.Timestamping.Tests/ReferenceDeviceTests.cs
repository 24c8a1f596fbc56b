using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping.Tests;

/// <summary>
/// The PPS (RFC 2783) and PHC interop: struct layouts and ioctl numbers pinned to linux/pps.h and
/// linux/ptp_clock.h on x86-64, and the errors an operator sees on this machine, which has neither
/// device (no /dev/pps*, no /dev/ptp*: ../shared/PEERS.md §3–4).
/// </summary>
public class ReferenceDeviceTests
{
    [Fact]
    public void PpsStructs_MatchLinuxPpsH()
    {
        Assert.Equal(16, Marshal.SizeOf<PpsKTime>());
        Assert.Equal(48, Marshal.SizeOf<PpsKInfo>());
        Assert.Equal(8, (int)Marshal.OffsetOf<PpsKInfo>(nameof(PpsKInfo.AssertTime)));
        Assert.Equal(24, (int)Marshal.OffsetOf<PpsKInfo>(nameof(PpsKInfo.ClearTime)));
        Assert.Equal(40, (int)Marshal.OffsetOf<PpsKInfo>(nameof(PpsKInfo.CurrentMode)));
        Assert.Equal(64, Marshal.SizeOf<PpsFData>());
        Assert.Equal(40, Marshal.SizeOf<PpsKParams>());
    }

    /// <summary>_IOC(dir, type, nr, size) = dir &lt;&lt; 30 | size &lt;&lt; 16 | type &lt;&lt; 8 | nr (asm-generic/ioctl.h).</summary>
    private static uint Ioc(uint direction, char type, uint number, int size) => (direction << 30) | ((uint)size << 16) | ((uint)type << 8) | number;

    [Fact]
    public void IoctlNumbers_AreTheKernelHeaders()
    {
        const uint read = 2, write = 1;
        Assert.Equal(Libc.PpsGetParams, Ioc(read, 'p', 0xa1, IntPtr.Size));
        Assert.Equal(Libc.PpsSetParams, Ioc(write, 'p', 0xa2, IntPtr.Size));
        Assert.Equal(Libc.PpsGetCap, Ioc(read, 'p', 0xa3, IntPtr.Size));
        Assert.Equal(Libc.PpsFetch, Ioc(read | write, 'p', 0xa4, IntPtr.Size));
        Assert.Equal(Libc.PtpSysOffsetRequest, Ioc(write, '=', 5, Marshal.SizeOf<PtpSysOffset>()));
    }

    [Fact]
    public void PtpSysOffset_Holds51Readings()
    {
        Assert.Equal(16, Marshal.SizeOf<PtpClockTime>());
        Assert.Equal(16 + ((2 * PtpSysOffset.MaxSamples) + 1) * 16, Marshal.SizeOf<PtpSysOffset>());
        Assert.Equal(16, (int)Marshal.OffsetOf<PtpSysOffset>(nameof(PtpSysOffset.First)));
    }

    [Fact]
    public void MissingPpsDevice_SaysWhatIsNeeded()
    {
        var e = Assert.Throws<IOException>(() => KernelPpsDevice.Open("/dev/pps-appliance-test-missing"));
        Assert.Contains("no PPS device", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotAPpsDevice_IsRefused()
    {
        var e = Assert.Throws<IOException>(() => KernelPpsDevice.Open("/dev/null"));
        Assert.Contains("not a PPS device", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingPhc_SaysWhereToLook()
    {
        var e = Assert.Throws<IOException>(() => KernelPhcDevice.Open("/dev/ptp-appliance-test-missing"));
        Assert.Contains("no PTP hardware clock", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotAPhc_FailsOnRead()
    {
        using KernelPhcDevice device = KernelPhcDevice.Open("/dev/null");
        var e = Assert.Throws<IOException>(() => device.Read(5));
        Assert.Contains("PTP_SYS_OFFSET failed", e.Message, StringComparison.Ordinal);
    }
}
