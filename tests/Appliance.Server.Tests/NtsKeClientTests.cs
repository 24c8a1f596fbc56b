using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Sources;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>
/// <see cref="NtsKeClient"/>, the TLS shell around <see cref="NtsKeClientSession"/>, against scripted
/// TLS servers on loopback: what a refusing or broken server gives the caller.
/// </summary>
public class NtsKeClientTests
{
    /// <summary>One TLS 1.3 (ALPN ntske/1) connection on loopback: reads the request, answers <paramref name="answer"/>, closes.</summary>
    private static async Task<NtsKeResult> AgainstScriptedServer(byte[] answer, TestCertificate? served = null, CertificateTime? time = null,
        string name = "ntp.test", X509Certificate2Collection? trust = null)
    {
        TestCertificate certificate = served ?? TestCertificate.Create("ntp.test", "127.0.0.1");
        using X509Certificate2 serverCertificate = X509Certificate2.CreateFromPemFile(certificate.CertificatePath, certificate.KeyPath);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        Task server = Task.Run(async () =>
        {
            using Socket accepted = await listener.AcceptAsync(timeout.Token);
            await using var tls = new SslStream(new NetworkStream(accepted, ownsSocket: false));
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = serverCertificate,
                EnabledSslProtocols = SslProtocols.Tls13,
                ApplicationProtocols = [new SslApplicationProtocol("ntske/1")],
            }, timeout.Token);
            var request = new byte[16]; // Next Protocol (6), AEAD 15 (6), End of Message (4)
            await tls.ReadExactlyAsync(request, timeout.Token);
            await tls.WriteAsync(answer, timeout.Token);
            await tls.ShutdownAsync();
        }, timeout.Token);
        NtsKeResult result;
        try
        {
            result = await NtsKeClient.ExchangeAsync((IPEndPoint)listener.LocalEndPoint!, name, trust ?? certificate.Trust,
                [AeadAlgorithm.AesSivCmac256], timeout.Token, time: time);
        }
        catch (AuthenticationException)
        {
            // The client refused the certificate, so the server's handshake failed too: not a second failure.
            await Task.WhenAny(server);
            throw;
        }
        await server;
        return result;
    }

    private static byte[] Answer(params (NtsKeRecordType Type, byte[] Body)[] records)
    {
        var answer = new byte[records.Sum(r => NtsKeRecords.HeaderLength + r.Body.Length)];
        int n = 0;
        foreach ((NtsKeRecordType type, byte[] body) in records)
        {
            n += NtsKeRecords.Write(answer.AsSpan(n), true, type, body);
        }
        return answer;
    }

    private static readonly byte[] s_ntpV4 = [0, 0];
    private static readonly byte[] s_aead15 = [0, 15];

    private static byte[] Accepting() => Answer((NtsKeRecordType.NextProtocol, s_ntpV4), (NtsKeRecordType.AeadAlgorithm, s_aead15),
        (NtsKeRecordType.NewCookie, new byte[64]), (NtsKeRecordType.EndOfMessage, []));

    /// <summary>A certificate that becomes valid tomorrow: what a clock two years behind sees in every real one (issue #21).</summary>
    private static TestCertificate FromTomorrow() =>
        TestCertificate.CreateValidBetween(DateTimeOffset.UtcNow.AddDays(1), DateTimeOffset.UtcNow.AddDays(31), "ntp.test", "127.0.0.1");

    [Fact]
    public async Task ACertificateNotYetValid_IsRefused_AgainstTheSystemClock()
    {
        await Assert.ThrowsAsync<AuthenticationException>(() => AgainstScriptedServer(Accepting(), FromTomorrow()));
    }

    [Fact]
    public async Task TheVerificationTime_IsWhatTheDatesAreCheckedAgainst()
    {
        TestCertificate certificate = FromTomorrow();
        NtsKeResult ok = await AgainstScriptedServer(Accepting(), certificate, new CertificateTime(DateTimeOffset.UtcNow.AddDays(2), false));
        Assert.True(ok.Succeeded, ok.Reason.ToString());
        // ... both ways: a time after its expiry refuses it.
        await Assert.ThrowsAsync<AuthenticationException>(() =>
            AgainstScriptedServer(Accepting(), certificate, new CertificateTime(DateTimeOffset.UtcNow.AddDays(40), false)));
    }

    [Fact]
    public async Task SkippingTheDates_AcceptsOneOutOfItsPeriod_ButNeverAWrongNameOrAnUntrustedChain()
    {
        var skip = new CertificateTime(DateTimeOffset.UtcNow, IgnoreValidityPeriod: true);
        Assert.True((await AgainstScriptedServer(Accepting(), FromTomorrow(), skip)).Succeeded);
        TestCertificate expired = TestCertificate.CreateValidBetween(DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-1), "ntp.test");
        Assert.True((await AgainstScriptedServer(Accepting(), expired, skip)).Succeeded);

        await Assert.ThrowsAsync<AuthenticationException>(() => AgainstScriptedServer(Accepting(), FromTomorrow(), skip, name: "other.test"));
        TestCertificate stranger = TestCertificate.Create("ntp.test");
        await Assert.ThrowsAsync<AuthenticationException>(() => AgainstScriptedServer(Accepting(), FromTomorrow(), skip, trust: stranger.Trust));
    }

    [Fact]
    public async Task ServerErrorRecord_IsAFailedResult_WithItsCode_AndNoKeys()
    {
        NtsKeResult result = await AgainstScriptedServer(Answer((NtsKeRecordType.Error, [0, (byte)NtsKeErrorCode.InternalServerError]), (NtsKeRecordType.EndOfMessage, [])));
        Assert.False(result.Succeeded);
        Assert.Equal(NtsKeClientReason.ServerError, result.Reason);
        Assert.Equal(NtsKeErrorCode.InternalServerError, result.Error);
        Assert.Empty(result.C2S);
        Assert.Empty(result.S2C);
    }

    [Fact]
    public async Task ServerClosingBeforeEndOfMessage_IsAFailedResult_NotAnException()
    {
        NtsKeResult result = await AgainstScriptedServer(Answer((NtsKeRecordType.NextProtocol, s_ntpV4), (NtsKeRecordType.AeadAlgorithm, s_aead15)));
        Assert.False(result.Succeeded);
        Assert.Equal(NtsKeClientReason.ClosedBeforeEndOfMessage, result.Reason);
        Assert.Null(result.Error);
        Assert.Empty(result.C2S);
    }

    [Fact]
    public async Task ServerWithoutCookies_IsAFailedResult_NoCookies()
    {
        NtsKeResult result = await AgainstScriptedServer(Answer((NtsKeRecordType.NextProtocol, s_ntpV4), (NtsKeRecordType.AeadAlgorithm, s_aead15), (NtsKeRecordType.EndOfMessage, [])));
        Assert.False(result.Succeeded);
        Assert.Equal(NtsKeClientReason.NoCookies, result.Reason);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, result.Aead);
        Assert.Empty(result.C2S);
    }
}

