using System.Buffers.Binary;

namespace Appliance.Protocol.Roughtime;

/// <summary>Why a request got no answer (RFC 10049 §5.2: "No mechanism for reporting errors … is provided").</summary>
public enum RoughtimeDrop
{
    None,

    /// <summary>Not a ROUGHTIM packet, or its length field disagrees with the datagram.</summary>
    Framing,

    /// <summary>A request message shorter than 1024 bytes: answering could amplify (§5.1, §9.7).</summary>
    TooShort,

    /// <summary>A malformed message, or VER, NONC or TYPE missing or malformed (§5.1).</summary>
    Malformed,

    /// <summary>None of the versions offered is one served here (§5.1.1).</summary>
    Version,

    /// <summary>SRV names another server's key (§5.2).</summary>
    OtherServer,

    /// <summary>The batch was not signed: no delegation, or MIDP outside its MINT..MAXT (§5.2.6).</summary>
    NotSigned,

    /// <summary>The answer would be larger than the request (§5.1, §9.7).</summary>
    TooLarge,
}

/// <summary>
/// Answers one received batch of Roughtime requests with one signature per version (RFC 10049 §5.3):
/// <see cref="Accept"/> each request (its leaf into that version's Merkle tree, its nonce kept),
/// <see cref="Sign"/> once (each tree's root into an SREP, signed with the online key), then
/// <see cref="WriteResponse"/> each accepted request, in place over its request if need be. Every
/// response is signed "RoughTime …" (<see cref="RoughtimeContext"/>). Sans-IO:
/// time, radius and keys are handed in; nothing allocates after construction.
/// </summary>
public sealed class RoughtimeResponder
{
    /// <summary>The versions served, ascending: VERS (§5.2.5).</summary>
    public static ReadOnlySpan<uint> Versions => [RoughtimeVersion.Rfc, RoughtimeVersion.Draft];

    /// <summary>RFC 10049 §5.2.5: "Servers that do not have any leap second information SHOULD set the value of RADI to at least 3."</summary>
    public const uint MinRadiusSeconds = 3;

    private const int H = RoughtimePacket.HashLength;

    /// <summary>SREP: a header of 5 tags, VER 4, RADI 4, MIDP 8, VERS 4 × versions, ROOT 32.</summary>
    private static readonly int s_srepLength = RoughtimeMessage.Length([4, 4, 8, 4 * Versions.Length, H]);

    private readonly byte[] _serverId = new byte[H];
    private readonly MerkleTree[] _trees;
    private readonly int[] _treeCount;
    private readonly byte[][] _sreps;
    private readonly byte[][] _signatures;
    private readonly byte[] _nonces;
    private readonly int[] _slotVersion;
    private readonly int[] _slotLeaf;
    private readonly int[] _slotLength;
    private readonly bool[] _signed = new bool[2];
    private RoughtimeDelegation? _signedWith;
    private readonly byte[] _scratch;

    /// <param name="longTermPublicKey">The long-term public key (32 bytes): its SRV is what requests may name.</param>
    /// <param name="capacity">The most requests in a batch.</param>
    /// <param name="maxPacket">The largest request packet accepted (the batch's slot size).</param>
    public RoughtimeResponder(ReadOnlySpan<byte> longTermPublicKey, int capacity, int maxPacket)
    {
        RoughtimePacket.ServerId(longTermPublicKey, _serverId);
        _trees = [new MerkleTree(capacity), new MerkleTree(capacity)];
        _treeCount = new int[Versions.Length];
        _sreps = [new byte[s_srepLength], new byte[s_srepLength]];
        _signatures = [new byte[64], new byte[64]];
        _nonces = new byte[capacity * H];
        _slotVersion = new int[capacity];
        _slotLeaf = new int[capacity];
        _slotLength = new int[capacity];
        Array.Fill(_slotVersion, -1);
        _scratch = new byte[maxPacket + 1];
    }

    /// <summary>The online key's delegation; set before <see cref="Sign"/> (a rotation swaps it between batches).</summary>
    public RoughtimeDelegation? Delegation { get; set; }

    /// <summary>SREPs the last <see cref="Sign"/> signed: one per version the batch's requests asked for.</summary>
    public int Signatures { get; private set; }

    /// <summary>Starts a new batch.</summary>
    public void Clear()
    {
        Signatures = 0;
        Array.Clear(_treeCount);
        Array.Clear(_signed);
        Array.Fill(_slotVersion, -1);
        _signedWith = null;
    }

