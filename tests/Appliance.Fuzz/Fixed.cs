using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Testing;

namespace Appliance.Fuzz;

/// <summary>The fixed world the targets run in: a receive time, server states, NTS keys and a cookie.</summary>
internal static class Fixed
{
    public const long ReceiveUnixNs = ProtocolFixtures.ReceiveUnixNs;

    public static RequestContext Context { get; } = ProtocolFixtures.Context();

    public static ServerState Synced(long updatedUnixNs = ReceiveUnixNs - 8_000_000_000L) => ProtocolFixtures.Synced(updatedUnixNs);

    public static ServerState Unsynchronised { get; } = ServerState.Unsynchronised(-20);

    /// <summary>The ring's current key and one older key (cookies under either open; others are NAKed).</summary>
    public static CookieKey Key { get; } = new(100, Octets(7, CookieKey.KeyLength));

    public static CookieKeyRing Ring { get; } = new(Key, [new CookieKey(99, Octets(70, CookieKey.KeyLength))]);

    public static byte[] C2S(AeadAlgorithm aead) => Octets(1, AeadAlgorithms.KeyLength(aead));

    public static byte[] S2C(AeadAlgorithm aead) => Octets(101, AeadAlgorithms.KeyLength(aead));

    public static byte[] UniqueId { get; } = Octets(200, NtsClientPacket.UniqueIdentifierLength);

    /// <summary>A cookie for <see cref="C2S"/> and <see cref="S2C"/> sealed under <see cref="Key"/>.</summary>
    public static byte[] Cookie(AeadAlgorithm aead, byte nonce = 0)
    {
        var cookie = new byte[NtsCookie.Length(aead)];
        byte[] nonceOctets = new byte[NtsCookie.NonceLength];
        nonceOctets[0] = nonce;
        NtsCookie.Seal(Key, nonceOctets, aead, C2S(aead), S2C(aead), cookie);
        return cookie;
    }

    public static byte[] Octets(int first, int count)
    {
        var octets = new byte[count];
        for (int i = 0; i < count; i++)
        {
            octets[i] = (byte)(first + i);
        }
        return octets;
    }
}
