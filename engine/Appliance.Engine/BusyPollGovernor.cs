using System.Numerics;
using System.Runtime.CompilerServices;

namespace Appliance.Engine;

/// <summary>
/// Decides how long a worker keeps polling its empty sockets before it sleeps, from what the worker
/// observes, so that it busy-polls only while that promises less CPU per datagram than sleeping.
/// </summary>
/// <remarks>
/// <para>
/// Each time the worker finds its sockets empty an idle period begins. It ends when the next datagram
/// arrives, a gap g later: the kernel's receive timestamp minus the moment the sockets were found
/// empty, known exactly whether the worker polled or slept (g ≤ 0: one was already queued). A window
/// w costs min(g, w) of polling, and when g ≥ w a sleep as well. What a sleep costs the thread is
/// its blocking receive less one that finds a datagram queued: the switch out and back in, a few µs
/// on this VM (4.5–7 µs for a plain C loop, more when the vCPU was idle long), charged to the thread
/// only when it sleeps. The worker times some of its blocking receives on the thread's CPU clock,
/// and the price is kept per class of sleep length. A sleep also batches: the datagrams that come
/// while the thread wakes are served together, and every turn (a receive and a send) has a fixed
/// cost F, so what is compared is CPU per datagram, counting the datagrams served after a poll's
/// catch and after a sleep apart.
/// </para>
/// <para>
/// Gaps and prices are kept in classes on the ladder of candidate windows: 0, 1.024 µs, 2.048 µs …
/// up to the configured maximum (class k holds gaps from the k-th window up to the next). Every
/// <see cref="Epoch"/> idle periods the counts are folded into moving averages and each candidate w
/// is priced: (F + Σ_{k&lt;w} gap_k + Σ_{k≥w} share_k·(w + price_k)) / (datagrams per period). A
/// window other than 0 must promise to save <see cref="Margin"/> of sleeping's cost (the estimates
/// are noisy, and sleeping at once costs the least latency-free CPU when they are close); among
/// those the cheapest wins, a tie going to the shorter. So it sleeps at once when datagrams come
/// further apart than a sleep costs (5 k/s: gaps of 200 µs) and polls through gaps shorter than a
/// sleep would cost per datagram (bursts, or rates near what the core can answer).
/// </para>
/// <para>
/// A class shorter than the window is never slept through, so its price would go stale: every
/// <see cref="ProbeInterval"/>-th idle period is a probe that sleeps at once and is timed; besides,
/// every <see cref="SampleInterval"/>-th sleep is. Until a sleep has been timed, sleeping is priced
/// at nothing, so a worker starts by sleeping. Only this thread's CPU is priced: the wake-up latency
/// is not, and it shows in the T3 − T2 of requests that meet a sleeping worker.
/// </para>
/// <para>Pure: fed observations, no clock. One worker's; not thread-safe.</para>
/// </remarks>
public sealed class BusyPollGovernor
{
    /// <summary>Idle periods between decisions.</summary>
    public const int Epoch = 64;

    /// <summary>Every this many idle periods (while the window is not 0), one sleeps at once and is timed.</summary>
    public const int ProbeInterval = 64;

    /// <summary>Every this many sleeps, one is timed.</summary>
    public const int SampleInterval = 16;

    /// <summary>The share of sleeping's CPU per datagram that a poll window must promise to save.</summary>
    public const double Margin = 0.1;

    /// <summary>
    /// A timed receive that took more CPU than this was preempted by the host: no steal accounting
    /// in this guest, so the preemption is charged to the thread (seen here: a few per 20 000
    /// receives, up to milliseconds; a receive of a whole batch takes ~100 µs). Not a price.
    /// </summary>
    public const long PreemptedNanoseconds = 250_000;

    /// <summary>Timed receives kept per price; the price is their median, which a rare outlier does not move.</summary>
    private const int PriceSamples = 8;

    /// <summary>The shortest window but 0 is 2^10 ns (~1 µs); each next one doubles, so a gap's class is a log2.</summary>
    private const int FirstWindowLog2 = 10;

    /// <summary>Weight of one epoch in the moving averages (they follow about the last 8 epochs).</summary>
    private const double EpochWeight = 1.0 / 8;

    // How an idle period ended.
    private const int Queued = 0;
    private const int Caught = 1;
    private const int Slept = 2;

    private readonly long[] _windows;
    private readonly bool _adaptive;

    // This epoch: periods and the sum of their gaps per class; periods and datagrams per ending.
    private readonly long[] _count;
    private readonly double[] _sum;
    private readonly long[] _endCount = new long[3];
    private readonly long[] _endDatagrams = new long[3];

    // Moving averages per idle period: each class's share and its share of the gap sum; the share of
    // periods that found a datagram queued; datagrams served per period, by ending.
    private readonly double[] _share;
    private readonly double[] _gap;
    private double _queuedShare;
    private readonly double[] _datagrams = [1, 1, 1];

