namespace Appliance.LoadTest;

/// <summary>
/// A fixed-size uniform sample of a stream (Vitter's algorithm R), for percentiles without storing
/// every value or allocating per response.
/// </summary>
internal sealed class Reservoir(int capacity)
{
    private readonly double[] _values = new double[capacity];
    private readonly double[] _scratch = new double[capacity];
    private ulong _random = 0x9E3779B97F4A7C15UL;

    public long Seen { get; private set; }

    public int Count => (int)Math.Min(Seen, _values.Length);

    public void Add(double value)
    {
        Seen++;
        if (Seen <= _values.Length)
        {
            _values[Seen - 1] = value;
            return;
        }
        ulong slot = Next() % (ulong)Seen;
        if (slot < (ulong)_values.Length)
        {
            _values[slot] = value;
        }
    }

    public void Clear() => Seen = 0;

    /// <summary>The q-quantile (0..1) of the sample, or NaN when empty.</summary>
    public double Quantile(double q) => Quantiles([q])[0];

    public double[] Quantiles(ReadOnlySpan<double> qs)
    {
        int n = Count;
        var result = new double[qs.Length];
        if (n == 0)
        {
            Array.Fill(result, double.NaN);
            return result;
        }
        Array.Copy(_values, _scratch, n);
        Array.Sort(_scratch, 0, n);
        for (int i = 0; i < qs.Length; i++)
        {
            result[i] = _scratch[(int)Math.Min(n - 1, Math.Floor(qs[i] * n))];
        }
        return result;
    }

    private ulong Next()
    {
        _random ^= _random << 13;
        _random ^= _random >> 7;
        _random ^= _random << 17;
        return _random;
    }
}
