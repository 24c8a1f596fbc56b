using System.Net.Sockets;
using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>Turns an errno from a native socket call into the .NET exception callers already handle.</summary>
internal static class NativeErrors
{
    public static SocketException Socket(int errno, string call) => new NativeSocketException(errno switch
    {
        Errno.EADDRINUSE => SocketError.AddressAlreadyInUse,
        Errno.EADDRNOTAVAIL => SocketError.AddressNotAvailable,
        Errno.EACCES => SocketError.AccessDenied,
        Errno.EINVAL => SocketError.InvalidArgument,
        Errno.ENOBUFS or Errno.ENOMEM => SocketError.NoBufferSpaceAvailable,
        _ => SocketError.SocketError,
    }, $"{call}: {Marshal.GetPInvokeErrorMessage(errno)}");

    private sealed class NativeSocketException(SocketError error, string message) : SocketException((int)error)
    {
        public override string Message { get; } = message;
    }
}