    // The last timed receives that slept, per class of sleep length; and of those that did not.
    private readonly PriceRing[] _slept;
    private PriceRing _queued;

    private int _periods;
    private int _sinceDecision;
    private int _sleeps;

    /// <param name="maxWindowNanoseconds">The longest window; 0: never poll.</param>
    /// <param name="adaptive">False: always poll for the maximum (a fixed busy-poll).</param>
    public BusyPollGovernor(long maxWindowNanoseconds, bool adaptive = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxWindowNanoseconds);
        MaxWindowNanoseconds = maxWindowNanoseconds;
        _adaptive = adaptive && maxWindowNanoseconds > 0;
        var windows = new List<long> { 0 };
        for (long w = 1 << FirstWindowLog2; w < maxWindowNanoseconds; w *= 2)
        {
            windows.Add(w);
        }
        if (maxWindowNanoseconds > 0)
        {
            windows.Add(maxWindowNanoseconds);
        }
        _windows = [.. windows];
        _count = new long[_windows.Length];
        _sum = new double[_windows.Length];
        _share = new double[_windows.Length];
        _gap = new double[_windows.Length];
        _slept = new PriceRing[_windows.Length];
        WindowNanoseconds = adaptive ? 0 : maxWindowNanoseconds;
    }

    public long MaxWindowNanoseconds { get; }

    /// <summary>The window chosen at the last decision (0: sleep at once).</summary>
    public long WindowNanoseconds { get; private set; }

    /// <summary>The candidate windows, shortest (0) first; class k holds gaps from window k up to window k + 1.</summary>
    public ReadOnlySpan<long> Candidates => _windows;

    /// <summary>
    /// An idle period begins: how long to poll before sleeping. <paramref name="probe"/>: this period
    /// sleeps at once to keep the prices fresh (pass it on to <see cref="BeginSleep"/>).
    /// </summary>
    public long BeginIdle(out bool probe)
    {
        probe = false;
        if (_adaptive && WindowNanoseconds > 0 && ++_periods >= ProbeInterval)
        {
            _periods = 0;
            probe = true;
            return 0;
        }
        return WindowNanoseconds;
    }

    /// <summary>The worker is about to block: true when it should time this receive for <see cref="RecordSleep"/>.</summary>
    public bool BeginSleep(bool probe)
    {
        if (!_adaptive)
        {
            return false;
        }
        if (++_sleeps >= SampleInterval)
        {
            _sleeps = 0;
            return true;
        }
        return probe;
    }

    /// <summary>
    /// A timed blocking receive: it took <paramref name="cpuNanoseconds"/> of the thread's CPU, and the
    /// datagram came <paramref name="sleptNanoseconds"/> after the call began. Unless
    /// <paramref name="slept"/> (the thread was off the CPU in between), one was already queued.
    /// </summary>
    public void RecordSleep(long sleptNanoseconds, long cpuNanoseconds, bool slept)
    {
        if (cpuNanoseconds > PreemptedNanoseconds)
        {
            return;
        }
        long cpu = Math.Max(0, cpuNanoseconds);
        if (slept)
        {
            _slept[ClassOf(Math.Max(0, sleptNanoseconds))].Add(cpu);
        }
        else
        {
            _queued.Add(cpu);
        }
    }

    /// <summary>
    /// An idle period and the turns after it are over: the first datagram came
    /// <paramref name="gapNanoseconds"/> after the sockets were found empty, and a poll caught it or
    /// (<paramref name="slept"/>) the blocking receive did; <paramref name="datagrams"/> were served
    /// until the sockets were found empty again.
    /// </summary>
    public void RecordPeriod(long gapNanoseconds, bool slept, int datagrams)
    {
        if (!_adaptive)
        {
            return;
        }
        int end = Queued;
        if (gapNanoseconds > 0)
        {
            end = slept ? Slept : Caught;
            int k = ClassOf(gapNanoseconds);
            _count[k]++;
            _sum[k] += gapNanoseconds;
        }
        _endCount[end]++;
        _endDatagrams[end] += Math.Max(1, datagrams);
        if (++_sinceDecision >= Epoch)
        {
            Decide();
        }
    }

    /// <summary>What a sleep of a length in class <paramref name="k"/> costs beyond a receive that does not sleep; NaN until one was timed.</summary>
    public double SleepPrice(int k) => _slept[k].Count == 0 ? double.NaN : Math.Max(0, _slept[k].Median() - ReceiveCost);

    /// <summary>The expected CPU per datagram, in nanoseconds, of candidate window <paramref name="j"/> by the averages of the last decision.</summary>
    public double ExpectedCost(int j)
    {
        Span<double> prices = stackalloc double[_windows.Length];
        Prices(prices);
        return ExpectedCost(j, prices);
    }

    /// <summary>A receive that finds a datagram queued: the fixed cost F of a turn (0 until timed).</summary>
    private double ReceiveCost => _queued.Count == 0 ? 0 : _queued.Median();

    private double ExpectedCost(int j, ReadOnlySpan<double> prices)
    {
        double cpu = ReceiveCost;
        double datagrams = _queuedShare * _datagrams[Queued];
        for (int k = 0; k < _windows.Length; k++)
        {
            if (k < j)
            {
                cpu += _gap[k];
                datagrams += _share[k] * _datagrams[Caught];
            }
            else
            {
                cpu += _share[k] * (_windows[j] + prices[k]);
                datagrams += _share[k] * _datagrams[Slept];
            }
        }
        return datagrams > 0 ? cpu / datagrams : cpu;
    }

    private int ClassOf(long nanoseconds)
    {
        int last = _windows.Length - 1;
        if (nanoseconds >= _windows[last])
        {
            return last;
        }
        return nanoseconds < 1 << FirstWindowLog2 ? 0 : Math.Min(last, BitOperations.Log2((ulong)nanoseconds) - FirstWindowLog2 + 1);
    }

    /// <summary>
    /// Every class's sleep price for a decision. An untimed class borrows the nearest timed class's,
    /// the shorter first; with none timed sleeping is priced at 0, so the worker sleeps until it
    /// has measured what that costs.
    /// </summary>
    private void Prices(Span<double> prices)
    {
        for (int k = 0; k < prices.Length; k++)
        {
            prices[k] = SleepPrice(k);
        }
        for (int k = 0; k < prices.Length; k++)
        {
            if (_slept[k].Count > 0)
            {
                continue;
            }
            prices[k] = 0;
            for (int d = 1; d < prices.Length; d++)
            {
                if (k - d >= 0 && _slept[k - d].Count > 0)
                {
                    prices[k] = prices[k - d];
                    break;
                }
                if (k + d < prices.Length && _slept[k + d].Count > 0)
                {
                    prices[k] = prices[k + d];
                    break;
                }
            }
        }
    }

    private void Decide()
    {
        double periods = _sinceDecision;
        for (int k = 0; k < _windows.Length; k++)
        {
            _share[k] += ((_count[k] / periods) - _share[k]) * EpochWeight;
            _gap[k] += ((_sum[k] / periods) - _gap[k]) * EpochWeight;
            _count[k] = 0;
            _sum[k] = 0;
        }
        _queuedShare += ((_endCount[Queued] / periods) - _queuedShare) * EpochWeight;
        for (int e = 0; e < _endCount.Length; e++)
        {
            if (_endCount[e] > 0)
            {
                _datagrams[e] += (((double)_endDatagrams[e] / _endCount[e]) - _datagrams[e]) * EpochWeight;
            }
            _endCount[e] = 0;
            _endDatagrams[e] = 0;
        }
        _sinceDecision = 0;

        Span<double> prices = stackalloc double[_windows.Length];
        Prices(prices);
        int best = 0;
        double bestCost = ExpectedCost(0, prices) * (1 - Margin);
        for (int j = 1; j < _windows.Length; j++)
        {
            double cost = ExpectedCost(j, prices);
            if (cost < bestCost)
            {
                best = j;
                bestCost = cost;
            }
        }
        WindowNanoseconds = _windows[best];
    }

    [InlineArray(PriceSamples)]
    private struct Samples
    {
        private long _element;
    }

    /// <summary>The last <see cref="PriceSamples"/> timed receives of one kind, and their median.</summary>
    private struct PriceRing
    {
        private Samples _samples;
        private int _next;

        public int Count { get; private set; }

        public void Add(long sample)
        {
            _samples[_next] = sample;
            _next = (_next + 1) % PriceSamples;
            Count = Math.Min(PriceSamples, Count + 1);
        }

        public readonly double Median()
        {
            Span<long> sorted = stackalloc long[PriceSamples];
            for (int i = 0; i < Count; i++)
            {
                sorted[i] = _samples[i];
            }
            sorted = sorted[..Count];
            // Insertion sort, not Span.Sort: under Native AOT Span<long>.Sort allocated an object per
            // call (ArraySortHelper's comparer), 16 B per request at 100 k/s; a few dozen samples sort
            // as fast this way, and the worker's path stays at 0 B.
            for (int i = 1; i < sorted.Length; i++)
            {
                long value = sorted[i];
                int j = i - 1;
                for (; j >= 0 && sorted[j] > value; j--)
                {
                    sorted[j + 1] = sorted[j];
                }
                sorted[j + 1] = value;
            }
            return Count % 2 == 1 ? sorted[Count / 2] : (sorted[(Count / 2) - 1] + sorted[Count / 2]) / 2.0;
        }
    }
}
