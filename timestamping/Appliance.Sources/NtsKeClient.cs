using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;

namespace Appliance.Sources;

/// <summary>What an NTS-KE server answered (RFC 8915 §4).</summary>
/// <param name="Error">The code of the server's Error record, if it sent one.</param>
public sealed record NtsKeResult(
    AeadAlgorithm? Aead,
    byte[] C2S,
    byte[] S2C,
    IReadOnlyList<byte[]> Cookies,
    string? Server,
    ushort? Port,
    NtsKeErrorCode? Error)
{
    /// <summary>How the exchange ended (<see cref="NtsKeClientSession"/>): why there are no keys, when there are none.</summary>
    public NtsKeClientReason Reason { get; init; }

    public bool Succeeded => Reason == NtsKeClientReason.Ok && Error is null && Aead is not null && Cookies.Count > 0;
}

/// <summary>What an NTS-KE client checks the server certificate's validity period against (issue #21, docs/deploying.md).</summary>
/// <param name="VerificationTime">The time the chain must be valid at: the appliance's clock, never below its floor while unsynchronised.</param>
/// <param name="IgnoreValidityPeriod">
/// Skip the validity-period check (clock.skip-certificate-dates, chrony's nocerttimecheck): the
/// chain must still lead to a trusted root and carry the name (revocation is never checked, as before).
/// </param>
public readonly record struct CertificateTime(DateTimeOffset VerificationTime, bool IgnoreValidityPeriod);

/// <summary>
/// The client side of NTS-KE over TLS 1.3 with ALPN ntske/1: <see cref="NtsKeClientSession"/> writes
/// the request and judges the response; this only moves octets and, when it succeeded, takes the
/// C2S/S2C keys from the TLS exporter (RFC 8915 §5.1).
/// </summary>
public static class NtsKeClient
{
    /// <param name="host">The name the certificate must carry (also sent as SNI).</param>
    /// <param name="trusted">Trust anchors; null means the system's.</param>
    /// <param name="time">What certificate dates are checked against; null: the system clock, as TLS does by default.</param>
    public static async Task<NtsKeResult> ExchangeAsync(IPEndPoint server, string host, X509Certificate2Collection? trusted,
        IReadOnlyList<AeadAlgorithm> aeads, CancellationToken cancellationToken, bool offerAlpn = true, CertificateTime? time = null)
    {
        var session = new NtsKeClientSession([.. aeads]);
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server, cancellationToken);
        await using var stream = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = offerAlpn ? [new SslApplicationProtocol("ntske/1")] : null,
        };
        if (trusted is not null || time is not null)
        {
            options.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = trusted is null ? X509ChainTrustMode.System : X509ChainTrustMode.CustomRootTrust,
                // As SslStream's own default (CertificateRevocationCheckMode), which a policy replaces.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            if (trusted is not null)
            {
                options.CertificateChainPolicy.CustomTrustStore.AddRange(trusted);
            }
            if (time is { } t)
            {
                options.CertificateChainPolicy.VerificationTime = t.VerificationTime.UtcDateTime;
                if (t.IgnoreValidityPeriod)
                {
                    options.CertificateChainPolicy.VerificationFlags = X509VerificationFlags.IgnoreNotTimeValid
                        | X509VerificationFlags.IgnoreCtlNotTimeValid | X509VerificationFlags.IgnoreNotTimeNested;
                }
            }
        }
        await stream.AuthenticateAsClientAsync(options, cancellationToken);

        var request = new byte[session.RequestLength];
        await stream.WriteAsync(request.AsMemory(0, session.WriteRequest(request)), cancellationToken);
        var buffer = new byte[4096];
        NtsKeClientStep step = session.Step;
        while (step == NtsKeClientStep.NeedBytes)
        {
            int read = await stream.ReadAsync(buffer, cancellationToken);
            step = read == 0 ? session.Close() : session.Receive(buffer.AsSpan(0, read));
        }
        byte[] c2s = [], s2c = [];
        if (step == NtsKeClientStep.Done && session.Aead is { } aead)
        {
            int length = AeadAlgorithms.KeyLength(aead);
            c2s = new byte[length];
            s2c = new byte[length];
            NtsKeExporter.ExportKeys(stream, session.ExporterAead!.Value, c2s, s2c);
        }
        return new NtsKeResult(session.Aead, c2s, s2c, session.Cookies, session.Server, session.Port, session.ServerError) { Reason = session.Reason };
    }
}

/// <summary>The NTS keys of a TLS connection, for either end (RFC 8915 §5.1).</summary>
public static class NtsKeExporter
{
    /// <summary>
    /// C2S and S2C, exporter label and context as RFC 8915 §5.1 gives them, the context carrying
    /// <paramref name="aead"/> (the session's ExporterAead: for AES-128-GCM-SIV it may be 15); the
    /// spans' length is the agreed AEAD's key length.
    /// </summary>
    public static void ExportKeys(SslStream stream, AeadAlgorithm aead, Span<byte> c2s, Span<byte> s2c)
    {
        Span<byte> context = stackalloc byte[NtsKeRecords.ExporterContextLength];
        NtsKeRecords.WriteExporterContext(context, aead, serverToClient: false);
        TlsKeyExporter.Export(stream, NtsKeRecords.ExporterLabel, context, c2s);
        NtsKeRecords.WriteExporterContext(context, aead, serverToClient: true);
        TlsKeyExporter.Export(stream, NtsKeRecords.ExporterLabel, context, s2c);
    }
}
