using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;

namespace Appliance.Sources;

/// <summary>What an NTS-KE server answered (RFC 8915 §4).</summary>
public sealed record NtsKeResult(
    AeadAlgorithm? Aead,
    byte[] C2S,
    byte[] S2C,
    IReadOnlyList<byte[]> Cookies,
    string? Server,
    ushort? Port,
    NtsKeErrorCode? Error)
{
    public bool Succeeded => Error is null && Aead is not null && Cookies.Count > 0;
}

/// <summary>
/// The client side of NTS-KE: TLS 1.3 with ALPN ntske/1, one request (NTPv4, the AEADs offered),
/// the server's records, and the C2S/S2C keys from the TLS exporter (RFC 8915 §5.1).
/// </summary>
public static class NtsKeClient
{
    private static readonly byte[] s_label = "EXPORTER-network-time-security"u8.ToArray();

    /// <param name="host">The name the certificate must carry (also sent as SNI).</param>
    /// <param name="trusted">Trust anchors; null means the system's.</param>
    public static async Task<NtsKeResult> ExchangeAsync(IPEndPoint server, string host, X509Certificate2Collection? trusted,
        IReadOnlyList<AeadAlgorithm> aeads, CancellationToken cancellationToken, bool offerAlpn = true)
    {
        using var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(server, cancellationToken);
        await using var stream = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = host,
            EnabledSslProtocols = SslProtocols.Tls13,
            ApplicationProtocols = offerAlpn ? [new SslApplicationProtocol("ntske/1")] : null,
        };
        if (trusted is not null)
        {
            options.CertificateChainPolicy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            options.CertificateChainPolicy.CustomTrustStore.AddRange(trusted);
        }
        await stream.AuthenticateAsClientAsync(options, cancellationToken);

        var request = new byte[64];
        int n = NtsKeRecords.WriteUInt16(request, true, NtsKeRecordType.NextProtocol, NtsKeRecords.NtpV4);
        var aeadBody = new byte[aeads.Count * 2];
        for (int i = 0; i < aeads.Count; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(aeadBody.AsSpan(i * 2), (ushort)aeads[i]);
        }
        n += NtsKeRecords.Write(request.AsSpan(n), true, NtsKeRecordType.AeadAlgorithm, aeadBody);
        n += NtsKeRecords.Write(request.AsSpan(n), true, NtsKeRecordType.EndOfMessage, []);
        await stream.WriteAsync(request.AsMemory(0, n), cancellationToken);

        using var response = new MemoryStream();
        var buffer = new byte[4096];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            response.Write(buffer, 0, read);
            if (response.Length > 65536)
            {
                throw new InvalidDataException("NTS-KE response larger than 64 KiB");
            }
        }
        return Parse(stream, response.ToArray());
    }

    private static NtsKeResult Parse(SslStream stream, byte[] response)
    {
        AeadAlgorithm? aead = null;
        var cookies = new List<byte[]>();
        string? server = null;
        ushort? port = null;
        NtsKeErrorCode? error = null;
        bool ntpV4 = false;
        int offset = 0;
        while (NtsKeRecords.TryRead(response.AsSpan(offset), out NtsKeRecord record, out int consumed))
        {
            offset += consumed;
            switch ((NtsKeRecordType)record.Type)
            {
                case NtsKeRecordType.NextProtocol:
                    ntpV4 = record.Body.Length >= 2 && BinaryPrimitives.ReadUInt16BigEndian(record.Body) == NtsKeRecords.NtpV4;
                    break;
                case NtsKeRecordType.AeadAlgorithm when record.Body.Length >= 2:
                    aead = (AeadAlgorithm)BinaryPrimitives.ReadUInt16BigEndian(record.Body);
                    break;
                case NtsKeRecordType.NewCookie:
                    cookies.Add(record.Body.ToArray());
                    break;
                case NtsKeRecordType.Server:
                    server = Encoding.ASCII.GetString(record.Body);
                    break;
                case NtsKeRecordType.Port when record.Body.Length == 2:
                    port = BinaryPrimitives.ReadUInt16BigEndian(record.Body);
                    break;
                case NtsKeRecordType.Error when record.Body.Length == 2:
                    error = (NtsKeErrorCode)BinaryPrimitives.ReadUInt16BigEndian(record.Body);
                    break;
            }
        }
        if (error is null && (!ntpV4 || aead is null || !AeadAlgorithms.IsSupported((ushort)aead)))
        {
            return new NtsKeResult(aead, [], [], cookies, server, port, NtsKeErrorCode.BadRequest);
        }
        byte[] c2s = [], s2c = [];
        if (aead is { } chosen && error is null)
        {
            int length = AeadAlgorithms.KeyLength(chosen);
            c2s = new byte[length];
            s2c = new byte[length];
            Span<byte> context = [0, 0, (byte)((ushort)chosen >> 8), (byte)chosen, 0];
            TlsKeyExporter.Export(stream, s_label, context, c2s);
            context[4] = 1;
            TlsKeyExporter.Export(stream, s_label, context, s2c);
        }
        return new NtsKeResult(aead, c2s, s2c, cookies, server, port, error);
    }
}
