using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Appliance.Protocol.Crypto;

namespace Appliance.Protocol.Nts;

/// <summary>Up to <see cref="AesSivLanes.Width"/> NTS requests of a batch, handled together by <see cref="NtsPacketHandler"/>: each one's slot and buffer.</summary>
public ref struct NtsGroup
{
#pragma warning disable CS0649 // written through its indexer in Add, which the compiler does not count
    private Lanes<Span<byte>> _buffers;
#pragma warning restore CS0649
    private Slots _slots;

    public int Count { get; private set; }

    public readonly bool IsFull => Count == AesSivLanes.Width;

    public void Add(int slot, Span<byte> buffer)
    {
        if (IsFull)
        {
            throw new InvalidOperationException($"a group holds {AesSivLanes.Width} requests");
        }
        _buffers[Count] = buffer;
        _slots[Count++] = slot;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly int Slot(int member) => _slots[Checked(member)];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly Span<byte> Buffer(int member) => _buffers[Checked(member)];

    public void Clear() => Count = 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private readonly int Checked(int member) =>
        (uint)member < (uint)Count ? member : throw new ArgumentOutOfRangeException(nameof(member));

    [InlineArray(AesSivLanes.Width)]
    private struct Slots
    {
        private int _first;
    }
}

/// <summary>
/// NTS on the NTP path (RFC 8915 §5), in three phases per batch so that the AES-SIV work of a group
/// of <see cref="AesSivLanes.Width"/> requests runs side by side (<see cref="AesSivLanes"/>):
/// <see cref="Accept"/> checks one request's fields as it is read; <see cref="Answer"/> opens a group's
/// cookies, verifies their authenticators with the C2S keys and writes the responses with fresh
/// cookies (one per cookie and placeholder that fits: a response is never larger than its request);
/// after the transmit timestamps are in, <see cref="Seal"/> encrypts them with the S2C keys.
/// An unusable cookie gets an NTS NAK (KoD NTSN, §5.7). One instance per worker, sized for its
/// batch: it owns the per-slot keys and scratch, and allocates nothing per request. On a CPU without
/// AES-NI the same phases run each AES-SIV operation alone on the reference <see cref="AesSiv"/>
/// (the platform's AES; see <see cref="AesSivPath"/>): the same bytes, slower, and its re-keying
/// per request allocates. Sessions on AES-128-GCM-SIV (AEAD 30, RFC 8452) verify and seal one at a
/// time on <see cref="AesGcmSiv"/>, re-keyed per request (in place on AES-NI with PCLMULQDQ): its
/// key derivation and CTR blocks are independent AES calls the CPU already overlaps, and its cookies
/// are opened and sealed with everyone else's, on the lanes.
/// </summary>
public sealed class NtsPacketHandler
{
    private const int MaxUniqueIdentifierField = 4 + 256;
    private const int KeyRoom = 64;
    private const int PlaintextRoom = 2048;

    /// <summary>A lane number meaning "verified on its own, not in the batch" (GCM-SIV).</summary>
    private const int Direct = int.MaxValue;

    private readonly IRandomSource _random;

    // The lanes, or (no AES-NI) the reference cipher one operation at a time: one instance for the
    // server's cookie keys, which stay, and one for the clients' C2S and S2C keys, which change per request.
    private readonly AesSivLanes? _lanes;
    private readonly OneAtATime? _cookieCipher;
    private readonly OneAtATime? _sessionCipher;
    private readonly AesGcmSiv _gcmSiv;
    private readonly Request[] _requests;
    private readonly byte[] _c2s;
    private readonly byte[] _s2c;
    private readonly byte[] _plaintext = new byte[AesSivLanes.Width * PlaintextRoom];

    public NtsPacketHandler(CookieKeyRingCell keys, IRandomSource random, int capacity = 1)
        : this(keys, random, capacity, useLanes: AesSivLanes.IsSupported)
    {
    }

    /// <param name="useLanes">False: the reference path, as on a CPU without AES-NI (tests compare the two).</param>
    internal NtsPacketHandler(CookieKeyRingCell keys, IRandomSource random, int capacity, bool useLanes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Keys = keys;
        _random = random;
        _requests = new Request[capacity];
        _c2s = new byte[capacity * KeyRoom];
        _s2c = new byte[capacity * KeyRoom];
        if (useLanes)
        {
            _lanes = new AesSivLanes();
        }
        else
        {
            _cookieCipher = new OneAtATime();
            _sessionCipher = new OneAtATime();
        }
        _gcmSiv = new AesGcmSiv(new byte[AesGcmSiv.KeyLength], hardware: useLanes);
    }

    /// <summary>What handlers made by the public constructor run their AES-SIV on: for the start-up log.</summary>
    public static string AesSivPath => (AesSivLanes.IsSupported
        ? $"AES-SIV on AES-NI, {AesSivLanes.Width} requests side by side"
        : "AES-SIV on the platform's AES (OpenSSL), one request at a time: this CPU has no AES-NI")
        + (AesGcmSiv.IsHardwareAccelerated
            ? "; AES-128-GCM-SIV on AES-NI and PCLMULQDQ"
            : "; AES-128-GCM-SIV on the platform's AES and a software POLYVAL: this CPU lacks AES-NI or PCLMULQDQ");

    /// <summary>Whether this handler runs the lanes (else the reference cipher, one operation at a time).</summary>
    public bool UsesLanes => _lanes is not null;

    public CookieKeyRingCell Keys { get; }

    /// <summary>How many requests one batch may hold.</summary>
    public int Capacity => _requests.Length;

    /// <summary>True when the extension fields carry an NTS request (a Unique Identifier, a cookie or an authenticator).</summary>
    public static bool LooksLikeNts(ReadOnlySpan<byte> fields)
    {
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (field.Type is NtsExtensionField.UniqueIdentifier or NtsExtensionField.Cookie or NtsExtensionField.Authenticator)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Phase one, for the request in <paramref name="buffer"/> (batch slot <paramref name="slot"/>):
    /// the fields as RFC 8915 §5.7 requires them, or a drop. On <see cref="ResponseAction.Deferred"/>
    /// the request waits, untouched, for <see cref="Answer"/>.
    /// </summary>
    internal Outcome Accept(int slot, ReadOnlySpan<byte> buffer, int requestLength, ExtensionLayout layout, byte version, sbyte poll,
        NtpTimestamp clientTransmit, in RequestContext context, ResponseReason answered)
    {
        if (Keys.Current is null || layout.HasMac)
        {
            return Outcome.Drop(ResponseReason.NtsMalformed, nts: true);
        }

        // Exactly one Unique Identifier and one cookie, the authenticator last.
        ReadOnlySpan<byte> fields = buffer.Slice(NtpHeader.Length, layout.FieldsLength);
        int uidOffset = -1, uidLength = 0, uids = 0, cookies = 0, placeholders = 0, authenticators = 0;
        int cookieOffset = 0, cookieLength = 0, authOffset = -1, authLength = 0, lastFieldEnd = 0;
        foreach (ExtensionField field in ExtensionFields.Enumerate(fields))
        {
            if (authenticators > 0)
            {
                return Outcome.Drop(ResponseReason.NtsMalformed, nts: true); // something after the authenticator
            }
            switch (field.Type)
            {
                case NtsExtensionField.UniqueIdentifier:
                    uids++;
                    uidOffset = NtpHeader.Length + field.Offset;
                    uidLength = field.Length;
                    break;
                case NtsExtensionField.Cookie:
                    cookies++;
                    cookieOffset = NtpHeader.Length + field.Offset + ExtensionFields.HeaderLength;
                    cookieLength = field.Length - ExtensionFields.HeaderLength;
                    break;
                case NtsExtensionField.CookiePlaceholder:
                    placeholders++;
                    break;
                case NtsExtensionField.Authenticator:
                    authenticators++;
                    authOffset = NtpHeader.Length + field.Offset;
                    authLength = field.Length;
                    break;
            }
            lastFieldEnd = field.Offset + field.Length;
        }
        if (uids != 1 || cookies != 1 || authenticators != 1 || lastFieldEnd != layout.FieldsLength
            || uidLength - ExtensionFields.HeaderLength < NtsExtensionField.MinUniqueIdentifierLength || uidLength > MaxUniqueIdentifierField)
        {
            return Outcome.Drop(ResponseReason.NtsMalformed, nts: true);
        }

        // Authenticator body (§5.6): nonce length, ciphertext length, nonce, ciphertext (each padded to 4).
        ReadOnlySpan<byte> auth = buffer.Slice(authOffset + ExtensionFields.HeaderLength, authLength - ExtensionFields.HeaderLength);
        int nonceLength = BinaryPrimitives.ReadUInt16BigEndian(auth);
        int ciphertextLength = BinaryPrimitives.ReadUInt16BigEndian(auth[2..]);
        int noncePadded = (nonceLength + 3) & ~3;
        int ciphertextPadded = (ciphertextLength + 3) & ~3;
        if (nonceLength == 0 || ciphertextLength < AeadAlgorithms.TagLength || 4 + noncePadded + ciphertextPadded > auth.Length
            || ciphertextLength - AeadAlgorithms.TagLength > PlaintextRoom)
        {
            return Outcome.Drop(ResponseReason.NtsMalformed, nts: true);
        }
        int bodyOffset = authOffset + ExtensionFields.HeaderLength + 4;
        _requests[slot] = new Request
        {
            Length = requestLength,
            UidOffset = uidOffset,
            UidLength = uidLength,
            CookieOffset = cookieOffset,
            CookieLength = cookieLength,
            Placeholders = placeholders,
            AuthenticatorOffset = authOffset,
            NonceOffset = bodyOffset,
            NonceLength = nonceLength,
            NonceRoom = auth.Length - 4 - ciphertextPadded,
            CiphertextOffset = bodyOffset + noncePadded,
            CiphertextLength = ciphertextLength,
            Version = version,
            Poll = poll,
            ClientTransmit = clientTransmit,
            Context = context,
            Answered = answered,
        };
        return new Outcome(ResponseAction.Deferred, answered, Nts: true);
    }

    /// <summary>
    /// Phase two, for a group of accepted requests: opens their cookies, verifies their
    /// authenticators, and writes each response over its request, all but the transmit timestamp
    /// and the ciphertext. Then <see cref="Result"/> tells each slot's outcome and response length.
    /// </summary>
    public void Answer(scoped ref NtsGroup group, ServerState state)
    {
        CookieKeyRing? ring = Keys.Current;
        Span<int> lanes = stackalloc int[AesSivLanes.Width];
        var siv = default(SivBatch);

        // Cookies (RFC 8915 §6), all under the server's own keys.
        for (int m = 0; m < group.Count; m++)
        {
            ref Request r = ref _requests[group.Slot(m)];
            Span<byte> buffer = group.Buffer(m);
            ReadOnlySpan<byte> cookie = buffer.Slice(r.CookieOffset, r.CookieLength);
            CookieKey? key = null;
            CookieFailure failure = ring is null ? CookieFailure.UnknownKey : NtsCookie.Find(ring, cookie, out key);
            lanes[m] = -1;
            if (failure != CookieFailure.None)
            {
                Nak(ref r, buffer, failure);
                continue;
            }
            ReadOnlySpan<byte> sealedPart = cookie[NtsCookie.SealedOffset..];
            lanes[m] = siv.Add(key!.Key, cookie[..4], cookie.Slice(4, NtsCookie.NonceLength), sealedPart,
                Scratch(siv.Count)[..(sealedPart.Length - AesSiv.TagLength)]);
        }
        Run(ref siv, open: true, _cookieCipher);
        for (int m = 0; m < group.Count; m++)
        {
            if (lanes[m] < 0)
            {
                continue;
            }
            int slot = group.Slot(m);
            ref Request r = ref _requests[slot];
            ref SivOperation op = ref siv[lanes[m]];
            CookieFailure failure = op.Authentic ? NtsCookie.Unpack(op.Output, C2S(slot), S2C(slot), out r.Aead) : CookieFailure.Invalid;
            op.Output.Clear();
            if (failure != CookieFailure.None)
            {
                Nak(ref r, group.Buffer(m), failure);
                lanes[m] = -1;
            }
        }

        // Authenticators (§5.6): the session's AEAD with the C2S key over everything before the field,
        // AES-SIV in the batch, GCM-SIV at once; a nonce the AEAD does not take is dropped unread.
        siv.Clear();
        Span<bool> verified = stackalloc bool[AesSivLanes.Width];
        for (int m = 0; m < group.Count; m++)
        {
            if (lanes[m] < 0)
            {
                continue;
            }
            int slot = group.Slot(m);
            ref Request r = ref _requests[slot];
            Span<byte> buffer = group.Buffer(m);
            ReadOnlySpan<byte> key = C2S(slot)[..AeadAlgorithms.KeyLength(r.Aead)];
            ReadOnlySpan<byte> nonce = buffer.Slice(r.NonceOffset, r.NonceLength);
            ReadOnlySpan<byte> ciphertext = buffer.Slice(r.CiphertextOffset, r.CiphertextLength);
            Span<byte> plaintext = Scratch(siv.Count)[..(r.CiphertextLength - AeadAlgorithms.TagLength)];
            if (!AeadAlgorithms.AcceptsNonce(r.Aead, r.NonceLength, r.NonceRoom))
            {
                r.Outcome = Outcome.Drop(ResponseReason.NtsMalformed, nts: true);
                r.ResponseLength = 0;
                C2S(slot).Clear();
                S2C(slot).Clear();
                lanes[m] = -1;
            }
            else if (r.Aead == AeadAlgorithm.Aes128GcmSiv)
            {
                _gcmSiv.SetKey(key);
                verified[m] = _gcmSiv.Decrypt(buffer[..r.AuthenticatorOffset], nonce, ciphertext, plaintext);
                plaintext.Clear();
                lanes[m] = Direct;
            }
            else
            {
                lanes[m] = siv.Add(key, buffer[..r.AuthenticatorOffset], nonce, ciphertext, plaintext);
            }
        }
        Run(ref siv, open: true, _sessionCipher);

        // Responses, and the fresh cookies in them a batch at a time.
        var cookies = default(SivBatch);
        for (int m = 0; m < group.Count; m++)
        {
            int slot = group.Slot(m);
            if (lanes[m] < 0)
            {
                continue;
            }
            ref Request r = ref _requests[slot];
            if (!(lanes[m] == Direct ? verified[m] : siv[lanes[m]].Authentic))
            {
                r.Outcome = Outcome.Drop(ResponseReason.NtsBadAuthenticator, nts: true);
                r.ResponseLength = 0;
                S2C(slot).Clear();
            }
            else
            {
                Respond(ref r, slot, group.Buffer(m), state, ring!.Current, ref cookies);
            }
            C2S(slot).Clear();
        }
        SealCookies(ref cookies);
    }

    /// <summary>What <see cref="Answer"/> decided for a slot: the outcome and the response length (0: nothing to send).</summary>
    public (Outcome Outcome, int ResponseLength) Result(int slot) => (_requests[slot].Outcome, _requests[slot].ResponseLength);

    /// <summary>Fresh cookies placed in a slot's response.</summary>
    public int Cookies(int slot) => _requests[slot].NewCookies;

    /// <summary>
    /// Phase three, for a group of answered responses whose transmit timestamps are in: encrypts the
    /// new cookies in place and writes the tag, with the S2C key and the response up to the
    /// authenticator as associated data (RFC 8915 §5.6): AES-SIV in the batch, GCM-SIV at once.
    /// </summary>
    public void Seal(scoped ref NtsGroup group)
    {
        var siv = default(SivBatch);
        for (int m = 0; m < group.Count; m++)
        {
            int slot = group.Slot(m);
            ref readonly Request r = ref _requests[slot];
            Span<byte> response = group.Buffer(m);
            Span<byte> sealedPart = response.Slice(r.SealedOffset, AeadAlgorithms.TagLength + r.PlaintextLength);
            ReadOnlySpan<byte> key = S2C(slot)[..AeadAlgorithms.KeyLength(r.Aead)];
            ReadOnlySpan<byte> nonce = response.Slice(r.ServerNonceOffset, AeadAlgorithms.NonceLength(r.Aead));
            ReadOnlySpan<byte> plaintext = sealedPart.Slice(AeadAlgorithms.PlaintextOffset(r.Aead), r.PlaintextLength);
            if (r.Aead == AeadAlgorithm.Aes128GcmSiv)
            {
                _gcmSiv.SetKey(key);
                _gcmSiv.Encrypt(response[..r.AssociatedDataLength], nonce, plaintext, sealedPart);
            }
            else
            {
                siv.Add(key, response[..r.AssociatedDataLength], nonce, plaintext, sealedPart);
            }
        }
        Run(ref siv, open: false, _sessionCipher);
        for (int m = 0; m < group.Count; m++)
        {
            S2C(group.Slot(m)).Clear();
        }
    }

    private void Respond(ref Request r, int slot, Span<byte> buffer, ServerState state, CookieKey cookieKey, ref SivBatch cookies)
    {
        // How many fresh cookies fit without making the response longer than the request.
        int cookieLength = NtsCookie.Length(r.Aead);
        int cookieField = ExtensionFields.HeaderLength + cookieLength;
        int nonceLength = AeadAlgorithms.NonceLength(r.Aead);
        int authenticatorFixed = ExtensionFields.HeaderLength + 4 + nonceLength + AeadAlgorithms.TagLength;
        int room = r.Length - NtpHeader.Length - r.UidLength - authenticatorFixed;
        int count = Math.Max(0, Math.Min(1 + r.Placeholders, room / cookieField));

        bool synchronised = NtpResponder.WriteTimeHeader(buffer, r.Version, r.Poll, r.ClientTransmit, r.Context, state);
        // The Unique Identifier moves to just after the header (the request is no longer needed).
        buffer.Slice(r.UidOffset, r.UidLength).CopyTo(buffer[NtpHeader.Length..]);
        int offset = NtpHeader.Length + r.UidLength;
        int plaintextLength = count * cookieField;
        int authFieldLength = authenticatorFixed + plaintextLength;
        BinaryPrimitives.WriteUInt16BigEndian(buffer[offset..], NtsExtensionField.Authenticator);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(offset + 2)..], (ushort)authFieldLength);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(offset + 4)..], (ushort)nonceLength);
        BinaryPrimitives.WriteUInt16BigEndian(buffer[(offset + 6)..], (ushort)(AeadAlgorithms.TagLength + plaintextLength));
        int nonceOffset = offset + 8;
        _random.Fill(buffer.Slice(nonceOffset, nonceLength));
        // Both nonce lengths (16, 12) are whole words: no nonce padding, no additional padding (§5.6).
        int ciphertextOffset = nonceOffset + nonceLength;
        int plaintextOffset = ciphertextOffset + AeadAlgorithms.PlaintextOffset(r.Aead);
        for (int i = 0; i < count; i++)
        {
            Span<byte> field = buffer.Slice(plaintextOffset + (i * cookieField), cookieField);
            BinaryPrimitives.WriteUInt16BigEndian(field, NtsExtensionField.Cookie);
            BinaryPrimitives.WriteUInt16BigEndian(field[2..], (ushort)cookieField);
            Span<byte> cookie = field[ExtensionFields.HeaderLength..];
            NtsCookie.WriteHeader(cookieKey, cookie);
            _random.Fill(cookie.Slice(4, NtsCookie.NonceLength));
            Span<byte> plaintext = Scratch(cookies.Count);
            plaintext = plaintext[..NtsCookie.Pack(r.Aead, C2S(slot), S2C(slot), plaintext)];
            cookies.Add(cookieKey.Key, cookie[..4], cookie.Slice(4, NtsCookie.NonceLength), plaintext, cookie[NtsCookie.SealedOffset..cookieLength]);
            if (cookies.IsFull)
            {
                SealCookies(ref cookies);
            }
        }
        r.ResponseLength = offset + authFieldLength;
        r.AssociatedDataLength = offset;
        r.ServerNonceOffset = nonceOffset;
        r.SealedOffset = ciphertextOffset;
        r.PlaintextLength = plaintextLength;
        r.NewCookies = count;
        r.Outcome = new Outcome(ResponseAction.Respond, synchronised ? r.Answered : ResponseReason.Unsynchronised, Nts: true);
    }

    private void SealCookies(ref SivBatch cookies)
    {
        Run(ref cookies, open: false, _cookieCipher);
        for (int lane = 0; lane < cookies.Count; lane++)
        {
            Scratch(lane)[..cookies[lane].Input.Length].Clear(); // the clients' keys
        }
        cookies.Clear();
    }

    /// <summary>NTS NAK (§5.7): a KoD NTSN that echoes the Unique Identifier, unauthenticated.</summary>
    private static void Nak(ref Request r, Span<byte> buffer, CookieFailure failure)
    {
        KissOfDeath.Write(buffer, r.Version, r.Poll, r.ClientTransmit, KissCode.NtsNak);
        buffer.Slice(r.UidOffset, r.UidLength).CopyTo(buffer[NtpHeader.Length..]);
        r.ResponseLength = NtpHeader.Length + r.UidLength;
        r.Outcome = new Outcome(ResponseAction.KissOfDeath,
            failure == CookieFailure.UnknownKey ? ResponseReason.NtsCookieUnknownKey : ResponseReason.NtsCookieInvalid, Nts: true);
    }

    /// <summary>Seals or opens a batch: on the lanes, or one operation at a time on <paramref name="reference"/>.</summary>
    private void Run(scoped ref SivBatch batch, bool open, OneAtATime? reference)
    {
        if (_lanes is not null)
        {
            if (open)
            {
                _lanes.Open(ref batch);
            }
            else
            {
                _lanes.Seal(ref batch);
            }
            return;
        }
        reference!.Run(ref batch, open);
    }

    private Span<byte> C2S(int slot) => _c2s.AsSpan(slot * KeyRoom, KeyRoom);

    private Span<byte> S2C(int slot) => _s2c.AsSpan(slot * KeyRoom, KeyRoom);

    /// <summary>One lane's plaintext scratch: opened cookies, client plaintext, cookies to seal.</summary>
    private Span<byte> Scratch(int lane) => _plaintext.AsSpan(lane * PlaintextRoom, PlaintextRoom);

    /// <summary>
    /// The reference <see cref="AesSiv"/> for a CPU without AES-NI: a batch's operations one after
    /// another, with the same results as the lanes' (tested), re-keyed only when an operation's key is
    /// not the one it holds.
    /// </summary>
    private sealed class OneAtATime
    {
        private readonly AesSiv _siv = new(new byte[32]);
        private readonly byte[] _key = new byte[64];
        private int _keyLength = 32;

        public void Run(scoped ref SivBatch batch, bool open)
        {
            for (int i = 0; i < batch.Count; i++)
            {
                ref SivOperation op = ref batch[i];
                if (!op.Key.SequenceEqual(_key.AsSpan(0, _keyLength)))
                {
                    _siv.SetKey(op.Key); // throws on a wrong length, as the lanes do
                    op.Key.CopyTo(_key);
                    _keyLength = op.Key.Length;
                }
                if (open)
                {
                    op.Authentic = _siv.Decrypt(op.AssociatedData, op.Nonce, op.Input, op.Output);
                }
                else
                {
                    op.Authentic = false;
                    _siv.Encrypt(op.AssociatedData, op.Nonce, op.Input, op.Output);
                }
            }
        }
    }

    /// <summary>One slot's request, from <see cref="Accept"/> to <see cref="Seal"/>.</summary>
    private struct Request
    {
        public int Length;
        public int UidOffset;
        public int UidLength;
        public int CookieOffset;
        public int CookieLength;
        public int Placeholders;
        public int AuthenticatorOffset;
        public int NonceOffset;
        public int NonceLength;
        public int NonceRoom;
        public int CiphertextOffset;
        public int CiphertextLength;
        public byte Version;
        public sbyte Poll;
        public NtpTimestamp ClientTransmit;
        public RequestContext Context;
        public ResponseReason Answered;
        public AeadAlgorithm Aead;
        public Outcome Outcome;
        public int ResponseLength;

        // What sealing needs (the transmit timestamp is inside the associated data, so it runs last).
        public int AssociatedDataLength;
        public int ServerNonceOffset;
        public int SealedOffset;
        public int PlaintextLength;
        public int NewCookies;
    }
}
