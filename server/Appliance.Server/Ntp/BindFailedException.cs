using System.Net;

namespace Appliance.Server.Ntp;

/// <summary>A start-up failure the operator can fix; `serve` prints its message as one line and exits 2.</summary>
public class StartupFailedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>A listen address that could not be bound, with the operator-facing reason.</summary>
public sealed class BindFailedException(string what, IPEndPoint endPoint, string reason, Exception inner)
    : StartupFailedException($"cannot bind {what} {endPoint}: {reason}", inner)
{
    public IPEndPoint EndPoint { get; } = endPoint;
}
