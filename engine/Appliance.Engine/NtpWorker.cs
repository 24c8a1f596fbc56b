using System.Net;
using Appliance.Protocol;
using Appliance.Timestamping;

namespace Appliance.Engine;

/// <summary>
/// One worker: a thread that owns one socket and one batch. Each turn receives a batch with one
/// recvmmsg (kernel receive timestamps), answers every request in place with the pure responder, takes
/// the transmit timestamp once just before sending, and sends the batch with one sendmmsg.
/// Nothing on that path allocates.
/// </summary>
public sealed class NtpWorker : IDisposable
{
    private readonly TimestampedSocket _socket;
    private readonly ServerStateCell _state;
    private readonly PacketBatch _batch;
    private readonly bool[] _stamp;
    private Thread? _thread;
    private volatile bool _stopping;

    public NtpWorker(TimestampedSocket socket, ServerStateCell state, int batchSize = 64)
    {
        _socket = socket;
        _state = state;
        _batch = new PacketBatch(batchSize);
        _stamp = new bool[batchSize];
    }

    public IPEndPoint LocalEndPoint => _socket.LocalEndPoint;

    public WorkerCounters Counters { get; } = new();

    /// <summary>Called with the exception when the loop fails for a reason other than shutdown.</summary>
    public Action<Exception>? OnFault { get; set; }

    public void Start()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = $"ntp {LocalEndPoint}" };
        _thread.Start();
    }

    private void Run()
    {
        try
        {
            Warmup.RequestPath(_state.Current);
            _socket.WarmUp(_batch);
            var policy = default(AllowAllPolicy);
            while (!_stopping)
            {
                int n = _socket.Receive(_batch);
                if (n <= 0)
                {
                    if (n < 0)
                    {
                        Counters.CountReceiveError();
                    }
                    continue;
                }
                ServerState state = _state.Current;
                ProcessBatch(_batch, state, ref policy, Counters, _stamp);
                StampTransmit(_batch, state, _stamp, SystemClock.RealtimeNanoseconds());
                Counters.CountSendErrors(_socket.Send(_batch));
                Counters.SetAllocatedBytes(GC.GetAllocatedBytesForCurrentThread());
            }
        }
        catch (Exception e)
        {
            OnFault?.Invoke(e);
        }
    }

    /// <summary>
    /// Answers every datagram of the batch in place and marks the responses to send. The same code
    /// serves the socket loop and the in-memory engine of the benchmarks.
    /// </summary>
    internal static void ProcessBatch<TPolicy>(PacketBatch batch, ServerState state, ref TPolicy policy, WorkerCounters counters, bool[] stamp)
        where TPolicy : struct, IClientPolicy
    {
        int count = batch.Count;
        counters.CountReceived(count);
        long fallback = 0;
        for (int i = 0; i < count; i++)
        {
            stamp[i] = false;
            TimestampSource source = batch.TimestampSource(i);
            counters.CountTimestamp(source);
            long rx = batch.ReceiveTimestamp(i);
            if (rx == 0)
            {
                // No kernel timestamp: the clock now is the best (late) estimate of the arrival.
                rx = fallback != 0 ? fallback : fallback = SystemClock.RealtimeNanoseconds();
            }
            if (batch.Truncated(i))
            {
                counters.Count(Outcome.Drop(ResponseReason.Oversized));
                continue;
            }
            var context = new RequestContext(batch.Source(i), rx, NtpTimestamp.FromUnixNanoseconds(state.Transform.Apply(rx)));
            Outcome outcome = NtpResponder.Respond(batch.Payload(i), batch.Length(i), context, state, ref policy, out int length);
            counters.Count(outcome);
            batch.SetResponse(i, length);
            stamp[i] = outcome.Action == ResponseAction.Respond;
        }
    }

    /// <summary>Writes one transmit timestamp, read just before the send, into every time response (not KoDs).</summary>
    internal static void StampTransmit(PacketBatch batch, ServerState state, bool[] stamp, long nowUnixNanoseconds)
    {
        var transmit = NtpTimestamp.FromUnixNanoseconds(state.Transform.Apply(nowUnixNanoseconds));
        for (int i = 0; i < batch.Count; i++)
        {
            if (stamp[i])
            {
                NtpResponder.StampTransmit(batch.Payload(i), transmit);
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        // The receive wakes within its timeout (SO_RCVTIMEO); only then are the socket and batch freed.
        if (_thread is null || _thread.Join(TimeSpan.FromSeconds(5)))
        {
            _socket.Dispose();
            _batch.Dispose();
        }
    }
}
