using System.Buffers.Binary;
using System.Security.Cryptography;
using Appliance.Protocol.Roughtime;
using NSec.Cryptography;

namespace Appliance.Protocol.Tests;

/// <summary>
/// Roughtime (RFC 10049): the client against the RFC's Appendix B exchanges (real packets from three
/// servers), and the server's batches against that client and against a Merkle tree written here
/// independently, for every batch size up to a full batch.
/// </summary>
public class RoughtimeTests
{
    /// <summary>One exchange of RFC 10049 Appendix B: the request (its 123-byte prefix, then 913 zero bytes), the response, the key.</summary>
    public sealed record Exchange(string PublicKey, string RequestPrefixHex, string Response, ulong Midpoint);

    private static readonly Exchange[] s_appendixB =
    [
        new("FnDyLV/68ephhLdFJbdEGCdkVvpXDaVe5PYvRDdlOOY=",
            "524f55474854494d00040000050000000400000024000000440000004800000056455200535256004e4f4e43545950455a5a5a5a010000009fe2028b3dd3df88d4eff7796b84da988327a10e03321c5980d41ac084cd50103061f6506537a2d4c9eeb38218aa496330c8d9b422e7314315b7cd332bc23e1d000000",
            "Uk9VR0hUSU2UAQAABwAAAEAAAABgAAAAZAAAAGQAAADAAAAAWAEAAFNJRwBOT05DVFlQRVBBVEhTUkVQQ0VSVElORFhBWL64CToGs4v/4UtfN/80HLFiA09vGIDRP/zTjcTj8/1DlZWCsVja6RlfwaYnc1wfJqThfhcuSDonrTGyKngBMGH2UGU3otTJ7rOCGKpJYzDI2bQi5zFDFbfNMyvCPh0BAAAABQAAAAQAAAAIAAAAEAAAABQAAABWRVIAUkFESU1JRFBWRVJTUk9PVAEAAAADAAAAQ0u4aQAAAAABAAAAc86AWYB/O3Kxzsx4d5P5cbSOftJUA8bWVtVrQ3tc+b0CAAAAQAAAAFNJRwBERUxFI2B5tbj5ePjVKYE0PAL1NmgZOAsqh/E2from9Ol5BAnVcLje0C6exbXY8hE3dRvYV01Alru8Ocle+jOZT5r8AwMAAAAgAAAAKAAAAFBVQktNSU5UTUFYVKqljhhqi4A54vW20e+slwViPyxybNnqKXzimIiIUHQMaBCvaQAAAADYyd9pAAAAAAAAAAA=",
            1773685571),
        new("l9cdSuR8dFxtG9aJo9pWzUXaX8pftNG4UDC45Qk3znc=",
            "524f55474854494d00040000050000000400000024000000440000004800000056455200535256004e4f4e43545950455a5a5a5a01000000450af69d50a3cdfd4f4e5ea15a955167bff121b00b8f3e90587e8e4c0d42d92afdf7e646cd4d972c60b33dea8efbc8b6efbd19357e6d93401e322b16cfd63cde000000",
            "Uk9VR0hUSU2UAQAABwAAAEAAAABgAAAAZAAAAGQAAADAAAAAWAEAAFNJRwBOT05DVFlQRVBBVEhTUkVQQ0VSVElORFj+2I02cCBAfDYzP+8znW6bICqVrAF23xNLfM+Qycmkpfp1+BQSb4l/6mRll66l2VIfPSQzigl2V5OJgQzGEBcG/ffmRs1Nlyxgsz3qjvvItu+9GTV+bZNAHjIrFs/WPN4BAAAABQAAAAQAAAAIAAAAEAAAABQAAABWRVIAUkFESU1JRFBWRVJTUk9PVAEAAAADAAAAw/m2aQAAAAABAAAAS8ROJoXIPSlO9yN+uREb+/UiOJJqCjx3VWZ/vD2FqBMCAAAAQAAAAFNJRwBERUxFw0MFQMiDoHySot8rlnV83Vqaa3qTrAY15W1TzqNuAurOvreNw08BfUwxF7BQ/b/JCwCQcqtD5uRYsvikvuyLCwMAAAAgAAAAKAAAAFBVQktNSU5UTUFYVCQs/eCxtWjVrXyse0SeojyZdNFkOwe3B3nLHtHJZK/9gRCvaQAAAADxyd9pAAAAAAAAAAA=",
            1773599171),
        new("lRhHag6fn2wZQ6idy10ChgpRgks3gvdMM2hWNeJNgXg=",
            "524f55474854494d00040000050000000400000024000000440000004800000056455200535256004e4f4e43545950455a5a5a5a01000000e601a6fa1a54d2af7c519b0c30bd18d6e8429186dc966185991d92069c5f30d9be03b88202be80964f009aba905f70e13057e46a05607a2f52541a7fa8b7cfbd000000",
            "Uk9VR0hUSU2UAQAABwAAAEAAAABgAAAAZAAAAGQAAADAAAAAWAEAAFNJRwBOT05DVFlQRVBBVEhTUkVQQ0VSVElORFg8MlhdCJeQ2qzN6b9q646W9kB+XmAdSg7ToU1gj3AD8AP8eCHfduMBE0E8j4/LqWIr72zWQx8Y1U/1uxs97yMAvgO4ggK+gJZPAJq6kF9w4TBX5GoFYHovUlQaf6i3z70BAAAABQAAAAQAAAAIAAAAEAAAABQAAABWRVIAUkFESU1JRFBWRVJTUk9PVAEAAAADAAAAw/m2aQAAAAABAAAA6ho4+0Cml+VJbqU7hsF717uusV2HYvRbU9CdjJE/Zn0CAAAAQAAAAFNJRwBERUxFM9Fvq8T9kOrxcS7jviCPHe44HX/75Je1hafPJ0f8NoASy29EgD7C0c/LMxXiXxEwyuxYTPN9oseAr9XIt68uDwMAAAAgAAAAKAAAAFBVQktNSU5UTUFYVMxBDiNG247IO4onsGcjFHsA3vP+arl+s0lBLhXw0c1RlBCvaQAAAAAEyt9pAAAAAAAAAAA=",
            1773599171),
    ];

