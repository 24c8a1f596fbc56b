using Appliance.Protocol.Client;
using Appliance.Sources;
using Microsoft.Extensions.Logging.Abstractions;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The gpsd JSON reader: the input is what gpsd sends, read as the driver reads it (its
/// <c>LineReader</c>, here with a 512-octet line limit so that overlong lines are reached too), each
/// line handed to one <see cref="GpsdSource"/> in turn, so TPV and SKY state carries into the TOFF and
/// PPS reports after them. Invariants: no exception; no line longer than the limit or holding its
/// newline; every measurement is after this build's date (the week-rollover correction) and its
/// system times bracket the reference time's delay window (T1 ≤ T4, T2 = T3).
/// </summary>
public static class GpsdTarget
{
    public const int MaxInput = 8192;

    private const int LineLimit = 512;

    public static void Run(ReadOnlySpan<byte> input)
    {
        using var source = new GpsdSource(new GpsdOptions { Host = "fuzz", SerialOffset = 0.05 }, NullLogger.Instance);
        using var stream = new MemoryStream(input.ToArray(), writable: false);
        var reader = new LineReader(stream, LineLimit);
        while (true)
        {
            ValueTask<(LineStatus Status, ReadOnlyMemory<byte> Line)> read = reader.ReadLineAsync(CancellationToken.None);
            // A MemoryStream answers at once: the read is complete when it returns.
            if (!read.IsCompleted)
            {
                throw new InvariantViolatedException("a line read from memory did not complete");
            }
            (LineStatus status, ReadOnlyMemory<byte> line) = read.Result;
            if (status == LineStatus.End)
            {
                return;
            }
            if (status == LineStatus.Overlong)
            {
                continue;
            }
            InvariantViolatedException.Check(line.Length < LineLimit && !line.Span.Contains((byte)'\n'), $"a line of {line.Length} octets");
            if (source.Handle(line) is { } m)
            {
                InvariantViolatedException.Check(m.T2 >= GpsdSource.EarliestPlausibleUnixSeconds * 1_000_000_000L,
                    $"a GPS time before this build: {m.T2}");
                InvariantViolatedException.Check(m.T1 <= m.T4 && m.T2 == m.T3, $"a measurement T1 {m.T1} T2 {m.T2} T3 {m.T3} T4 {m.T4}");
            }
        }
    }
}
