using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>
/// Waits until one of a worker's sockets has datagrams (epoll). Only used when a worker owns more
/// than one socket and all of them were empty: under load the worker never calls it, so the budget
/// of two system calls per batch holds.
/// </summary>
public sealed unsafe class Poller : IDisposable
{
    private readonly int _epfd;
    private readonly EpollEvent* _events;
    private readonly int _capacity;
    private bool _disposed;

    public Poller(IReadOnlyList<TimestampedSocket> sockets)
    {
        _epfd = Libc.EpollCreate1(Libc.EpollCloexec);
        if (_epfd < 0)
        {
            throw NativeErrors.Socket(Marshal.GetLastPInvokeError(), "epoll_create1");
        }
        _capacity = Math.Max(1, sockets.Count);
        _events = (EpollEvent*)NativeMemory.AllocZeroed((nuint)(_capacity * sizeof(EpollEvent)));
        for (int i = 0; i < sockets.Count; i++)
        {
            var ev = new EpollEvent { Events = Libc.EpollIn, Data = (ulong)i };
            if (Libc.EpollCtl(_epfd, Libc.EpollCtlAdd, sockets[i].Fd, &ev) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                Dispose();
                throw NativeErrors.Socket(errno, "epoll_ctl");
            }
        }
    }

    /// <summary>Blocks up to <paramref name="timeoutMilliseconds"/>; returns how many sockets are ready (0 on timeout).</summary>
    public int Wait(int timeoutMilliseconds)
    {
        int n = Libc.EpollWait(_epfd, _events, _capacity, timeoutMilliseconds);
        return n < 0 ? 0 : n;
    }

    /// <summary>After <see cref="Wait"/>: the index (in the constructor's list) of the i-th ready socket.</summary>
    public int Ready(int i) => (int)_events[i].Data;

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            Libc.Close(_epfd);
            NativeMemory.Free(_events);
        }
    }
}
