using System.Net.Security;
using System.Reflection;
using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>
/// The TLS 1.3 exporter (RFC 8446 §7.5) for an <see cref="SslStream"/>, which .NET does not expose
/// (dotnet/runtime#112529). On Linux SslStream keeps OpenSSL's SSL* in a private field; one call of
/// SSL_export_keying_material on it gives the keys (route 1 of ../shared/NOTES-dotnet.md). That
/// reaches into a private field, so it is fragile by nature: the NTS-KE server runs
/// <see cref="SelfTest"/>-style checks at start-up and refuses to serve if the two ends disagree.
/// </summary>
public static unsafe class TlsKeyExporter
{
    private static readonly FieldInfo? s_securityContext =
        typeof(SslStream).GetField("_securityContext", BindingFlags.Instance | BindingFlags.NonPublic);

    /// <summary>True when this runtime has the field the exporter needs.</summary>
    public static bool IsAvailable => s_securityContext is not null;

    /// <summary>
    /// Fills <paramref name="output"/> with the exporter value for <paramref name="label"/> and
    /// <paramref name="context"/>. Throws <see cref="InvalidOperationException"/> when it cannot.
    /// </summary>
    public static void Export(SslStream stream, ReadOnlySpan<byte> label, ReadOnlySpan<byte> context, Span<byte> output)
    {
        if (s_securityContext?.GetValue(stream) is not SafeHandle handle || handle.IsInvalid)
        {
            throw new InvalidOperationException("the TLS exporter is not reachable on this runtime (SslStream._securityContext is missing)");
        }
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            fixed (byte* o = output)
            fixed (byte* l = label)
            fixed (byte* c = context)
            {
                if (Libssl.ExportKeyingMaterial(handle.DangerousGetHandle(), o, (nuint)output.Length, l, (nuint)label.Length, c, (nuint)context.Length, 1) != 1)
                {
                    throw new InvalidOperationException("SSL_export_keying_material failed");
                }
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
