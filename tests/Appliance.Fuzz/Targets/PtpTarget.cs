using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Sources;
using Microsoft.Extensions.Logging.Abstractions;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The PTP slave's message parser (IEEE 1588-2019 §13): datagrams handed to one <see cref="PtpSource"/>
/// as its event (319) and general (320) sockets would, from addresses the input chooses. The input
/// is a list of steps, each an operation octet and, for the two receives, a length octet and that
/// many message octets. Operation bits 0-1: 0 a datagram on the event port, 1 on the general port,
/// 2 write and send a Delay_Req, 3 let 10 s pass; bits 2-3 the source (the master's address, a
/// backup's, this host's own, elsewhere); bit 4 makes a general datagram answer the last Delay_Req
/// (its sequence and requesting identity copied in, which a fuzzer cannot guess: the identity is
/// random). Invariants: no exception; a measurement's round trip is within the 1 s the slave takes.
/// </summary>
public static class PtpTarget
{
    public const int MaxInput = 4096;

    private static readonly NetAddress[] s_sources =
    [
        NetAddress.FromIPAddress(IPAddress.Parse("10.7.0.1")),
        NetAddress.FromIPAddress(IPAddress.Parse("10.7.0.3")),
        NetAddress.FromIPAddress(IPAddress.Parse("10.7.0.2")),
        NetAddress.FromIPAddress(IPAddress.Parse("10.7.0.9")),
    ];

    public static void Run(ReadOnlySpan<byte> input)
    {
        // Disposed: its refusal summary holds a timer, which would fire into the next runs (and pile up).
        using var slave = new PtpSource(new PtpOptions { Interface = "fuzz0" }, NullLogger.Instance) { LocalAddresses = [s_sources[2]] };
        long now = 1000; // monotonic milliseconds
        long realtime = 1_795_435_200_000_000_000L;
        byte[] request = new byte[44];
        bool requested = false;
        int offset = 0;
        while (offset < input.Length)
        {
            byte op = input[offset++];
            now += 100;
            realtime += 100_000_000;
            NetAddress source = s_sources[(op >> 2) & 3];
            switch (op & 3)
            {
                case 2:
                    if (slave.WriteDelayRequest(request))
                    {
                        requested = true;
                        slave.DelayRequestSent(realtime);
                    }
                    continue;
                case 3:
                    now += 10_000;
                    realtime += 10_000_000_000L;
                    continue;
            }
            if (offset >= input.Length)
            {
                return;
            }
            int length = Math.Min(input[offset++], input.Length - offset);
            byte[] message = input.Slice(offset, length).ToArray();
            offset += length;
            if ((op & 3) == 0)
            {
                slave.OnEvent(message, source, realtime);
                continue;
            }
            if ((op & 0x10) != 0 && requested && message.Length >= 54)
            {
                request.AsSpan(30, 2).CopyTo(message.AsSpan(30)); // sequenceId
                request.AsSpan(20, 10).CopyTo(message.AsSpan(44)); // requestingPortIdentity
            }
            if (slave.OnGeneral(message, source, now) is Measurement m)
            {
                InvariantViolatedException.Check(m.T1 <= m.T4 && m.T4 - m.T1 <= 1_000_000_001L,
                    $"a measurement with a round trip of {m.T4 - m.T1} ns");
            }
        }
    }
}
