using System.Buffers.Binary;
using System.Security.Cryptography;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>
/// One server master key (RFC 8915 §6): an AES-SIV-CMAC-256 key and its 32-bit id. The id is the
/// rotation period it belongs to, so every server of a fleet that derives keys from one secret agrees
/// on ids without talking. Immutable; its cipher is safe to share between threads for reading.
/// </summary>
public sealed class CookieKey
{
    public const int KeyLength = 32;

    public CookieKey(uint id, ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException($"a master key is {KeyLength} bytes", nameof(key));
        }
        Id = id;
        Key = key.ToArray();
        Cipher = new AesSiv(Key);
    }

    public uint Id { get; }

    public byte[] Key { get; }

    internal AesSiv Cipher { get; }

    /// <summary>
    /// Fleet mode: the key of period <paramref name="period"/> is HKDF-SHA256 (RFC 5869) of the fleet
    /// secret with the period number as info, so every appliance (and an NTS-KE host serving for
    /// them) derives the same ring with no coordination.
    /// </summary>
    public static CookieKey Derive(ReadOnlySpan<byte> fleetSecret, uint period)
    {
        Span<byte> info = stackalloc byte[4 + 27];
        BinaryPrimitives.WriteUInt32BigEndian(info, period);
        "appliance nts cookie key v1"u8.CopyTo(info[4..]);
        Span<byte> key = stackalloc byte[KeyLength];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, fleetSecret, key, "appliance-nts-fleet"u8, info);
        return new CookieKey(period, key);
    }
}

/// <summary>
/// The keys cookies may be opened with (the current one, the <c>keep</c> before it, and the next one,
/// ready before it is needed) and the key new cookies are sealed with. Immutable; the key-ring
/// service publishes a new ring by swapping a reference, and workers read whichever ring is current.
/// </summary>
public sealed class CookieKeyRing
{
    private readonly CookieKey[] _keys;

    public CookieKeyRing(CookieKey current, IEnumerable<CookieKey> others)
    {
        Current = current;
        _keys = [current, .. others.Where(k => k.Id != current.Id)];
    }

    public CookieKey Current { get; }

    public IReadOnlyList<CookieKey> Keys => _keys;

    public CookieKey? Find(uint id)
    {
        foreach (CookieKey key in _keys)
        {
            if (key.Id == id)
            {
                return key;
            }
        }
        return null;
    }
}

/// <summary>The one place the current <see cref="CookieKeyRing"/> is published (DESIGN.md boundary 4).</summary>
public sealed class CookieKeyRingCell(CookieKeyRing? initial = null)
{
    private CookieKeyRing? _current = initial;

    public CookieKeyRing? Current => Volatile.Read(ref _current);

    public void Publish(CookieKeyRing ring) => Volatile.Write(ref _current, ring);
}
