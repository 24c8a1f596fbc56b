using System.Reflection;
using System.Runtime.InteropServices;

namespace Appliance.Server.Hosting;

/// <summary>
/// Where libsodium (NSec's Ed25519: the Roughtime server's signatures and the cold-start client's
/// checks) is found. `make publish` puts it beside the executable (out/bin/libsodium.so), which the
/// runtime probes by itself; installed, the executable is /usr/bin/appliance and the library
/// /usr/lib/appliance/libsodium.so (a library has no place in /usr/bin), which it would not probe.
/// Found by the cold-start image test: the image had no libsodium at all.
/// </summary>
public static class NativeLibraries
{
    public const string InstalledLibsodium = "/usr/lib/appliance/libsodium.so";

    private static int s_registered;

    /// <summary>Once, before anything signs or verifies (Program.Main).</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(NSec.Cryptography.Ed25519).Assembly, Resolve);
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (name != "libsodium" || File.Exists(Path.Combine(AppContext.BaseDirectory, "libsodium.so")))
        {
            return IntPtr.Zero; // the runtime's own probe: beside the executable, or the NuGet layout under dotnet
        }
        return NativeLibrary.TryLoad(InstalledLibsodium, out IntPtr handle) ? handle : IntPtr.Zero;
    }
}