/// <summary><see cref="NtsKeClient"/> against an NTS-KE server nobody here wrote: chronyd 4.3's.</summary>
[Collection(RealPeers.Name)]
public class NtsKeClientChronydTests
{
    [Fact]
    public async Task Chronyd_GivesAead15_EightCookies_ItsServerAndPortRecords_AndKeys()
    {
        TestCertificate certificate = TestCertificate.Create("ntp.test", "127.0.0.1");
        await using ChronyServer chrony = await ChronyServer.StartAsync(certificate);
        var ke = new IPEndPoint(IPAddress.Loopback, chrony.NtsKePort!.Value);
        NtsKeResult result = null!;
        for (int attempt = 0; attempt < 50; attempt++)
        {
            try
            {
                result = await NtsKeClient.ExchangeAsync(ke, "ntp.test", certificate.Trust, [AeadAlgorithm.AesSivCmac256],
                    new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
                break;
            }
            catch (SocketException) when (attempt < 49)
            {
                await Task.Delay(100); // chronyd's NTS-KE helper is not listening yet
            }
        }
        Assert.True(result.Succeeded, $"{result.Reason} {result.Error}");
        Assert.Equal(NtsKeClientReason.Ok, result.Reason);
        Assert.Equal(AeadAlgorithm.AesSivCmac256, result.Aead);
        Assert.Equal(8, result.Cookies.Count);
        Assert.Equal("127.0.0.1", result.Server); // ntsntpserver 127.0.0.1
        Assert.Equal((ushort)chrony.Port, result.Port);
        Assert.Equal(32, result.C2S.Length);
        Assert.Equal(32, result.S2C.Length);
        Assert.NotEqual(result.C2S, result.S2C);
    }
}
