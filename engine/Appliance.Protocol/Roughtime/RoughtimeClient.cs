using System.Buffers.Binary;
using NSec.Cryptography;

namespace Appliance.Protocol.Roughtime;

/// <summary>What a verified response says: the server's time was within (Midpoint − Radius, Midpoint + Radius) when it signed.</summary>
/// <param name="Midpoint">MIDP, Unix seconds.</param>
/// <param name="Radius">RADI, seconds.</param>
/// <param name="Version">The version the server answered with.</param>
public readonly record struct RoughtimeReading(ulong Midpoint, uint Radius, uint Version);

/// <summary>Why a response was rejected (RFC 10049 §5.4).</summary>
public enum RoughtimeRejection
{
    None,
    Framing,
    Malformed,
    NotAResponse,
    WrongNonce,
    VersionNotOffered,
    DelegationSignature,
    OutsideDelegation,
    MerklePath,
    ResponseSignature,
    ZeroRadius,
}

/// <summary>
/// The client side, written from RFC 10049 §5.1 and §5.4: builds requests, and checks every part
/// of a response — framing, TYPE, NONC, the version, the long-term key's signature over DELE, MIDP
/// within [MINT, MAXT], the Merkle path from this request's packet to ROOT, and the online key's
/// signature over SREP. Used by the tests and the load harness against the server here, and by the
/// cold-start bootstrap.
/// </summary>
public static class RoughtimeClient
{
    /// <summary>RFC 10049 §5.1: VER, SRV, NONC, TYPE, then ZZZZ padding the message to 1024 bytes; a 1036-byte packet.</summary>
    public const int RequestPacketLength = RoughtimePacket.HeaderLength + RoughtimePacket.MinRequestMessage;

