using System.Net.Security;
using Appliance.Server.Nts;
using Appliance.Testing;

namespace Appliance.Server.Tests;

/// <summary>
/// The NTS-KE certificate reload (security review, issue #14): it runs on a timer and on SIGHUP, where
/// an exception would end the process, so whatever the new files do it keeps the certificate in
/// service, logs why, and counts the failure.
/// </summary>
public class CertificateStoreTests
{
    /// <summary>Ways renewed files fail to load. Root reads any file, so "unreadable" is a path that cannot be read as a file.</summary>
    public static TheoryData<string, string> BrokenRenewals => new()
    {
        { "key unreadable", "UnauthorizedAccessException" },
        { "key missing", "FileNotFoundException" },
        { "key of another certificate", "ArgumentException: The provided key does not match the public key" },
        { "certificate empty", "CryptographicException" },
    };

    [Theory]
    [MemberData(nameof(BrokenRenewals))]
    public void Reload_NewFilesDoNotLoad_KeepsTheCertificateInService_LogsWhy_AndCounts(string broken, string exception)
    {
        TestCertificate certificate = TestCertificate.Create("ntp.test");
        using var logs = new CapturedLogs();
        using var store = new CertificateStore(certificate.CertificatePath, certificate.KeyPath, logs.CreateLogger("nts"), watch: false);
        SslStreamCertificateContext before = store.Current;
        switch (broken)
        {
            case "key unreadable":
                File.Delete(certificate.KeyPath);
                Directory.CreateDirectory(certificate.KeyPath);
                break;
            case "key missing":
                File.Delete(certificate.KeyPath);
                break;
            case "key of another certificate":
                File.Copy(TestCertificate.Create("other.test").KeyPath, certificate.KeyPath, overwrite: true);
                break;
            default:
                File.WriteAllText(certificate.CertificatePath, "");
                break;
        }

        Assert.False(store.Reload("test"));
        Assert.Same(before, store.Current);
        Assert.Equal((0, 1), (store.Reloads, store.ReloadFailures));
        string line = Assert.Single(logs.Lines);
        Assert.StartsWith("Error: NTS-KE certificate reload (test) failed, keeping the one in service (CN=ntp.test", line, StringComparison.Ordinal);
        Assert.True(line.Contains(exception, StringComparison.Ordinal), line);
    }

    [Fact]
    public void Reload_AfterAFailure_TakesTheFilesOnceTheyAreRight()
    {
        TestCertificate certificate = TestCertificate.Create("ntp.test");
        using var logs = new CapturedLogs();
        using var store = new CertificateStore(certificate.CertificatePath, certificate.KeyPath, logs.CreateLogger("nts"), watch: false);
        File.Delete(certificate.KeyPath);
        Directory.CreateDirectory(certificate.KeyPath);
        Assert.False(store.Reload("test"));

        Directory.Delete(certificate.KeyPath);
        TestCertificate renewed = TestCertificate.Create("ntp.test");
        File.Copy(renewed.KeyPath, certificate.KeyPath);
        File.Copy(renewed.CertificatePath, certificate.CertificatePath, overwrite: true);
        Assert.True(store.Reload("test"));
        Assert.Equal(renewed.Certificate.Thumbprint, store.Current.TargetCertificate.Thumbprint);
        Assert.Equal((1, 1), (store.Reloads, store.ReloadFailures));
    }

    /// <summary>NotAfter (appliance_ntske_certificate_remaining_seconds) is the certificate in service: a reload moves it, a failed one does not.</summary>
    [Fact]
    public void NotAfter_IsTheCertificateInService_AReloadMovesIt()
    {
        TestCertificate certificate = TestCertificate.CreateValidFor(TimeSpan.FromDays(30), "ntp.test");
        using var logs = new CapturedLogs();
        using var store = new CertificateStore(certificate.CertificatePath, certificate.KeyPath, logs.CreateLogger("nts"), watch: false);
        Assert.InRange(store.NotAfter, DateTimeOffset.UtcNow.AddDays(30).AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(30));

        TestCertificate renewed = TestCertificate.CreateValidFor(TimeSpan.FromDays(2), "ntp.test");
        File.Copy(renewed.KeyPath, certificate.KeyPath, overwrite: true);
        File.Copy(renewed.CertificatePath, certificate.CertificatePath, overwrite: true);
        Assert.True(store.Reload("test"));
        Assert.Equal(new DateTimeOffset(renewed.Certificate.NotAfter), store.NotAfter);
        Assert.InRange(store.NotAfter, DateTimeOffset.UtcNow.AddDays(2).AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(2));

        File.WriteAllText(certificate.CertificatePath, "not a certificate");
        Assert.False(store.Reload("test"));
        Assert.Equal(new DateTimeOffset(renewed.Certificate.NotAfter), store.NotAfter);
    }
}
