using Appliance.Timestamping;
using Appliance.Timestamping.Interop;

namespace Appliance.Testing;

/// <summary>
/// A simulated clock_adjtime for kernel-mode tests: records every call and answers TIME_OK (or fails
/// with <see cref="Errno"/>). The machine's clock is never steered by a test.
/// </summary>
public sealed class SimulatedKernel
{
    private readonly List<Timex> _calls = [];

    public int Errno { get; set; }

    public IReadOnlyList<Timex> Calls
    {
        get
        {
            lock (_calls)
            {
                return [.. _calls];
            }
        }
    }

    public KernelClock Clock => new(Adjtime);

    public int Adjtime(ref Timex timex)
    {
        lock (_calls)
        {
            _calls.Add(timex);
        }
        return Errno != 0 ? -Errno : 0;
    }
}