    /// <summary>Writes a request (versions ascending) into <paramref name="packet"/>; returns its length, <see cref="RequestPacketLength"/>.</summary>
    public static int WriteRequest(Span<byte> packet, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> longTermPublicKey, ReadOnlySpan<uint> versions)
    {
        if (nonce.Length != 32 || longTermPublicKey.Length != 32)
        {
            throw new ArgumentException("a Roughtime nonce and an Ed25519 public key are 32 bytes each");
        }
        if (!IsVersionList(versions))
        {
            throw new ArgumentException("VER is 1 to 32 versions in ascending order, none twice (RFC 10049 §5.1.1)", nameof(versions));
        }
        int fixedValues = (4 * versions.Length) + 32 + 32 + 4;
        int padding = RoughtimePacket.MinRequestMessage - (8 * 5) - fixedValues;
        ReadOnlySpan<int> lengths = [4 * versions.Length, 32, 32, 4, padding];
        RoughtimePacket.WriteHeader(packet, RoughtimePacket.MinRequestMessage);
        Span<byte> body = packet.Slice(RoughtimePacket.HeaderLength, RoughtimePacket.MinRequestMessage);
        body.Clear();
        int at = RoughtimeMessage.WriteHeader(body, [RoughtimeTag.Ver, RoughtimeTag.Srv, RoughtimeTag.Nonc, RoughtimeTag.Type, RoughtimeTag.Zzzz], lengths);
        foreach (uint version in versions)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(body[at..], version);
            at += 4;
        }
        RoughtimePacket.ServerId(longTermPublicKey, body.Slice(at, 32));
        nonce.CopyTo(body.Slice(at + 32, 32));
        // TYPE 0 (a request) and the ZZZZ zeros are already there.
        return RequestPacketLength;
    }

    /// <summary>Verifies <paramref name="response"/> to <paramref name="request"/> against the server's long-term public key.</summary>
    public static RoughtimeRejection Verify(ReadOnlySpan<byte> request, ReadOnlySpan<byte> response, ReadOnlySpan<byte> longTermPublicKey, out RoughtimeReading reading)
    {
        reading = default;
        if (!RoughtimePacket.TryUnwrap(request, out ReadOnlySpan<byte> requestBody) || !RoughtimeMessage.TryParse(requestBody, out RoughtimeMessage sent)
            || !sent.TryGet(RoughtimeTag.Nonc, out ReadOnlySpan<byte> sentNonce) || !sent.TryGet(RoughtimeTag.Ver, out ReadOnlySpan<byte> offered))
        {
            return RoughtimeRejection.Malformed; // our own request: a caller's mistake
        }
        if (!RoughtimePacket.TryUnwrap(response, out ReadOnlySpan<byte> body))
        {
            return RoughtimeRejection.Framing;
        }
        if (!RoughtimeMessage.TryParse(body, out RoughtimeMessage answer)
            || !answer.TryGet(RoughtimeTag.Sig, out ReadOnlySpan<byte> signature) || signature.Length != 64
            || !answer.TryGet(RoughtimeTag.Nonc, out ReadOnlySpan<byte> nonce)
            || !answer.TryGet(RoughtimeTag.Path, out ReadOnlySpan<byte> path) || path.Length % 32 != 0 || path.Length > 32 * 32
            || !answer.TryGet(RoughtimeTag.Srep, out ReadOnlySpan<byte> srepBytes) || !RoughtimeMessage.TryParse(srepBytes, out RoughtimeMessage srep)
            || !answer.TryGet(RoughtimeTag.Cert, out ReadOnlySpan<byte> certBytes) || !RoughtimeMessage.TryParse(certBytes, out RoughtimeMessage cert)
            || !answer.TryGetUInt32(RoughtimeTag.Indx, out uint index)
            || !cert.TryGet(RoughtimeTag.Sig, out ReadOnlySpan<byte> certSignature) || certSignature.Length != 64
            || !cert.TryGet(RoughtimeTag.Dele, out ReadOnlySpan<byte> deleBytes) || !RoughtimeMessage.TryParse(deleBytes, out RoughtimeMessage dele)
            || !dele.TryGet(RoughtimeTag.Pubk, out ReadOnlySpan<byte> onlineKey) || onlineKey.Length != 32
            || !dele.TryGetUInt64(RoughtimeTag.Mint, out ulong mint) || !dele.TryGetUInt64(RoughtimeTag.Maxt, out ulong maxt)
            || !srep.TryGetUInt32(RoughtimeTag.Ver, out uint version) || !srep.TryGetUInt32(RoughtimeTag.Radi, out uint radius)
            || !srep.TryGetUInt64(RoughtimeTag.Midp, out ulong midpoint)
            || !srep.TryGet(RoughtimeTag.Root, out ReadOnlySpan<byte> root) || root.Length != 32)
        {
            return RoughtimeRejection.Malformed;
        }
        if (!answer.TryGetUInt32(RoughtimeTag.Type, out uint type) || type != 1)
        {
            return RoughtimeRejection.NotAResponse; // §5.2.3
        }
        if (!nonce.SequenceEqual(sentNonce))
        {
            return RoughtimeRejection.WrongNonce;
        }
        if (!Offered(offered, version) || !srep.TryGet(RoughtimeTag.Vers, out ReadOnlySpan<byte> supported) || !Offered(supported, version)
            || !IsVersionList(supported))
        {
            return RoughtimeRejection.VersionNotOffered; // §5.2.5: VER one the client sent, and in VERS (ascending, ≤ 32)
        }
        if (!VerifyEither(longTermPublicKey, version, RoughtimeContext.RfcTextDelegation, RoughtimeContext.Delegation, deleBytes, certSignature))
        {
            return RoughtimeRejection.DelegationSignature; // §5.4 (1)
        }
        if (midpoint < mint || midpoint > maxt)
        {
            return RoughtimeRejection.OutsideDelegation; // §5.4 (2)
        }
        if (!PathLeadsToRoot(request, path, index, root))
        {
            return RoughtimeRejection.MerklePath; // §5.4 (3)
        }
        if (!VerifyEither(onlineKey, version, RoughtimeContext.RfcTextResponse, RoughtimeContext.Response, srepBytes, signature))
        {
            return RoughtimeRejection.ResponseSignature; // §5.4 (4)
        }
        if (radius == 0)
        {
            return RoughtimeRejection.ZeroRadius; // §5.2.5: RADI MUST NOT be 0
        }
        reading = new RoughtimeReading(midpoint, radius, version);
        return RoughtimeRejection.None;
    }

    /// <summary>
    /// RFC 10049 §8.2: readings taken one after the other must be causally ordered — for i before j,
    /// MIDP_i − RADI_i ≤ MIDP_j + RADI_j. False is proof that one of the two servers lied.
    /// </summary>
    public static bool Consistent(RoughtimeReading earlier, RoughtimeReading later) =>
        (decimal)earlier.Midpoint - earlier.Radius <= (decimal)later.Midpoint + later.Radius;

    private static bool IsVersionList(ReadOnlySpan<uint> versions)
    {
        if (versions.Length is < 1 or > 32)
        {
            return false;
        }
        for (int i = 1; i < versions.Length; i++)
        {
            if (versions[i] <= versions[i - 1])
            {
                return false;
            }
        }
        return true;
    }

    private static bool IsVersionList(ReadOnlySpan<byte> list)
    {
        Span<uint> versions = stackalloc uint[32];
        if (list.Length > 4 * 32)
        {
            return false;
        }
        for (int i = 0; i < list.Length / 4; i++)
        {
            versions[i] = BinaryPrimitives.ReadUInt32LittleEndian(list[(4 * i)..]);
        }
        return IsVersionList(versions[..(list.Length / 4)]);
    }

    private static bool Offered(ReadOnlySpan<byte> list, uint version)
    {
        for (int i = 0; i + 4 <= list.Length; i += 4)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(list[i..]) == version)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Version 1 with either spelling of the context (the RFC's text and its Appendix B disagree,
    /// <see cref="RoughtimeContext"/>); the drafts' version with the drafts' ("RoughTime") only.
    /// </summary>
    private static bool VerifyEither(ReadOnlySpan<byte> publicKey, uint version, ReadOnlySpan<byte> rfc, ReadOnlySpan<byte> draft, ReadOnlySpan<byte> value, ReadOnlySpan<byte> signature)
    {
        if (!PublicKey.TryImport(SignatureAlgorithm.Ed25519, publicKey, KeyBlobFormat.RawPublicKey, out PublicKey? key))
        {
            return false;
        }
        return (version == RoughtimeVersion.Rfc && Verify(key!, rfc, value, signature)) || Verify(key!, draft, value, signature);
    }

    private static bool Verify(PublicKey key, ReadOnlySpan<byte> context, ReadOnlySpan<byte> value, ReadOnlySpan<byte> signature)
    {
        byte[] data = new byte[context.Length + value.Length];
        context.CopyTo(data);
        value.CopyTo(data.AsSpan(context.Length));
        return SignatureAlgorithm.Ed25519.Verify(key, data, signature);
    }

    /// <summary>RFC 10049 §5.3.1: from H(0x00 ‖ request packet) up the path, INDX's bits (lowest first) choosing the side; no bits may remain.</summary>
    private static bool PathLeadsToRoot(ReadOnlySpan<byte> request, ReadOnlySpan<byte> path, uint index, ReadOnlySpan<byte> root)
    {
        Span<byte> h = stackalloc byte[32];
        byte[] scratch = new byte[request.Length + 1];
        RoughtimePacket.Hash(0x00, request, scratch, h);
        for (int at = 0; at < path.Length; at += 32)
        {
            ReadOnlySpan<byte> node = path.Slice(at, 32);
            if ((index & 1) == 0)
            {
                MerkleTree.HashNode(h, node, h);
            }
            else
            {
                MerkleTree.HashNode(node, h, h);
            }
            index >>= 1;
        }
        return index == 0 && h.SequenceEqual(root);
    }
}
