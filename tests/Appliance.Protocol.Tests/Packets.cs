using System.Buffers.Binary;
using Appliance.Protocol;
using Appliance.Testing;

namespace Appliance.Protocol.Tests;

/// <summary>Golden packets captured from real clients (tests/testdata/capture-golden.sh) and builders.</summary>
internal static class Packets
{
    public static byte[] Golden(string name) => File.ReadAllBytes(Repo.TestData("golden", name + ".bin"));

    public static readonly string[] GoldenClientRequests = ["chronyd-v4", "chronyd-v3", "chronyd-xleave", "ntpdig"];

    public const long ReceiveUnixNs = ProtocolFixtures.ReceiveUnixNs;

    public static RequestContext Context(long rxUnixNs = ReceiveUnixNs) => ProtocolFixtures.Context(rxUnixNs);

    public static ServerState SyncedState(long updatedUnixNs = ReceiveUnixNs - 8_000_000_000L) => ProtocolFixtures.Synced(updatedUnixNs);

    /// <summary>A client request (mode 3) with the given version and transmit timestamp.</summary>
    public static byte[] Request(byte version = 4, ulong transmit = 0x0123_4567_89AB_CDEF, int extraBytes = 0, NtpMode mode = NtpMode.Client)
    {
        var packet = new byte[NtpHeader.Length + extraBytes];
        packet[0] = NtpHeader.FirstOctet(LeapIndicator.Unsynchronised, version, mode);
        packet[2] = 6;
        BinaryPrimitives.WriteUInt64BigEndian(packet.AsSpan(NtpHeader.TransmitOffset), transmit);
        return packet;
    }

    public static Outcome Respond(byte[] buffer, int length, ServerState state, out int responseLength)
    {
        var policy = default(AllowAllPolicy);
        return NtpResponder.Respond(buffer, length, Context(), state, ref policy, out responseLength);
    }
}
