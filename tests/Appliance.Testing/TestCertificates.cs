using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Appliance.Testing;

/// <summary>A self-signed P-256 certificate and key as PEM files, readable by chronyd's _chrony user.</summary>
public sealed record TestCertificate(string Directory, string CertificatePath, string KeyPath, X509Certificate2 Certificate)
{
    /// <summary>Makes one for <paramref name="names"/> (DNS names; IP literals become IP SANs) in a fresh 0755 directory.</summary>
    public static TestCertificate Create(params string[] names) => CreateValidFor(TimeSpan.FromDays(30), names);

    /// <summary>A certificate valid from a day ago until <paramref name="validFor"/> from now.</summary>
    public static TestCertificate CreateValidFor(TimeSpan validFor, params string[] names) =>
        CreateValidBetween(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow + validFor, names);

    /// <summary>A certificate valid from <paramref name="notBefore"/> to <paramref name="notAfter"/> (one not yet valid, or expired).</summary>
    public static TestCertificate CreateValidBetween(DateTimeOffset notBefore, DateTimeOffset notAfter, params string[] names)
    {
        string directory = System.IO.Directory.CreateTempSubdirectory("appliance-cert").FullName;
        File.SetUnixFileMode(directory, (UnixFileMode)0b111_101_101);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (string name in names)
        {
            if (IPAddress.TryParse(name, out IPAddress? ip))
            {
                san.AddIpAddress(ip);
            }
            else
            {
                san.AddDnsName(name);
            }
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        X509Certificate2 certificate = request.CreateSelfSigned(notBefore, notAfter);
        string certificatePath = Path.Combine(directory, "server.crt");
        string keyPath = Path.Combine(directory, "server.key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        File.SetUnixFileMode(certificatePath, (UnixFileMode)0b110_100_100);
        File.SetUnixFileMode(keyPath, (UnixFileMode)0b110_100_100);
        return new TestCertificate(directory, certificatePath, keyPath, X509CertificateLoader.LoadCertificate(certificate.RawData));
    }

    public X509Certificate2Collection Trust => [Certificate];
}
