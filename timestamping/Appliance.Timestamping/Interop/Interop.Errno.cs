namespace Appliance.Timestamping.Interop;

/// <summary>errno values used here (x86-64 Linux, asm-generic/errno-base.h and errno.h).</summary>
internal static class Errno
{
    public const int EPERM = 1;
    public const int ESRCH = 3;
    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int ENOMEM = 12;
    public const int EACCES = 13;
    public const int EINVAL = 22;
    public const int ENOBUFS = 105;
    public const int EADDRINUSE = 98;
    public const int EADDRNOTAVAIL = 99;
    public const int ECONNREFUSED = 111;
}
