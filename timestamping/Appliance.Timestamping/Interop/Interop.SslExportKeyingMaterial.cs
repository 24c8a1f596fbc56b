using System.Runtime.InteropServices;

namespace Appliance.Timestamping.Interop;

internal static unsafe partial class Libssl
{
    /// <summary>
    /// SSL_export_keying_material(3) from OpenSSL 3 (the library SslStream uses on Linux):
    /// the TLS exporter of RFC 8446 §7.5 that NTS-KE derives its keys from.
    /// </summary>
    [LibraryImport("libssl.so.3", EntryPoint = "SSL_export_keying_material")]
    internal static partial int ExportKeyingMaterial(nint ssl, byte* output, nuint outputLength, byte* label, nuint labelLength,
        byte* context, nuint contextLength, int useContext);
}