    public static TheoryData<int> AppendixB => new() { 0, 1, 2 };

    private static byte[] Request(Exchange e) => [.. Convert.FromHexString(e.RequestPrefixHex), .. new byte[913]];

    [Theory]
    [MemberData(nameof(AppendixB))]
    public void TheClient_VerifiesTheRfcsAppendixBExchanges(int i)
    {
        Exchange e = s_appendixB[i];
        byte[] request = Request(e);
        Assert.Equal(1036, request.Length);
        RoughtimeRejection result = RoughtimeClient.Verify(request, Convert.FromBase64String(e.Response), Convert.FromBase64String(e.PublicKey), out RoughtimeReading reading);
        Assert.Equal(RoughtimeRejection.None, result);
        Assert.Equal(new RoughtimeReading(e.Midpoint, 3, RoughtimeVersion.Rfc), reading);
        // SRV in the request is H(0xff ‖ the key) (§5.1.4).
        var srv = new byte[32];
        RoughtimePacket.ServerId(Convert.FromBase64String(e.PublicKey), srv);
        Assert.Equal(srv, request.AsSpan(56, 32).ToArray());
    }

    [Fact]
    public void TheClient_WritesTheRfcsRequest_ByteForByte()
    {
        // Appendix B's first request, rebuilt from its nonce and the server's key.
        Exchange e = s_appendixB[0];
        byte[] expected = Request(e);
        var written = new byte[RoughtimeClient.RequestPacketLength];
        RoughtimeClient.WriteRequest(written, expected.AsSpan(88, 32), Convert.FromBase64String(e.PublicKey), [RoughtimeVersion.Rfc]);
        Assert.Equal(expected, written);
    }

