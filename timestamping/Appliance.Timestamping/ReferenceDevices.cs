using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>Opening a device node, with errors that say what is missing.</summary>
internal static class Device
{
    /// <summary>open(2) with O_CLOEXEC; <paramref name="missing"/> when the node does not exist (ENOENT), else <paramref name="failed"/> and the errno.</summary>
    public static int Open(string path, int flags, string missing, string failed)
    {
        int fd = Libc.Open(path, flags | Libc.OCloExec);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException(errno == 2 ? missing : $"{failed}: errno {errno}");
        }
        return fd;
    }
}

/// <summary>One PPS edge (RFC 2783): its sequence number and the system time the kernel stamped it with.</summary>
public readonly record struct PpsEdge(uint Sequence, long SystemNanoseconds);

/// <summary>A PPS source of edges: the kernel's /dev/ppsN, or recorded/simulated data in tests.</summary>
public interface IPpsDevice : IDisposable
{
    string Path { get; }

    /// <summary>Waits up to <paramref name="timeout"/> for a new edge (assert, or clear when <paramref name="clear"/>); null when none came.</summary>
    PpsEdge? Fetch(bool clear, TimeSpan timeout);
}

/// <summary>
/// The kernel PPS API (RFC 2783 as Linux implements it, linux/pps.h): open /dev/ppsN, ask it to
/// capture both edges with timespec timestamps (PPS_SETPARAMS), then PPS_FETCH waits for an edge.
/// </summary>
public sealed class KernelPpsDevice : IPpsDevice
{
    private readonly int _fd;
    private uint _lastSequence;
    private bool _any;

    private KernelPpsDevice(string path, int fd)
    {
        Path = path;
        _fd = fd;
    }

    public string Path { get; }

    public static KernelPpsDevice Open(string path)
    {
        int fd = Device.Open(path, Libc.ORdWr,
            $"no PPS device {path}: the kernel has none (it needs a PPS client such as pps-gpio or pps-ldisc, CONFIG_PPS_CLIENT_*)",
            $"cannot open the PPS device {path} (the appliance needs read-write access to it)");
        try
        {
            if (Libc.IoctlInt(fd, Libc.PpsGetCap, out int capabilities) < 0)
            {
                throw new IOException($"{path} is not a PPS device (PPS_GETCAP failed: errno {Marshal.GetLastSystemError()})");
            }
            var parameters = default(PpsKParams);
            Check(Libc.IoctlPpsParams(fd, Libc.PpsGetParams, ref parameters), path, "PPS_GETPARAMS");
            parameters.Mode |= (capabilities & (Libc.PpsCaptureAssert | Libc.PpsCaptureClear)) | Libc.PpsTsFmtTspec;
            Check(Libc.IoctlPpsParams(fd, Libc.PpsSetParams, ref parameters), path, "PPS_SETPARAMS");
        }
        catch
        {
            Libc.Close(fd);
            throw;
        }
        return new KernelPpsDevice(path, fd);
    }

    private static void Check(int result, string path, string what)
    {
        if (result < 0)
        {
            throw new IOException($"{path}: {what} failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public PpsEdge? Fetch(bool clear, TimeSpan timeout)
    {
        var data = new PpsFData
        {
            Timeout = new PpsKTime { Seconds = (long)timeout.TotalSeconds, Nanoseconds = timeout.Milliseconds * 1_000_000 },
        };
        if (Libc.IoctlPpsFetch(_fd, Libc.PpsFetch, ref data) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno is Errno.EINTR or 110 /* ETIMEDOUT */ ? null : throw new IOException($"{Path}: PPS_FETCH failed: errno {errno}");
        }
        uint sequence = clear ? data.Info.ClearSequence : data.Info.AssertSequence;
        PpsKTime time = clear ? data.Info.ClearTime : data.Info.AssertTime;
        if (_any && sequence == _lastSequence)
        {
            return null;
        }
        _any = true;
        _lastSequence = sequence;
        return new PpsEdge(sequence, time.ToNanoseconds());
    }

    public void Dispose() => Libc.Close(_fd);
}

/// <summary>One PHC reading bracketed by two system-clock readings (PTP_SYS_OFFSET), Unix nanoseconds.</summary>
public readonly record struct PhcReading(long SystemBefore, long Phc, long SystemAfter);

/// <summary>A PTP hardware clock to compare with the system clock: /dev/ptpN, or recorded/simulated data in tests.</summary>
public interface IPhcDevice : IDisposable
{
    string Path { get; }

    IReadOnlyList<PhcReading> Read(int samples);
}

/// <summary>
/// A PHC (/dev/ptpN) read with the PTP_SYS_OFFSET ioctl: the kernel alternates system and PHC
/// readings, 2n+1 of them, so each PHC reading is bracketed by the system times just before and
/// after it. (The clock can also be read directly through its dynamic clock id, FD_TO_CLOCKID.)
/// </summary>
public sealed class KernelPhcDevice : IPhcDevice
{
    private readonly int _fd;

    private KernelPhcDevice(string path, int fd)
    {
        Path = path;
        _fd = fd;
    }

    public string Path { get; }

    /// <summary>The dynamic POSIX clock id of the open PHC: ((~fd) &lt;&lt; 3) | 3 (linux/posix-timers.h CLOCKFD).</summary>
    public int ClockId => (~_fd << 3) | 3;

    public static KernelPhcDevice Open(string path)
    {
        int fd = Device.Open(path, Libc.ORdOnly,
            $"no PTP hardware clock {path}: this machine has none (a NIC with a PHC, or ptp_kvm in a VM, provides one; see /sys/class/ptp)",
            $"cannot open the PTP hardware clock {path}");
        return new KernelPhcDevice(path, fd);
    }

    public IReadOnlyList<PhcReading> Read(int samples)
    {
        samples = Math.Clamp(samples, 1, PtpSysOffset.MaxSamples);
        var data = new PtpSysOffset { Samples = (uint)samples };
        if (Libc.IoctlPtpSysOffset(_fd, Libc.PtpSysOffsetRequest, ref data) < 0)
        {
            throw new IOException($"{Path}: PTP_SYS_OFFSET failed: errno {Marshal.GetLastPInvokeError()}");
        }
        var readings = new PhcReading[samples];
        for (int i = 0; i < samples; i++)
        {
            readings[i] = new PhcReading(
                Unsafe.Add(ref data.First, 2 * i).ToNanoseconds(),
                Unsafe.Add(ref data.First, (2 * i) + 1).ToNanoseconds(),
                Unsafe.Add(ref data.First, (2 * i) + 2).ToNanoseconds());
        }
        return readings;
    }

    /// <summary>Reads the PHC itself through its dynamic clock id.</summary>
    public long Now()
    {
        if (Libc.ClockGetTime(ClockId, out Timespec time) != 0)
        {
            throw new IOException($"{Path}: clock_gettime failed: errno {Marshal.GetLastPInvokeError()}");
        }
        return time.ToNanoseconds();
    }

    public void Dispose() => Libc.Close(_fd);
}
