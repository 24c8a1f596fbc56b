using System.Buffers.Binary;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Sources;

namespace Appliance.LoadTest;

/// <summary>
/// NTS requests (RFC 8915 §5) for the load generator: every simulated client did its own NTS-KE and
/// keeps its own cookie pool; each request spends one cookie, carries a fresh Unique Identifier and an
/// authenticator, and every response's authenticator is verified with the client's S2C key; the
/// cookie inside goes back into the pool. NAKs arrive as KoD NTSN (the generator counts KoDs).
/// Batches of requests are sealed, and batches of responses opened, AesSivLanes.Width at a time
/// (<see cref="AesSivLanes"/>, as the server does): the generator must outrun the server it measures.
/// </summary>
internal sealed class NtsCodec : IRequestCodec
{
    private const int PlaintextRoom = 2048;
    private readonly Client[] _clients;
    private readonly byte[] _runPrefix = RandomNumberGenerator.GetBytes(16);
    private readonly byte[] _plaintext = new byte[AesSivLanes.Width * PlaintextRoom];
    private readonly AesSivLanes _lanes = new();
    private readonly int[] _laneResponse = new int[AesSivLanes.Width];
    private readonly int[] _laneClient = new int[AesSivLanes.Width];
    private long _cookiesReceived;
    private long _cookiesReused;
    private long _authFailures;

    private NtsCodec(Client[] clients)
    {
        _clients = clients;
        int cookieLength = clients[0].Cookies.Length;
        FixedRequestLength = NtpHeader.Length + (4 + 32) + (4 + cookieLength) + (4 + 4 + AeadAlgorithms.NonceLength(AeadAlgorithm.AesSivCmac256) + AeadAlgorithms.TagLength);
    }

    public string Name => "nts";

    public int FixedRequestLength { get; }

    /// <summary>The NTP port the NTS-KE server pointed clients to (Port record), if any.</summary>
    public ushort? NegotiatedPort { get; private init; }

    /// <summary>One NTS-KE per client (sequentially: it is set-up, not the measurement).</summary>
    public static async Task<NtsCodec> CreateAsync(IPEndPoint ke, string name, X509Certificate2Collection? trust, int clients, CancellationToken token)
    {
        var keys = new (byte[], byte[], IReadOnlyList<byte[]>)[clients];
        ushort? port = null;
        for (int i = 0; i < clients; i++)
        {
            NtsKeResult result = await NtsKeClient.ExchangeAsync(ke, name, trust, [AeadAlgorithm.AesSivCmac256], token);
            if (!result.Succeeded)
            {
                throw new InvalidOperationException($"NTS-KE with {ke} failed: {result.Error?.ToString() ?? "no cookies"}");
            }
            port = result.Port;
            keys[i] = (result.C2S, result.S2C, result.Cookies);
        }
        return FromKeys(keys, port);
    }

    /// <summary>Clients whose NTS-KE is done: each one's C2S and S2C keys (AEAD 15) and cookies.</summary>
    internal static NtsCodec FromKeys(IReadOnlyList<(byte[] C2S, byte[] S2C, IReadOnlyList<byte[]> Cookies)> clients, ushort? port = null) =>
        new([.. clients.Select(c => new Client(c.C2S, c.S2C, new CookiePool(c.Cookies)))]) { NegotiatedPort = port };

    public int WriteRequest(Span<byte> destination, int client, ulong transmit)
    {
        int length = WriteUnsealed(destination, client, transmit, out RequestAuthenticator auth, out Client c);
        c.C2S.Encrypt(auth.AssociatedData(destination), auth.Nonce(destination), [], auth.Tag(destination));
        return length;
    }

    public void WriteRequests(Span<byte> segments, int segmentSize, ReadOnlySpan<int> clients, ReadOnlySpan<ulong> transmits)
    {
        var batch = default(SivBatch);
        for (int i = 0; i < transmits.Length; i++)
        {
            Span<byte> packet = segments.Slice(i * segmentSize, segmentSize);
            WriteUnsealed(packet, clients[i], transmits[i], out RequestAuthenticator auth, out Client c);
            batch.Add(c.C2SKey, auth.AssociatedData(packet), auth.Nonce(packet), [], auth.Tag(packet));
            if (batch.IsFull)
            {
                _lanes.Seal(ref batch);
                batch.Clear();
            }
        }
        if (batch.Count > 0)
        {
            _lanes.Seal(ref batch);
        }
    }

    public CodecVerdict CheckResponse(ReadOnlySpan<byte> response, int client, ulong transmit, out string? reason)
    {
        Client c = ClientOf(client);
        Span<byte> uid = stackalloc byte[NtsClientPacket.UniqueIdentifierLength];
        Uid(uid, client, transmit);
        NtsResponseCheck check = NtsClientPacket.CheckResponse(response, uid, c.S2C, _plaintext, out int cookies, c.Cookies.Sink);
        return Verdict(check == NtsResponseCheck.Authentic ? cookies : -1, out reason);
    }

