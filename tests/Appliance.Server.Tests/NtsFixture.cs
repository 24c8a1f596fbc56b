using System.Net;
using System.Net.Sockets;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Tests;

/// <summary>An appliance with NTS on loopback: certificate, key storage and ephemeral ports of its own.</summary>
internal sealed class NtsServerFixture
{
    /// <param name="extraClock">More keys of the clock section, e.g. <c>", leap-seconds: PATH"</c>.</param>
    /// <param name="extraYaml">More top-level sections, e.g. a <c>sources:</c> list.</param>
    public NtsServerFixture(string extraNtsKe = "", string extraNtp = "", string extraClock = "", string extraYaml = "")
    {
        Certificate = TestCertificate.Create("ntp.test", "127.0.0.1");
        NtpPort = Ports.FreeUdpPort();
        KePort = Ports.FreeTcpPort();
        KeyFile = Path.Combine(Certificate.Directory, "keys", "nts-keys.json");
        Yaml = $"""
            ntp: {"{"} listen: ["127.0.0.1:{NtpPort}"], workers: 1{(extraNtp.Contains("rate-limit", StringComparison.Ordinal) ? "" : ", rate-limit: off")} {extraNtp} {"}"}
            nts-ke:
              listen: ["127.0.0.1:{KePort}"]
              certificate: {Certificate.CertificatePath}
              private-key: {Certificate.KeyPath}
              keys: {"{"} storage: {KeyFile} {"}"}
            {extraNtsKe}
            clock: {"{"} mode: software, local: {"{"} stratum: 3 {"}"}{extraClock} {"}"}
            metrics: {"{"} listen: "127.0.0.1:0" {"}"}
            {extraYaml}
            """;
    }

    public TestCertificate Certificate { get; }
    public int NtpPort { get; }
    public int KePort { get; }
    public string KeyFile { get; }
    public string Yaml { get; }

    public IPEndPoint Ke => new(IPAddress.Loopback, KePort);
    public IPEndPoint Ntp => new(IPAddress.Loopback, NtpPort);

    public async Task<ApplianceServer> StartAsync()
    {
        ConfigResult result = ConfigLoader.Parse(Yaml);
        Assert.True(result.IsValid, string.Join("\n", result.Errors));
        return await ApplianceServer.StartAsync(result.Config!, l => l.ClearProviders());
    }

    public Task<NtsKeResult> KeAsync(params AeadAlgorithm[] aeads) =>
        NtsKeClient.ExchangeAsync(Ke, "ntp.test", Certificate.Trust, aeads.Length == 0 ? [AeadAlgorithm.AesSivCmac256] : aeads,
            new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);

    /// <summary>One authenticated NTP exchange with a cookie from <paramref name="ke"/>.</summary>
    public async Task<(NtsResponseCheck Check, int Cookies, byte[]? Response)> QueryAsync(NtsKeResult ke, byte[] cookie, int placeholders = 0)
    {
        var uid = new byte[32];
        Random.Shared.NextBytes(uid);
        var packet = new byte[2048];
        int n = NtsClientPacket.WriteRequest(packet, 0x0102030405060708, uid, cookie, placeholders, new byte[16], AeadAlgorithms.Create(ke.Aead!.Value, ke.C2S));
        byte[]? response = await NtpQuery.ExchangeAsync(Ntp, packet[..n], TimeSpan.FromSeconds(3));
        if (response is null)
        {
            return (NtsResponseCheck.Invalid, 0, null);
        }
        NtsResponseCheck check = NtsClientPacket.CheckResponse(response, uid, AeadAlgorithms.Create(ke.Aead!.Value, ke.S2C), new byte[2048], out int cookies);
        return (check, cookies, response);
    }
}
