using System.Buffers.Binary;
using NSec.Cryptography;

namespace Appliance.Protocol.Roughtime;

/// <summary>
/// The context strings signatures are made over (RFC 10049 §5.2.1, §5.2.6), each with its zero byte.
/// The RFC's text spells them "Roughtime …"; its own Appendix B packets, every draft, and the
/// clients deployed (craggy, pyroughtime, node-roughtime, tannerryan/roughtime) sign and check
/// "RoughTime …" (roughenough 2.1.0 alone checks the RFC's spelling for version 1). The server signs
/// "RoughTime …" for every version, as the RFC's example packets do; the client accepts either
/// spelling for version 1.
/// </summary>
public static class RoughtimeContext
{
    public static ReadOnlySpan<byte> Response => "RoughTime v1 response signature\0"u8;

    public static ReadOnlySpan<byte> Delegation => "RoughTime v1 delegation signature\0"u8;

    /// <summary>The RFC text's spelling (§5.2.1), accepted from version 1 servers.</summary>
    public static ReadOnlySpan<byte> RfcTextResponse => "Roughtime v1 response signature\0"u8;

    /// <summary>The RFC text's spelling (§5.2.6), accepted from version 1 servers.</summary>
    public static ReadOnlySpan<byte> RfcTextDelegation => "Roughtime v1 delegation signature\0"u8;
}

/// <summary>
/// A delegation (RFC 10049 §5.2.6): the online key the server signs responses with, valid from MINT
/// to MAXT, and the CERT — {SIG, DELE} — in which the long-term key vouches for it. Made when the
/// online key rotates; read by every batch.
/// </summary>
public sealed class RoughtimeDelegation : IDisposable
{
    /// <summary>CERT: a header of 2 tags (16 bytes), SIG (64) and DELE (24 + PUBK 32 + MINT 8 + MAXT 8).</summary>
    public const int CertLength = 16 + 64 + DeleLength;

    private const int DeleLength = 24 + 32 + 8 + 8;

    private readonly byte[] _cert = new byte[CertLength];

    private RoughtimeDelegation(Key online, ulong mint, ulong maxt)
    {
        OnlineKey = online;
        Mint = mint;
        Maxt = maxt;
    }

    public Key OnlineKey { get; }

    /// <summary>Unix seconds from which the online key may be used.</summary>
    public ulong Mint { get; }

    /// <summary>Unix seconds after which the online key must not be used.</summary>
    public ulong Maxt { get; }

    /// <summary>The CERT value: {SIG, DELE}.</summary>
    public ReadOnlySpan<byte> Cert => _cert;

    /// <summary>True when the online key may sign a response with MIDP <paramref name="midpointSeconds"/> (§5.2.6).</summary>
    public bool Covers(ulong midpointSeconds) => midpointSeconds >= Mint && midpointSeconds <= Maxt;

    /// <summary>
    /// Signs <paramref name="online"/>'s public key with <paramref name="longTerm"/> for
    /// [<paramref name="mint"/>, <paramref name="maxt"/>] (Unix seconds). Takes ownership of <paramref name="online"/>.
    /// </summary>
    public static RoughtimeDelegation Create(Key longTerm, Key online, ulong mint, ulong maxt)
    {
        var delegation = new RoughtimeDelegation(online, mint, maxt);
        Span<byte> dele = stackalloc byte[DeleLength];
        int at = RoughtimeMessage.WriteHeader(dele, [RoughtimeTag.Pubk, RoughtimeTag.Mint, RoughtimeTag.Maxt], [32, 8, 8]);
        online.PublicKey.Export(KeyBlobFormat.RawPublicKey).CopyTo(dele.Slice(at, 32));
        BinaryPrimitives.WriteUInt64LittleEndian(dele[(at + 32)..], mint);
        BinaryPrimitives.WriteUInt64LittleEndian(dele[(at + 40)..], maxt);
        int valuesAt = RoughtimeMessage.WriteHeader(delegation._cert, [RoughtimeTag.Sig, RoughtimeTag.Dele], [64, DeleLength]);
        Sign(longTerm, RoughtimeContext.Delegation, dele, delegation._cert.AsSpan(valuesAt, 64));
        dele.CopyTo(delegation._cert.AsSpan(valuesAt + 64));
        return delegation;
    }

    /// <summary>Ed25519 over <paramref name="context"/> ‖ <paramref name="value"/> (RFC 10049 §5.2.1); a value of SREP's or DELE's size.</summary>
    public static void Sign(Key key, ReadOnlySpan<byte> context, ReadOnlySpan<byte> value, Span<byte> signature)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(value.Length, 512);
        Span<byte> data = stackalloc byte[context.Length + value.Length];
        context.CopyTo(data);
        value.CopyTo(data[context.Length..]);
        SignatureAlgorithm.Ed25519.Sign(key, data, signature);
    }

    public void Dispose() => OnlineKey.Dispose();
}