    public void CheckResponses(ResponseSet responses, Span<CodecVerdict> verdicts, Span<string?> reasons)
    {
        var batch = default(SivBatch);
        Span<byte> uid = stackalloc byte[NtsClientPacket.UniqueIdentifierLength];
        for (int i = 0; i < responses.Count; i++)
        {
            ReadOnlySpan<byte> response = responses.Response(i);
            Uid(uid, responses.Client(i), responses.Transmit(i));
            if (NtsClientPacket.ParseResponse(response, uid, PlaintextRoom, out ResponseAuthenticator auth) != NtsResponseCheck.Authentic)
            {
                verdicts[i] = Verdict(-1, out reasons[i]);
                continue;
            }
            int lane = batch.Count;
            _laneResponse[lane] = i;
            _laneClient[lane] = responses.Client(i);
            batch.Add(ClientOf(responses.Client(i)).S2CKey, auth.AssociatedData(response), auth.Nonce(response), auth.Ciphertext(response),
                _plaintext.AsSpan(lane * PlaintextRoom, auth.PlaintextLength));
            if (batch.IsFull)
            {
                Open(ref batch, verdicts, reasons);
            }
        }
        if (batch.Count > 0)
        {
            Open(ref batch, verdicts, reasons);
        }
    }

    /// <summary>Verifies a batch of responses side by side and takes the cookies of the authentic ones.</summary>
    private void Open(scoped ref SivBatch batch, Span<CodecVerdict> verdicts, Span<string?> reasons)
    {
        _lanes.Open(ref batch);
        for (int lane = 0; lane < batch.Count; lane++)
        {
            SivOperation op = batch[lane];
            int cookies = op.Authentic ? NtsClientPacket.ReadCookies(op.Output, ClientOf(_laneClient[lane]).Cookies.Sink) : -1;
            verdicts[_laneResponse[lane]] = Verdict(cookies, out reasons[_laneResponse[lane]]);
        }
        batch.Clear();
    }

    /// <summary>Counts a checked response: <paramref name="cookies"/> received, or -1 when it did not authenticate.</summary>
    private CodecVerdict Verdict(int cookies, out string? reason)
    {
        if (cookies < 0)
        {
            _authFailures++;
            reason = "nts_authenticator";
            return CodecVerdict.Invalid;
        }
        _cookiesReceived += cookies;
        reason = null;
        return CodecVerdict.Ok;
    }

    public Dictionary<string, long> TakeCounts()
    {
        var counts = new Dictionary<string, long>
        {
            ["cookies_received"] = _cookiesReceived,
            ["cookies_reused"] = _cookiesReused,
            ["authenticator_failures"] = _authFailures,
        };
        _cookiesReceived = _cookiesReused = _authFailures = 0;
        return counts;
    }

    private Client ClientOf(int client) => _clients[client % _clients.Length];

    /// <summary>A request with its cookie, Unique Identifier and nonce, all but the authenticator's tag.</summary>
    private int WriteUnsealed(Span<byte> packet, int client, ulong transmit, out RequestAuthenticator auth, out Client c)
    {
        c = ClientOf(client);
        ReadOnlySpan<byte> cookie = c.Cookies.Next(out bool reused);
        if (reused)
        {
            _cookiesReused++;
        }
        Span<byte> uid = stackalloc byte[NtsClientPacket.UniqueIdentifierLength];
        Uid(uid, client, transmit);
        Span<byte> nonce = stackalloc byte[AeadAlgorithms.MaxNonceLength];
        uid[..16].CopyTo(nonce);
        nonce[0] ^= 0x5A;
        return NtsClientPacket.WriteUnsealedRequest(packet, transmit, uid, cookie, 0, AeadAlgorithm.AesSivCmac256, nonce, out auth);
    }

    /// <summary>A Unique Identifier per request: a random run prefix, the request's transmit value, the client.</summary>
    private void Uid(Span<byte> uid, int client, ulong transmit)
    {
        _runPrefix.CopyTo(uid);
        BinaryPrimitives.WriteUInt64BigEndian(uid[16..], transmit);
        BinaryPrimitives.WriteInt32BigEndian(uid[24..], client);
        BinaryPrimitives.WriteInt32BigEndian(uid[28..], ~client);
    }

    private sealed class Client(byte[] c2s, byte[] s2c, CookiePool cookies)
    {
        public byte[] C2SKey { get; } = c2s;
        public byte[] S2CKey { get; } = s2c;
        public AesSiv C2S { get; } = new(c2s);
        public AesSiv S2C { get; } = new(s2c);
        public CookiePool Cookies { get; } = cookies;
    }

    /// <summary>
    /// A client's unused cookies (each is sent once, RFC 8915 §5.7) in buffers kept for the run: taking
    /// the cookies of a response allocates nothing.
    /// </summary>
    private sealed class CookiePool
    {
        private const int Capacity = 16;
        private readonly byte[][] _slots;
        private int _head;
        private int _count;

        public CookiePool(IReadOnlyList<byte[]> initial)
        {
            int length = initial[0].Length;
            _slots = [.. Enumerable.Range(0, Capacity).Select(_ => new byte[length])];
            foreach (byte[] cookie in initial)
            {
                Add(cookie);
            }
            Sink = Add;
        }

        public int Length => _slots[0].Length;

        /// <summary><see cref="Add"/> as a delegate made once.</summary>
        public CookieSink Sink { get; }

        /// <summary>
        /// The next unused cookie, valid until the next <see cref="Add"/>. When only one is left (answers
        /// were lost) it is spent again rather than the client falling silent: <paramref name="reused"/>.
        /// </summary>
        public ReadOnlySpan<byte> Next(out bool reused)
        {
            byte[] cookie = _slots[_head];
            reused = _count <= 1;
            if (!reused)
            {
                _head = (_head + 1) % Capacity;
                _count--;
            }
            return cookie;
        }

        public void Add(ReadOnlySpan<byte> cookie)
        {
            if (_count < Capacity && cookie.Length == Length)
            {
                cookie.CopyTo(_slots[(_head + _count) % Capacity]);
                _count++;
            }
        }
    }
}
