using System.Runtime.InteropServices;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>
/// Runs code on a thread that has entered a named network namespace (setns on /var/run/netns/NAME):
/// sockets it creates live in that namespace for good. Used by tests and the load generator to
/// reach addresses that exist only inside a namespace they created.
/// </summary>
public static class NetworkNamespaceThread
{
    public static T Run<T>(string namespaceName, Func<T> action)
    {
        T? result = default;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using SafeHandle ns = File.OpenHandle(Path.Combine("/var/run/netns", namespaceName));
                if (Libc.SetNs((int)ns.DangerousGetHandle(), Libc.CloneNewNet) != 0)
                {
                    throw new IOException($"setns into {namespaceName}: {Marshal.GetPInvokeErrorMessage(Marshal.GetLastPInvokeError())}");
                }
                result = action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            throw new InvalidOperationException($"in network namespace {namespaceName}: {failure.Message}", failure);
        }
        return result!;
    }
}