    /// <summary>Checks the request in <paramref name="packet"/> (slot <paramref name="slot"/>) and adds its leaf; a drop reason otherwise.</summary>
    public RoughtimeDrop Accept(int slot, ReadOnlySpan<byte> packet)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)slot, (uint)_slotVersion.Length, nameof(slot));
        if (_slotVersion[slot] >= 0)
        {
            throw new InvalidOperationException($"slot {slot} was accepted already in this batch: Clear() between batches");
        }
        if (!RoughtimePacket.TryUnwrap(packet, out ReadOnlySpan<byte> body))
        {
            return RoughtimeDrop.Framing;
        }
        if (body.Length < RoughtimePacket.MinRequestMessage)
        {
            return RoughtimeDrop.TooShort;
        }
        if (packet.Length + 1 > _scratch.Length || !RoughtimeMessage.TryParse(body, out RoughtimeMessage request)
            || !request.TryGet(RoughtimeTag.Ver, out ReadOnlySpan<byte> offered)
            || !request.TryGet(RoughtimeTag.Nonc, out ReadOnlySpan<byte> nonce) || nonce.Length != H
            || !request.TryGetUInt32(RoughtimeTag.Type, out uint type) || type != 0)
        {
            return RoughtimeDrop.Malformed;
        }
        int version = PickVersion(offered);
        if (version == -2)
        {
            return RoughtimeDrop.Malformed;
        }
        if (version < 0)
        {
            return RoughtimeDrop.Version;
        }
        if (request.TryGet(RoughtimeTag.Srv, out ReadOnlySpan<byte> srv) && !srv.SequenceEqual(_serverId))
        {
            return RoughtimeDrop.OtherServer;
        }
        nonce.CopyTo(_nonces.AsSpan(slot * H, H));
        int leaf = _treeCount[version]++;
        _trees[version].SetLeaf(leaf, packet, _scratch);
        _slotVersion[slot] = version;
        _slotLeaf[slot] = leaf;
        _slotLength[slot] = packet.Length;
        return RoughtimeDrop.None;
    }

    /// <summary>
    /// The index in <see cref="Versions"/> of the version to answer with: version 1 when offered,
    /// else the draft's; −1 when neither is; −2 for a VER that breaks §5.1.1 (not 1 to 32 versions
    /// in ascending order without repeats). Unknown versions are ignored, as the RFC requires.
    /// </summary>
    private static int PickVersion(ReadOnlySpan<byte> offered)
    {
        if (offered.Length == 0 || offered.Length % 4 != 0 || offered.Length > 4 * 32)
        {
            return -2;
        }
        int picked = -1;
        uint previous = 0;
        for (int i = 0; i < offered.Length; i += 4)
        {
            uint v = BinaryPrimitives.ReadUInt32LittleEndian(offered[i..]);
            if (i > 0 && v <= previous)
            {
                return -2;
            }
            previous = v;
            if (v == RoughtimeVersion.Rfc)
            {
                picked = 0;
            }
            else if (v == RoughtimeVersion.Draft && picked < 0)
            {
                picked = 1;
            }
        }
        return picked;
    }

    /// <summary>
    /// Builds each version's tree and signs its SREP: MIDP <paramref name="midpointSeconds"/> (Unix
    /// seconds, the served time rounded), RADI <paramref name="radiusSeconds"/> (see <see cref="Radius"/>),
    /// with the <see cref="Delegation"/> in force now. Signs nothing, and returns false, without a
    /// delegation or when MIDP is outside its MINT..MAXT: clients would reject every answer (§5.2.6).
    /// </summary>
    public bool Sign(ulong midpointSeconds, uint radiusSeconds)
    {
        RoughtimeDelegation? delegation = Delegation;
        if (delegation is null || !delegation.Covers(midpointSeconds))
        {
            return false;
        }
        _signedWith = delegation;
        for (int v = 0; v < Versions.Length; v++)
        {
            if (_treeCount[v] == 0)
            {
                continue;
            }
            MerkleTree tree = _trees[v];
            tree.Build(_treeCount[v]);
            Span<byte> srep = _sreps[v];
            int at = RoughtimeMessage.WriteHeader(srep,
                [RoughtimeTag.Ver, RoughtimeTag.Radi, RoughtimeTag.Midp, RoughtimeTag.Vers, RoughtimeTag.Root],
                [4, 4, 8, 4 * Versions.Length, H]);
            BinaryPrimitives.WriteUInt32LittleEndian(srep[at..], Versions[v]);
            BinaryPrimitives.WriteUInt32LittleEndian(srep[(at + 4)..], Math.Max(MinRadiusSeconds, radiusSeconds));
            BinaryPrimitives.WriteUInt64LittleEndian(srep[(at + 8)..], midpointSeconds);
            for (int i = 0; i < Versions.Length; i++)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(srep[(at + 16 + (4 * i))..], Versions[i]);
            }
            tree.Root.CopyTo(srep[(at + 16 + (4 * Versions.Length))..]);
            RoughtimeDelegation.Sign(delegation.OnlineKey, RoughtimeContext.Response, srep, _signatures[v]);
            _signed[v] = true;
            Signatures++;
        }
        return true;
    }

    /// <summary>
    /// Writes the response to the request accepted in <paramref name="slot"/> into
    /// <paramref name="destination"/> (which may be that request's own buffer); returns its length, or
    /// 0 with <paramref name="drop"/> set when the slot was not accepted, the batch not signed, or the
    /// answer would be larger than the request (§9.7) or the destination.
    /// </summary>
    public int WriteResponse(int slot, Span<byte> destination, out RoughtimeDrop drop)
    {
        int v = _slotVersion[slot];
        drop = RoughtimeDrop.None;
        if (v < 0)
        {
            drop = RoughtimeDrop.Malformed;
            return 0;
        }
        if (!_signed[v] || _signedWith is not { } delegation)
        {
            drop = RoughtimeDrop.NotSigned;
            return 0;
        }
        MerkleTree tree = _trees[v];
        int pathLength = tree.Height * H;
        ReadOnlySpan<byte> cert = delegation.Cert;
        ReadOnlySpan<int> lengths = [64, H, 4, pathLength, s_srepLength, cert.Length, 4];
        int message = RoughtimeMessage.Length(lengths);
        int total = RoughtimePacket.HeaderLength + message;
        if (total > _slotLength[slot] || total > destination.Length)
        {
            drop = RoughtimeDrop.TooLarge;
            return 0;
        }
        RoughtimePacket.WriteHeader(destination, message);
        Span<byte> body = destination[RoughtimePacket.HeaderLength..total];
        int at = RoughtimeMessage.WriteHeader(body,
            [RoughtimeTag.Sig, RoughtimeTag.Nonc, RoughtimeTag.Type, RoughtimeTag.Path, RoughtimeTag.Srep, RoughtimeTag.Cert, RoughtimeTag.Indx], lengths);
        _signatures[v].CopyTo(body[at..]);
        at += 64;
        _nonces.AsSpan(slot * H, H).CopyTo(body[at..]);
        at += H;
        BinaryPrimitives.WriteUInt32LittleEndian(body[at..], 1); // TYPE: a response (§5.2.3)
        at += 4;
        tree.WritePath(_slotLeaf[slot], body.Slice(at, pathLength));
        at += pathLength;
        _sreps[v].CopyTo(body[at..]);
        at += s_srepLength;
        cert.CopyTo(body[at..]);
        at += cert.Length;
        BinaryPrimitives.WriteUInt32LittleEndian(body[at..], (uint)_slotLeaf[slot]);
        return total;
    }

    /// <summary>
    /// RADI for a served time whose error is bounded by <paramref name="rootDistanceSeconds"/>
    /// (root delay / 2 + root dispersion, RFC 5905 §11.2.3): MIDP is that time rounded to the second,
    /// so the true time is within 0.5 s + the distance of it, and RADI (whole seconds, the interval
    /// open, §5.2.5) is the next whole second above; never below <see cref="MinRadiusSeconds"/>.
    /// </summary>
    public static uint Radius(double rootDistanceSeconds)
    {
        if (!(rootDistanceSeconds < uint.MaxValue))
        {
            return uint.MaxValue; // NaN or beyond: no claim at all, never a tight one
        }
        double bound = Math.Floor(0.5 + Math.Max(0, rootDistanceSeconds)) + 1;
        return bound >= uint.MaxValue ? uint.MaxValue : Math.Max(MinRadiusSeconds, (uint)bound);
    }

    /// <summary>MIDP for served time <paramref name="servedUnixNanoseconds"/>: Unix seconds, rounded to the nearest (0 before 1970).</summary>
    public static ulong Midpoint(long servedUnixNanoseconds) =>
        servedUnixNanoseconds <= 0 ? 0 : (ulong)((servedUnixNanoseconds + 500_000_000) / 1_000_000_000);

    /// <summary>The size of a response with a path of <paramref name="height"/> hashes.</summary>
    public static int ResponseLength(int height) =>
        RoughtimePacket.HeaderLength + RoughtimeMessage.Length([64, H, 4, height * H, s_srepLength, RoughtimeDelegation.CertLength, 4]);
}
