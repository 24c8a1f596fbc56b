using System.Globalization;

namespace Appliance.LoadTest;

/// <summary>CPU time and peak memory of a server process, read from /proc (for "CPU µs per response").</summary>
internal sealed class ProcessProbe(int pid)
{
    private static readonly double s_ticksPerSecond = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64

    public int Pid { get; } = pid;

    /// <summary>User + system CPU seconds used so far; NaN when the process is gone.</summary>
    public double CpuSeconds()
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{Pid}/stat");
            // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
            long stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
            return (utime + stime) / s_ticksPerSecond;
        }
        catch (IOException)
        {
            return double.NaN;
        }
    }

    /// <summary>Peak resident set (VmHWM) in bytes; NaN when unknown.</summary>
    public double PeakRssBytes()
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{Pid}/status"))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    return double.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        return double.NaN;
    }
}