    [Theory]
    [InlineData("sig", RoughtimeRejection.ResponseSignature)]
    [InlineData("midp", RoughtimeRejection.ResponseSignature)]
    [InlineData("dele", RoughtimeRejection.DelegationSignature)]
    [InlineData("nonce", RoughtimeRejection.WrongNonce)]
    [InlineData("indx", RoughtimeRejection.MerklePath)]
    [InlineData("request", RoughtimeRejection.MerklePath)]
    [InlineData("key", RoughtimeRejection.DelegationSignature)]
    [InlineData("type", RoughtimeRejection.NotAResponse)]
    [InlineData("framing", RoughtimeRejection.Framing)]
    [InlineData("offsets", RoughtimeRejection.Malformed)]
    public void TheClient_RejectsEveryTamperedPart(string part, RoughtimeRejection expected)
    {
        Exchange e = s_appendixB[0];
        byte[] request = Request(e);
        byte[] response = Convert.FromBase64String(e.Response);
        byte[] key = Convert.FromBase64String(e.PublicKey);
        // Offsets in the response message (after the 12-byte packet header): values start at 12 + 56.
        const int values = 12 + 56;
        switch (part)
        {
            case "sig": response[values + 3] ^= 1; break;
            case "nonce": response[values + 64] ^= 1; break;
            case "type": response[values + 96] = 2; break;
            case "midp": response[values + 100 + 40 + 8] ^= 1; break; // SREP: header 40, VER 4, RADI 4, then MIDP
            case "dele": response[response.Length - 4 - 8] ^= 1; break; // MAXT, the last value of DELE before INDX
            case "indx": response[^4] = 1; break;
            case "request": request[^1] = 1; break;
            case "key": key[0] ^= 1; break;
            case "framing": response[0] = (byte)'X'; break;
            case "offsets": response[12 + 4] = 3; break;
        }
        Assert.Equal(expected, RoughtimeClient.Verify(request, response, key, out _));
    }

