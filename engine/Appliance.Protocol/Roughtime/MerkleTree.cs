namespace Appliance.Protocol.Roughtime;

/// <summary>
/// The Merkle tree over one batch of requests (RFC 10049 §5.3): leaves H(0x00 ‖ request packet),
/// nodes H(0x01 ‖ left ‖ right). The RFC leaves a level of odd length to the server; here its last
/// node is paired with an all-zero node (as roughenough does), which no hash output is expected to
/// equal. Buffers are sized once for the largest batch; building and reading paths allocate nothing.
/// </summary>
public sealed class MerkleTree
{
    private const int H = RoughtimePacket.HashLength;

    private readonly byte[] _nodes;
    private readonly int[] _levelStart;
    private static readonly byte[] s_zero = new byte[H];
    private int _levels;

    /// <param name="capacity">The most leaves a batch has.</param>
    public MerkleTree(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        // Each level holds at most half the one below, rounded up: less than 2 × capacity + levels in all.
        int levels = 1;
        for (int n = capacity; n > 1; n = (n + 1) / 2)
        {
            levels++;
        }
        _nodes = new byte[((2 * capacity) + levels) * H];
        _levelStart = new int[levels + 1];
    }

    public int Capacity { get; }

    public int Count { get; private set; }

    /// <summary>The levels above the leaves: the length of every path, in hashes.</summary>
    public int Height => _levels - 1;

    /// <summary>Where leaf <paramref name="index"/> is written (before <see cref="Build"/>), 32 bytes.</summary>
    public Span<byte> Leaf(int index) => _nodes.AsSpan(index * H, H);

    /// <summary>Computes the leaf hash of <paramref name="requestPacket"/> into leaf <paramref name="index"/>.</summary>
    public void SetLeaf(int index, ReadOnlySpan<byte> requestPacket, Span<byte> scratch) =>
        RoughtimePacket.Hash(0x00, requestPacket, scratch, Leaf(index));

    /// <summary>Builds the levels above the first <paramref name="count"/> leaves.</summary>
    public void Build(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Capacity);
        Count = count;
        _levelStart[0] = 0;
        int level = 0;
        int width = count;
        while (width > 1)
        {
            int below = _levelStart[level];
            int above = below + width;
            int next = (width + 1) / 2;
            for (int i = 0; i < next; i++)
            {
                // The last node of an odd level is paired with 32 zero bytes.
                ReadOnlySpan<byte> right = (2 * i) + 1 < width ? Node(below, (2 * i) + 1) : s_zero;
                HashNode(Node(below, 2 * i), right, Node(above, i));
            }
            level++;
            _levelStart[level] = above;
            width = next;
        }
        _levels = level + 1;
    }

    public ReadOnlySpan<byte> Root => Node(_levelStart[_levels - 1], 0);

    /// <summary>Writes the path of leaf <paramref name="index"/> (<see cref="Height"/> hashes, leaf level first).</summary>
    public void WritePath(int index, Span<byte> destination)
    {
        int width = Count;
        for (int level = 0; level < _levels - 1; level++)
        {
            int sibling = index ^ 1;
            Span<byte> hash = destination.Slice(level * H, H);
            if (sibling < width)
            {
                Node(_levelStart[level], sibling).CopyTo(hash);
            }
            else
            {
                hash.Clear();
            }
            index >>= 1;
            width = (width + 1) / 2;
        }
    }

    /// <summary>An inner node (RFC 10049 §5.3): H(0x01 ‖ <paramref name="left"/> ‖ <paramref name="right"/>); <paramref name="destination"/> may be either child.</summary>
    public static void HashNode(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right, Span<byte> destination)
    {
        Span<byte> node = stackalloc byte[1 + (2 * H)];
        node[0] = 0x01;
        left.CopyTo(node[1..]);
        right.CopyTo(node[(1 + H)..]);
        RoughtimePacket.Hash(node, destination);
    }

    private Span<byte> Node(int levelStart, int i) => _nodes.AsSpan((levelStart + i) * H, H);
}
