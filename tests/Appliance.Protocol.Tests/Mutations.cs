using CsCheck;

namespace Appliance.Protocol.Tests;

/// <summary>Valid inputs with bytes flipped, truncated or extended: close enough to valid to reach deep code.</summary>
internal static class Mutations
{
    /// <param name="seeds">What to start from (one picked per sample).</param>
    /// <param name="flips">At most this many bytes xor-ed with a random value.</param>
    /// <param name="shrink">At most this many bytes cut from the end.</param>
    /// <param name="grow">At most this many zero bytes added at the end.</param>
    /// <param name="maxLength">The longest result.</param>
    public static Gen<byte[]> Of(IReadOnlyList<byte[]> seeds, int flips, int shrink, int grow, int maxLength) =>
        Gen.Select(Gen.Int[0, seeds.Count - 1], Gen.Int[0, flips].SelectMany(n => Gen.Select(Gen.Int[0, 1023], Gen.Byte).Array[n]), Gen.Int[-shrink, grow])
            .Select((seed, changes, resize) =>
            {
                byte[] source = seeds[seed];
                var packet = new byte[Math.Clamp(source.Length + resize, 0, maxLength)];
                source.AsSpan(0, Math.Min(source.Length, packet.Length)).CopyTo(packet);
                foreach ((int index, byte value) in changes)
                {
                    if (packet.Length > 0)
                    {
                        packet[index % packet.Length] ^= value;
                    }
                }
                return packet;
            });
}
