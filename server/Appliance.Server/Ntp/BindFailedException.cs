using System.Net;

namespace Appliance.Server.Ntp;

/// <summary>A listen address that could not be bound, with the operator-facing reason (one line).</summary>
public sealed class BindFailedException(string what, IPEndPoint endPoint, string reason, Exception inner)
    : Exception($"cannot bind {what} {endPoint}: {reason}", inner)
{
    public IPEndPoint EndPoint { get; } = endPoint;
}
