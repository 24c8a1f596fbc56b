using System.Security.Cryptography;
using Appliance.Protocol.Nts;

namespace Appliance.Engine;

/// <summary>
/// A per-worker buffer of operating-system randomness, refilled 4 KiB at a time: nonces and cookie
/// nonces cost a copy, not a system call (chrony 4.3 NEWS: no OS randomness per packet).
/// </summary>
public sealed class CsprngBuffer : IRandomSource
{
    private readonly byte[] _buffer = new byte[4096];
    private int _next = 4096;

    public void Fill(Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            if (_next == _buffer.Length)
            {
                RandomNumberGenerator.Fill(_buffer);
                _next = 0;
            }
            int n = Math.Min(destination.Length, _buffer.Length - _next);
            _buffer.AsSpan(_next, n).CopyTo(destination);
            // Used bytes are wiped: nothing in memory can replay a nonce later.
            _buffer.AsSpan(_next, n).Clear();
            _next += n;
            destination = destination[n..];
        }
    }
}
