using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Appliance.Protocol.Roughtime;
using Appliance.Timestamping;

namespace Appliance.Sources;

/// <summary>A Roughtime server the bootstrap asks: where, and the long-term public key its answers must be signed under.</summary>
public sealed record RoughtimeTarget(string Name, string Host, int Port, byte[] PublicKey);

/// <summary>What one server answered: a verified sample, or why there is none.</summary>
public readonly record struct RoughtimeOutcome(RoughtimeTarget Server, RoughtimeSample? Sample, string? Problem);

/// <summary>
/// The cold-start bootstrap's client (issue #21, RFC 10049 §5): asks each configured server over UDP
/// with a fresh random nonce, verifies every answer with <see cref="RoughtimeClient"/> (framing,
/// nonce, version, the delegation's and the response's Ed25519 signatures, MIDP within the
/// delegation, the Merkle path), and turns the verified ones into the interval "now" lay in
/// (<see cref="RoughtimeSample"/>); the clock core's TimeBound.Agree then intersects them.
/// </summary>
public static class RoughtimeBootstrap
{
    private static readonly uint[] s_versions = [RoughtimeVersion.Rfc, RoughtimeVersion.Draft];

    /// <summary>MIDP and RADI this appliance can represent (Unix nanoseconds in a long run to 2262): up to 2200, radius under a day.</summary>
    private const ulong MaxMidpointSeconds = 7_258_118_400;

    private static bool Plausible(RoughtimeReading reading) => reading.Midpoint <= MaxMidpointSeconds && reading.Radius <= 86_400;

    /// <summary>Asks every server at once; each gets <paramref name="attempts"/> tries of <paramref name="timeout"/> (UDP may lose one).</summary>
    public static async Task<IReadOnlyList<RoughtimeOutcome>> AskAllAsync(IReadOnlyList<RoughtimeTarget> servers, TimeSpan timeout, int attempts,
        CancellationToken cancellationToken)
    {
        return await Task.WhenAll(servers.Select(s => AskAsync(s, timeout, attempts, cancellationToken))).ConfigureAwait(false);
    }

    public static async Task<RoughtimeOutcome> AskAsync(RoughtimeTarget server, TimeSpan timeout, int attempts, CancellationToken cancellationToken)
    {
        IPEndPoint endPoint;
        try
        {
            endPoint = await UpstreamSource.ResolveAsync(server.Host, server.Port, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            return new RoughtimeOutcome(server, null, $"cannot resolve {server.Host}: {e.Message}");
        }
        string problem = "no answer";
        for (int attempt = 0; attempt < attempts; attempt++)
        {
            byte[] nonce = RandomNumberGenerator.GetBytes(32);
            var request = new byte[RoughtimeClient.RequestPacketLength];
            RoughtimeClient.WriteRequest(request, nonce, server.PublicKey, s_versions);
            using var client = new UdpClient(endPoint.AddressFamily);
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            wait.CancelAfter(timeout);
            string? rejected = null;
            try
            {
                client.Connect(endPoint);
                long sent = SystemClock.MonotonicNanoseconds();
                await client.SendAsync(request, wait.Token).ConfigureAwait(false);
                while (true)
                {
                    UdpReceiveResult answer = await client.ReceiveAsync(wait.Token).ConfigureAwait(false);
                    long received = SystemClock.MonotonicNanoseconds();
                    RoughtimeRejection rejection = RoughtimeClient.Verify(request, answer.Buffer, server.PublicKey, out RoughtimeReading reading);
                    if (rejection == RoughtimeRejection.None && Plausible(reading))
                    {
                        return new RoughtimeOutcome(server, RoughtimeSample.FromReading(server.Name, reading.Midpoint, reading.Radius, sent, received), null);
                    }
                    // A datagram that fails a check may be anyone's (a spoofed one ahead of the real
                    // answer): keep listening until the timeout, and say why if nothing better comes.
                    rejected = rejection == RoughtimeRejection.None
                        ? $"answer rejected: MIDP {reading.Midpoint} ± {reading.Radius} s is no time this appliance can be at"
                        : $"answer rejected: {rejection} (RFC 10049 §5.4); check its public key";
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // RFC 10049 §5.2: a server ignores a request whose SRV names a key it does not hold.
                problem = rejected ?? $"no answer within {timeout.TotalSeconds:0.#} s, {attempts} tries (a server does not answer for a key it does not hold: check the public key too)";
            }
            catch (SocketException e)
            {
                problem = e.Message;
            }
        }
        return new RoughtimeOutcome(server, null, problem);
    }
}
