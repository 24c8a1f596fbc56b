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
/// </summary>
internal sealed class NtsCodec : IRequestCodec
{
    private readonly Client[] _clients;
    private readonly byte[] _runPrefix = RandomNumberGenerator.GetBytes(16);
    private readonly byte[] _plaintext = new byte[2048];
    private readonly int _cookieLength;
    private long _cookiesReceived;
    private long _cookiesReused;
    private long _authFailures;

    private NtsCodec(Client[] clients)
    {
        _clients = clients;
        _cookieLength = clients[0].Cookies.Peek().Length;
        FixedRequestLength = NtpHeader.Length + (4 + 32) + (4 + _cookieLength) + (4 + 4 + NtsClientPacket.ClientNonceLength + AesSiv.TagLength);
    }

    public string Name => "nts";

    public int FixedRequestLength { get; }

    /// <summary>The NTP port the NTS-KE server pointed clients to (Port record), if any.</summary>
    public ushort? NegotiatedPort { get; private init; }

    /// <summary>One NTS-KE per client (sequentially: it is set-up, not the measurement).</summary>
    public static async Task<NtsCodec> CreateAsync(IPEndPoint ke, string name, X509Certificate2Collection? trust, int clients, CancellationToken token)
    {
        var list = new Client[clients];
        ushort? port = null;
        for (int i = 0; i < clients; i++)
        {
            NtsKeResult result = await NtsKeClient.ExchangeAsync(ke, name, trust, [AeadAlgorithm.AesSivCmac256], token);
            if (!result.Succeeded)
            {
                throw new InvalidOperationException($"NTS-KE with {ke} failed: {result.Error?.ToString() ?? "no cookies"}");
            }
            port = result.Port;
            list[i] = new Client(new AesSiv(result.C2S), new AesSiv(result.S2C), new Queue<byte[]>(result.Cookies));
        }
        return new NtsCodec(list) { NegotiatedPort = port };
    }

    public int WriteRequest(Span<byte> destination, int client, ulong transmit)
    {
        Client c = _clients[client % _clients.Length];
        byte[] cookie;
        if (c.Cookies.Count > 1)
        {
            cookie = c.Cookies.Dequeue();
        }
        else
        {
            // The pool ran dry (answers lost): spend the last cookie again rather than stop sending.
            cookie = c.Cookies.Peek();
            _cookiesReused++;
        }
        Span<byte> uid = stackalloc byte[32];
        Uid(uid, client, transmit);
        Span<byte> nonce = stackalloc byte[NtsClientPacket.ClientNonceLength];
        uid[..16].CopyTo(nonce);
        nonce[0] ^= 0x5A;
        return NtsClientPacket.WriteRequest(destination, transmit, uid, cookie, 0, nonce, c.C2S);
    }

    public CodecVerdict CheckResponse(ReadOnlySpan<byte> response, int client, ulong transmit, out string? reason)
    {
        Client c = _clients[client % _clients.Length];
        Span<byte> uid = stackalloc byte[32];
        Uid(uid, client, transmit);
        NtsResponseCheck check = NtsClientPacket.CheckResponse(response, uid, c.S2C, _plaintext, out int cookies, c.Add);
        _cookiesReceived += cookies;
        if (check != NtsResponseCheck.Authentic)
        {
            _authFailures++;
            reason = "nts_authenticator";
            return CodecVerdict.Invalid;
        }
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

    /// <summary>A Unique Identifier per request: a random run prefix, the request's transmit value, the client.</summary>
    private void Uid(Span<byte> uid, int client, ulong transmit)
    {
        _runPrefix.CopyTo(uid);
        BinaryPrimitives.WriteUInt64BigEndian(uid[16..], transmit);
        BinaryPrimitives.WriteInt32BigEndian(uid[24..], client);
        BinaryPrimitives.WriteInt32BigEndian(uid[28..], ~client);
    }

    private sealed class Client(AesSiv c2s, AesSiv s2c, Queue<byte[]> cookies)
    {
        public AesSiv C2S { get; } = c2s;
        public AesSiv S2C { get; } = s2c;
        public Queue<byte[]> Cookies { get; } = cookies;

        public void Add(ReadOnlySpan<byte> cookie)
        {
            if (Cookies.Count < 16)
            {
                Cookies.Enqueue(cookie.ToArray());
            }
        }
    }
}