    [Fact]
    public void AppendixB_ChainsItsNonces_AndItsCausalityCheckFindsTheServerADayAhead()
    {
        // §8.2: each next nonce is H(previous response packet ‖ rand).
        byte[] rand = Convert.FromBase64String("v/DirVBRQLGtictYD7mN3px02UlMT4J3haTRomt1NNM=");
        var nonce = new byte[32];
        RoughtimePacket.Hash([.. Convert.FromBase64String(s_appendixB[0].Response), .. rand], nonce);
        Assert.Equal(Request(s_appendixB[1]).AsSpan(88, 32).ToArray(), nonce);
        // The first server's MIDP is a day after the others': MIDP_0 − RADI_0 ≤ MIDP_j + RADI_j fails
        // for the pairs with it, and holds between the other two.
        RoughtimeReading[] readings = [.. s_appendixB.Select(e =>
        {
            Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(Request(e), Convert.FromBase64String(e.Response), Convert.FromBase64String(e.PublicKey), out RoughtimeReading r));
            return r;
        })];
        Assert.False(RoughtimeClient.Consistent(readings[0], readings[1]));
        Assert.False(RoughtimeClient.Consistent(readings[0], readings[2]));
        Assert.True(RoughtimeClient.Consistent(readings[1], readings[2]));
        Assert.True(RoughtimeClient.Consistent(readings[1], readings[0])); // the other order is not a violation
    }

    private static Key NewKey() => Key.Create(SignatureAlgorithm.Ed25519);

    private static byte[] PublicKeyOf(Key key) => key.PublicKey.Export(KeyBlobFormat.RawPublicKey);

    public static TheoryData<int> BatchSizes => new() { 1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 64 };

    [Theory]
    [MemberData(nameof(BatchSizes))]
    public void TheServer_AnswersABatchWithOneSignaturePerVersion_AndEveryAnswerVerifies(int size)
    {
        using Key longTerm = NewKey();
        byte[] publicKey = PublicKeyOf(longTerm);
        var responder = new RoughtimeResponder(publicKey, capacity: 64, maxPacket: 2048)
        {
            Delegation = RoughtimeDelegation.Create(longTerm, NewKey(), 1_700_000_000, 1_900_000_000),
        };
        var requests = new byte[size][];
        var buffers = new byte[size][];
        responder.Clear();
        for (int i = 0; i < size; i++)
        {
            // Every third client offers the draft's version only; the others both, or v1 alone.
            uint[] versions = i % 3 == 2 ? [RoughtimeVersion.Draft] : i % 3 == 1 ? [RoughtimeVersion.Rfc, RoughtimeVersion.Draft] : [RoughtimeVersion.Rfc];
            requests[i] = new byte[RoughtimeClient.RequestPacketLength];
            RoughtimeClient.WriteRequest(requests[i], RandomNumberGenerator.GetBytes(32), publicKey, versions);
            buffers[i] = [.. requests[i]];
            Assert.Equal(RoughtimeDrop.None, responder.Accept(i, buffers[i]));
        }
        responder.Sign(1_800_000_000, 4);
        for (int i = 0; i < size; i++)
        {
            // In place, over the request, as the listener answers.
            int length = responder.WriteResponse(i, buffers[i], out RoughtimeDrop drop);
            Assert.Equal(RoughtimeDrop.None, drop);
            Assert.InRange(length, 1, requests[i].Length); // never larger than the request (§9.7)
            Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(requests[i], buffers[i].AsSpan(0, length), publicKey, out RoughtimeReading reading));
            Assert.Equal(new RoughtimeReading(1_800_000_000, 4, i % 3 == 2 ? RoughtimeVersion.Draft : RoughtimeVersion.Rfc), reading);
            Assert.Equal(RoughtimeRejection.DelegationSignature, RoughtimeClient.Verify(requests[i], buffers[i].AsSpan(0, length), PublicKeyOf(NewKey()), out _));
            AssertSignedRoughTime(buffers[i].AsSpan(0, length), publicKey);
        }
    }

    /// <summary>Both signatures made over the "RoughTime …" contexts of the RFC's Appendix B, checked here without the client.</summary>
    private static void AssertSignedRoughTime(ReadOnlySpan<byte> response, byte[] longTermKey)
    {
        Assert.True(RoughtimeMessage.TryParse(response[12..], out RoughtimeMessage message));
        Assert.True(message.TryGet(RoughtimeTag.Srep, out ReadOnlySpan<byte> srep));
        Assert.True(message.TryGet(RoughtimeTag.Sig, out ReadOnlySpan<byte> sig));
        Assert.True(message.TryGet(RoughtimeTag.Cert, out ReadOnlySpan<byte> certBytes));
        Assert.True(RoughtimeMessage.TryParse(certBytes, out RoughtimeMessage cert));
        Assert.True(cert.TryGet(RoughtimeTag.Dele, out ReadOnlySpan<byte> dele));
        Assert.True(cert.TryGet(RoughtimeTag.Sig, out ReadOnlySpan<byte> certSig));
        Assert.True(RoughtimeMessage.TryParse(dele, out RoughtimeMessage deleMessage));
        Assert.True(deleMessage.TryGet(RoughtimeTag.Pubk, out ReadOnlySpan<byte> online));
        var longTerm = PublicKey.Import(SignatureAlgorithm.Ed25519, longTermKey, KeyBlobFormat.RawPublicKey);
        var onlineKey = PublicKey.Import(SignatureAlgorithm.Ed25519, online, KeyBlobFormat.RawPublicKey);
        Assert.True(SignatureAlgorithm.Ed25519.Verify(longTerm, [.. "RoughTime v1 delegation signature\0"u8, .. dele], certSig));
        Assert.True(SignatureAlgorithm.Ed25519.Verify(onlineKey, [.. "RoughTime v1 response signature\0"u8, .. srep], sig));
    }

    [Fact]
    public void TheServer_SignsNothing_OutsideItsDelegation()
    {
        using Key longTerm = NewKey();
        byte[] publicKey = PublicKeyOf(longTerm);
        var responder = new RoughtimeResponder(publicKey, 2, 2048) { Delegation = RoughtimeDelegation.Create(longTerm, NewKey(), 1_700_000_000, 1_700_003_600) };
        byte[] request = ValidRequest(publicKey);
        foreach ((ulong midpoint, bool signs) in new[] { (1_699_999_999UL, false), (1_700_000_000UL, true), (1_700_003_600UL, true), (1_700_003_601UL, false) })
        {
            responder.Clear();
            Assert.Equal(RoughtimeDrop.None, responder.Accept(0, request));
            Assert.Equal(signs, responder.Sign(midpoint, 3));
            Assert.Equal(signs, responder.WriteResponse(0, new byte[2048], out RoughtimeDrop drop) > 0);
            Assert.Equal(signs ? RoughtimeDrop.None : RoughtimeDrop.NotSigned, drop);
        }
        // An answer that would not fit where it is to be written is not written.
        responder.Clear();
        responder.Accept(0, request);
        responder.Sign(1_700_000_000, 3);
        Assert.Equal(0, responder.WriteResponse(0, new byte[RoughtimeResponder.ResponseLength(0) - 1], out RoughtimeDrop tooLarge));
        Assert.Equal(RoughtimeDrop.TooLarge, tooLarge);
        Assert.Throws<InvalidOperationException>(() => responder.Accept(0, request)); // once per slot per batch
    }

    [Fact]
    public void TheServer_IgnoresUnknownTags_AndAnswersWithoutSrv()
    {
        using Key longTerm = NewKey();
        byte[] publicKey = PublicKeyOf(longTerm);
        byte[] nonce = RandomNumberGenerator.GetBytes(32);
        // No SRV (a SHOULD, §5.1.4) and an unregistered tag "XTRA" beside the mandatory three.
        byte[] request = Crafted(1024, (RoughtimeTag.Ver, U32(1)), (RoughtimeTag.Nonc, nonce), (RoughtimeTag.Type, U32(0)), (0x41525458, new byte[8]));
        var responder = new RoughtimeResponder(publicKey, 1, 2048) { Delegation = RoughtimeDelegation.Create(longTerm, NewKey(), 0, ulong.MaxValue) };
        responder.Clear();
        Assert.Equal(RoughtimeDrop.None, responder.Accept(0, request));
        responder.Sign(1_800_000_000, 3);
        var response = new byte[2048];
        int length = responder.WriteResponse(0, response, out _);
        Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(request, response.AsSpan(0, length), publicKey, out _));
    }

    /// <summary>An independent Merkle tree: recursive, over the leaves, the odd node paired with zeros.</summary>
    private static byte[] ReferenceRoot(List<byte[]> level)
    {
        while (level.Count > 1)
        {
            var next = new List<byte[]>();
            for (int i = 0; i < level.Count; i += 2)
            {
                byte[] right = i + 1 < level.Count ? level[i + 1] : new byte[32];
                next.Add(SHA512.HashData((byte[])[0x01, .. level[i], .. right])[..32]);
            }
            level = next;
        }
        return level[0];
    }

    [Fact]
    public void TheTree_MatchesAReferenceTree_ForEverySize()
    {
        var tree = new MerkleTree(100);
        var scratch = new byte[2049];
        for (int n = 1; n <= 100; n++)
        {
            var leaves = new List<byte[]>();
            for (int i = 0; i < n; i++)
            {
                byte[] packet = RandomNumberGenerator.GetBytes(1036);
                tree.SetLeaf(i, packet, scratch);
                leaves.Add(SHA512.HashData((byte[])[0x00, .. packet])[..32]);
            }
            tree.Build(n);
            byte[] root = ReferenceRoot(leaves);
            Assert.Equal(root, tree.Root.ToArray());
            // Every leaf's path, climbed as §5.3.1 says (INDX's lowest bit first), reaches that root.
            var path = new byte[tree.Height * 32];
            for (int i = 0; i < n; i++)
            {
                tree.WritePath(i, path);
                byte[] h = leaves[i];
                for (int level = 0, index = i; level < tree.Height; level++, index >>= 1)
                {
                    byte[] node = path[(level * 32)..((level + 1) * 32)];
                    h = SHA512.HashData((byte[])[0x01, .. (index & 1) == 0 ? h : node, .. (index & 1) == 0 ? node : h])[..32];
                }
                Assert.Equal(root, h);
            }
            Assert.Equal(n == 1 ? 0 : (int)Math.Ceiling(Math.Log2(n)), tree.Height);
        }
    }

    private static byte[] ValidRequest(byte[] publicKey, uint[]? versions = null)
    {
        var request = new byte[RoughtimeClient.RequestPacketLength];
        RoughtimeClient.WriteRequest(request, RandomNumberGenerator.GetBytes(32), publicKey, versions ?? [RoughtimeVersion.Rfc]);
        return request;
    }

    /// <summary>A request message built from (tag, value) pairs, padded by ZZZZ to <paramref name="size"/> bytes, in a packet.</summary>
    private static byte[] Crafted(int size, params (uint Tag, byte[] Value)[] entries)
    {
        var all = entries.Append((RoughtimeTag.Zzzz, Array.Empty<byte>())).OrderBy(e => e.Item1).ToArray();
        int fixedLength = RoughtimeMessage.Length(all.Select(e => e.Item2.Length).ToArray());
        int pad = Math.Max(0, size - fixedLength);
        all = [.. all.Select(e => e.Item1 == RoughtimeTag.Zzzz ? (e.Item1, new byte[pad]) : e)];
        int[] lengths = [.. all.Select(e => e.Item2.Length)];
        var packet = new byte[12 + RoughtimeMessage.Length(lengths)];
        RoughtimePacket.WriteHeader(packet, packet.Length - 12);
        int at = 12 + RoughtimeMessage.WriteHeader(packet.AsSpan(12), [.. all.Select(e => e.Item1)], lengths);
        foreach ((_, byte[] value) in all)
        {
            value.CopyTo(packet, at);
            at += value.Length;
        }
        return packet;
    }

    private static byte[] U32(params uint[] values)
    {
        var bytes = new byte[4 * values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4 * i), values[i]);
        }
        return bytes;
    }

    public static TheoryData<string, RoughtimeDrop> Hostile => new()
    {
        { "short", RoughtimeDrop.TooShort },
        { "no magic", RoughtimeDrop.Framing },
        { "length disagrees", RoughtimeDrop.Framing },
        { "trailing byte", RoughtimeDrop.Framing },
        { "no type", RoughtimeDrop.Malformed },
        { "type 1", RoughtimeDrop.Malformed },
        { "nonce 64", RoughtimeDrop.Malformed },
        { "versions descending", RoughtimeDrop.Malformed },
        { "33 versions", RoughtimeDrop.Malformed },
        { "unknown version", RoughtimeDrop.Version },
        { "other server", RoughtimeDrop.OtherServer },
        { "tags out of order", RoughtimeDrop.Malformed },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public void TheServer_IgnoresEveryInvalidRequest_AndAnswersTheValidOnesBesideIt(string kind, RoughtimeDrop expected)
    {
        using Key longTerm = NewKey();
        byte[] publicKey = PublicKeyOf(longTerm);
        byte[] nonce = RandomNumberGenerator.GetBytes(32);
        byte[] bad = kind switch
        {
            "short" => Crafted(1020, (RoughtimeTag.Ver, U32(1)), (RoughtimeTag.Nonc, nonce), (RoughtimeTag.Type, U32(0))),
            "no magic" => [.. "ROUGHTIN"u8.ToArray(), .. ValidRequest(publicKey)[8..]],
            "length disagrees" => [.. ValidRequest(publicKey)[..1035]],
            "trailing byte" => [.. ValidRequest(publicKey), 0],
            "no type" => Crafted(1024, (RoughtimeTag.Ver, U32(1)), (RoughtimeTag.Nonc, nonce)),
            "type 1" => Crafted(1024, (RoughtimeTag.Ver, U32(1)), (RoughtimeTag.Nonc, nonce), (RoughtimeTag.Type, U32(1))),
            "nonce 64" => Crafted(1024, (RoughtimeTag.Ver, U32(1)), (RoughtimeTag.Nonc, new byte[64]), (RoughtimeTag.Type, U32(0))),
            "versions descending" => Crafted(1024, (RoughtimeTag.Ver, U32(RoughtimeVersion.Draft, 1)), (RoughtimeTag.Nonc, nonce), (RoughtimeTag.Type, U32(0))),
            "33 versions" => Crafted(1024, (RoughtimeTag.Ver, U32([.. Enumerable.Range(1, 33).Select(v => (uint)v)])), (RoughtimeTag.Nonc, nonce), (RoughtimeTag.Type, U32(0))),
            "unknown version" => Crafted(1024, (RoughtimeTag.Ver, U32(2, 0x8000000b)), (RoughtimeTag.Nonc, nonce), (RoughtimeTag.Type, U32(0))),
            "other server" => ValidRequest(PublicKeyOf(NewKey())),
            "tags out of order" => SwapFirstTwoTags(ValidRequest(publicKey)),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };
        var responder = new RoughtimeResponder(publicKey, 4, 2048) { Delegation = RoughtimeDelegation.Create(longTerm, NewKey(), 0, ulong.MaxValue) };
        responder.Clear();
        byte[] good = ValidRequest(publicKey);
        byte[] goodBuffer = [.. good];
        Assert.Equal(expected, responder.Accept(0, bad));
        Assert.Equal(RoughtimeDrop.None, responder.Accept(1, goodBuffer));
        responder.Sign(1_800_000_000, 3);
        Assert.Equal(0, responder.WriteResponse(0, new byte[2048], out _));
        int length = responder.WriteResponse(1, goodBuffer, out _);
        Assert.Equal(RoughtimeRejection.None, RoughtimeClient.Verify(good, goodBuffer.AsSpan(0, length), publicKey, out _));
    }

    private static byte[] SwapFirstTwoTags(byte[] packet)
    {
        // VER and SRV: the tags array starts after the count and four offsets.
        Span<byte> tags = packet.AsSpan(12 + 4 + 16, 8);
        byte[] first = tags[..4].ToArray();
        tags[4..].CopyTo(tags);
        first.CopyTo(tags[4..]);
        return packet;
    }

    [Theory]
    [InlineData(0, 3u)]
    [InlineData(0.001, 3u)]
    [InlineData(2.49, 3u)]
    [InlineData(2.5, 4u)]
    [InlineData(100.2, 101u)]
    [InlineData(double.NaN, uint.MaxValue)]
    [InlineData(double.PositiveInfinity, uint.MaxValue)]
    public void Radius_CoversTheRoundedMidpointAndTheDistance_NeverBelowThree(double distance, uint radius)
    {
        Assert.Equal(radius, RoughtimeResponder.Radius(distance));
        // The true time lies within 0.5 s (rounding) + distance of MIDP: strictly inside the radius.
        Assert.True(double.IsNaN(distance) || 0.5 + distance < radius || radius == uint.MaxValue);
    }

    [Fact]
    public void Midpoint_IsTheServedTimeRoundedToTheSecond()
    {
        Assert.Equal(1_800_000_001UL, RoughtimeResponder.Midpoint(1_800_000_000_500_000_000));
        Assert.Equal(1_800_000_000UL, RoughtimeResponder.Midpoint(1_800_000_000_499_999_999));
        Assert.Equal(0UL, RoughtimeResponder.Midpoint(-5));
    }
}
