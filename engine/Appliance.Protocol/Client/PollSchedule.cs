using Appliance.Protocol;

namespace Appliance.Protocol.Client;

/// <summary>
/// When to poll one upstream server (pure, deterministic): the reachability register, the poll
/// exponent adapted between minpoll and maxpoll, iburst, and Kiss-o'-Death handling.
/// </summary>
public sealed class PollSchedule
{
    /// <summary>Largest poll exponent RFC 5905 allows (MAXPOLL 17, 36 h).</summary>
    public const int MaxPollLimit = 17;

    /// <summary>Requests in an iburst, two seconds apart (chrony and ntpd send 4–8).</summary>
    public const int BurstLength = 4;

    public const double BurstIntervalSeconds = 2;

    // RFC 5905 §A.5.5.2 (clock_adjust): the jiggle counter moves the poll one step once it passes ±LIMIT.
    private const int Limit = 30;

    private readonly int _minPoll;
    private readonly int _maxPoll;
    private readonly bool _iburst;
    private int _floor;
    private int _burstLeft;
    private int _jiggle;
    private int _unanswered;
    private bool _everAnswered;

    public PollSchedule(int minPoll, int maxPoll, bool iburst)
    {
        if (minPoll > maxPoll)
        {
            throw new ArgumentException($"minpoll {minPoll} is above maxpoll {maxPoll}");
        }
        _minPoll = minPoll;
        _maxPoll = maxPoll;
        _iburst = iburst;
        _floor = minPoll;
        Poll = minPoll;
    }

    /// <summary>The poll exponent: log2 of the seconds between regular polls.</summary>
    public int Poll { get; private set; }

    /// <summary>The reachability register (RFC 5905 §9.2): one bit per poll, 1 when it was answered.</summary>
    public byte Reach { get; private set; }

    /// <summary>True after a KoD DENY or RSTR: the server asked not to be polled again.</summary>
    public bool Stopped { get; private set; }

    /// <summary>True from a KoD RATE until the next ordinary answer.</summary>
    public bool RateLimited { get; private set; }

    /// <summary>Three polls in a row unanswered.</summary>
    public bool Unreachable => _unanswered >= 3;

    public double PollSeconds => Math.ScaleB(1.0, Poll);

    /// <summary>A request goes out: shift the register (RFC 5905 §13); start a burst while nothing answers.</summary>
    public void OnSend()
    {
        Reach <<= 1;
        if (_iburst && Reach == 0 && _burstLeft == 0 && _unanswered == 0)
        {
            _burstLeft = BurstLength;
        }
        _burstLeft = Math.Max(0, _burstLeft - 1);
        _unanswered++;
        if (_unanswered > BurstLength)
        {
            // Polling a dead server at the minimum rate helps nobody: back off towards maxpoll.
            Poll = Math.Max(Poll, Math.Min(Poll + 1, _maxPoll));
        }
    }

    /// <summary>A valid answer arrived (any answer that passed the packet checks, KoDs aside).</summary>
    public void OnAnswer()
    {
        Reach |= 1;
        _unanswered = 0;
        _everAnswered = true;
        RateLimited = false;
    }

    /// <summary>
    /// After a sample: RFC 5905 §A.5.5.2's poll adaptation. A sample within a few jitters of the
    /// clock's own estimate adds the poll to a counter, one outside subtracts twice that; past ±30
    /// the poll grows or shrinks by one.
    /// </summary>
    public void Adapt(bool steady)
    {
        if (steady)
        {
            _jiggle += Poll;
            if (_jiggle > Limit)
            {
                _jiggle = 0;
                Poll = Math.Max(Poll, Math.Min(Poll + 1, _maxPoll));
            }
        }
        else
        {
            _jiggle -= 2 * Poll;
            if (_jiggle < -Limit)
            {
                _jiggle = 0;
                Poll = Math.Max(Poll - 1, _floor);
            }
        }
    }

    /// <summary>A Kiss-o'-Death (RFC 5905 §7.4): RATE slows down (at least to the server's poll), DENY and RSTR stop.</summary>
    public void OnKissOfDeath(KissCode code, sbyte serverPoll)
    {
        switch (code)
        {
            case KissCode.Rate:
                RateLimited = true;
                _burstLeft = 0;
                _unanswered = 0;
                // Each RATE at least doubles the interval, up to the server's poll if larger, and the
                // interval never again drops below it (ntpd raises minpoll the same way).
                Poll = Math.Min(MaxPollLimit, Math.Max(Poll + 1, Math.Max((int)serverPoll, _minPoll)));
                _floor = Poll;
                break;
            case KissCode.Deny or KissCode.Restrict:
                Stopped = true;
                break;
        }
    }

    /// <summary>Seconds until the next request: two seconds inside a burst, else 2^poll.</summary>
    public double NextIntervalSeconds => _burstLeft > 0 ? BurstIntervalSeconds : PollSeconds;

    public SourceState State(bool serverUnsynchronised) =>
        Stopped ? SourceState.Denied
        : RateLimited ? SourceState.RateLimited
        : Unreachable ? SourceState.Unreachable
        : !_everAnswered ? SourceState.Starting
        : serverUnsynchronised ? SourceState.Unsynchronised
        : SourceState.Reachable;
}
