using System.Buffers.Binary;
using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;

namespace Appliance.LoadTest.Tests;

/// <summary>
/// The generator's NTS codec seals requests and opens responses eight at a time: each request's
/// authenticator must still verify under its own client's key, and each response must get its own
/// verdict, whatever else shares its batch.
/// </summary>
public sealed class NtsCodecTests
{
    private const int Clients = 3;
    private const int CookieLength = 104;

    private static (byte[] C2S, byte[] S2C, IReadOnlyList<byte[]> Cookies) Keys(int client) =>
        ([.. Enumerable.Range(client * 7, 32).Select(b => (byte)b)],
         [.. Enumerable.Range(client * 11 + 100, 32).Select(b => (byte)b)],
         [.. Enumerable.Range(0, 8).Select(i => Enumerable.Repeat((byte)(client * 16 + i), CookieLength).ToArray())]);

    private static NtsCodec NewCodec() => NtsCodec.FromKeys([.. Enumerable.Range(0, Clients).Select(Keys)]);

    [Fact]
    public void WriteRequests_EachAuthenticatorVerifiesUnderItsClientsKey_AndSpendsItsClientsCookies()
    {
        NtsCodec codec = NewCodec();
        const int count = 19; // two full groups of eight and a partial one
        int size = codec.FixedRequestLength;
        var segments = new byte[count * size];
        int[] clients = [.. Enumerable.Range(0, count).Select(i => i * 5 % Clients)];
        ulong[] transmits = [.. Enumerable.Range(0, count).Select(i => 0xE000_0000_0000_0000UL + (ulong)i)];

        ((IRequestCodec)codec).WriteRequests(segments, size, clients, transmits);

        var spent = new Dictionary<int, int>();
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> request = segments.AsSpan(i * size, size);
            Assert.Equal(transmits[i], BinaryPrimitives.ReadUInt64BigEndian(request[40..]));
            int auth = size - (4 + 4 + 16 + 16);
            var tag = new byte[16];
            new AesSiv(Keys(clients[i]).C2S).Encrypt(request[..auth], request.Slice(auth + 8, 16), [], tag);
            Assert.Equal(tag, request.Slice(auth + 24, 16).ToArray());
            // The cookie is the client's next unused one (RFC 8915 §5.7: each is sent once).
            int n = spent.GetValueOrDefault(clients[i]);
            spent[clients[i]] = n + 1;
            int cookieAt = NtpHeader.Length + 4 + 32 + 4;
            byte expected = (byte)(clients[i] * 16 + Math.Min(n, 7));
            Assert.True(request.Slice(cookieAt, CookieLength).ToArray().All(b => b == expected), $"request {i}");
        }
    }

    private enum Kind
    {
        Authentic,
        TamperedTag,
        OtherClientsUid,
        Nak,
    }

    [Fact]
    public void CheckResponses_GiveEachResponseItsOwnVerdict_AndTakeTheCookiesOfTheAuthenticOnes()
    {
        NtsCodec codec = NewCodec();
        const int count = 21;
        Kind[] kinds = [.. Enumerable.Range(0, count).Select(i => (Kind)(i * 7 % 11 % 4))];
        int[] clients = [.. Enumerable.Range(0, count).Select(i => i % Clients)];
        ulong[] transmits = [.. Enumerable.Range(0, count).Select(i => 0xE000_0000_0000_0100UL + (ulong)i)];
        // The requests carry the Unique Identifiers the responses must echo.
        int size = codec.FixedRequestLength;
        var requests = new byte[count * size];
        ((IRequestCodec)codec).WriteRequests(requests, size, clients, transmits);

        using var batch = new PacketBatch(count);
        var peer = new IPEndPoint(IPAddress.Loopback, 123);
        for (int i = 0; i < count; i++)
        {
            ReadOnlySpan<byte> uid = requests.AsSpan((i * size) + NtpHeader.Length + 4, 32);
            byte[] uidToEcho = kinds[i] == Kind.OtherClientsUid ? requests.AsSpan((((i + 1) % count) * size) + NtpHeader.Length + 4, 32).ToArray() : uid.ToArray();
            batch.Load(i, Response(kinds[i], clients[i], transmits[i], uidToEcho), peer, 0);
        }
        var verdicts = new CodecVerdict[count];
        var reasons = new string?[count];
        int[] slots = [.. Enumerable.Range(0, count)];

        ((IRequestCodec)codec).CheckResponses(new ResponseSet(batch, slots, clients, transmits), verdicts, reasons);

        for (int i = 0; i < count; i++)
        {
            bool authentic = kinds[i] == Kind.Authentic;
            Assert.True((verdicts[i] == CodecVerdict.Ok) == authentic, $"response {i} ({kinds[i]}): {verdicts[i]}");
            Assert.Equal(authentic ? null : "nts_authenticator", reasons[i]);
        }
        Dictionary<string, long> counts = codec.TakeCounts();
        Assert.Equal(kinds.Count(k => k == Kind.Authentic), counts["cookies_received"]);
        Assert.Equal(kinds.Count(k => k != Kind.Authentic), counts["authenticator_failures"]);
    }

    /// <summary>A server's answer as RFC 8915 §5.6 builds it: header, the UID echoed, the authenticator over one fresh cookie.</summary>
    private static byte[] Response(Kind kind, int client, ulong transmit, byte[] uid)
    {
        var packet = new byte[512];
        packet[0] = NtpHeader.FirstOctet(LeapIndicator.NoWarning, 4, NtpMode.Server);
        packet[1] = (byte)(kind == Kind.Nak ? 0 : 2);
        BinaryPrimitives.WriteUInt64BigEndian(packet.AsSpan(24), transmit);
        int offset = NtpHeader.Length + ExtensionFields.Write(packet.AsSpan(NtpHeader.Length), NtsExtensionField.UniqueIdentifier, uid);
        if (kind == Kind.Nak)
        {
            "NTSN"u8.CopyTo(packet.AsSpan(12));
            return packet[..offset];
        }
        var cookieField = new byte[4 + CookieLength];
        ExtensionFields.Write(cookieField, NtsExtensionField.Cookie, Enumerable.Repeat((byte)0xC0, CookieLength).ToArray());
        byte[] nonce = [.. Enumerable.Range(client, 16).Select(b => (byte)b)];
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(offset), NtsExtensionField.Authenticator);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(offset + 2), (ushort)(4 + 4 + 16 + 16 + cookieField.Length));
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(offset + 4), 16);
        BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(offset + 6), (ushort)(16 + cookieField.Length));
        nonce.CopyTo(packet.AsSpan(offset + 8));
        new AesSiv(Keys(client).S2C).Encrypt(packet.AsSpan(0, offset), nonce, cookieField, packet.AsSpan(offset + 24, 16 + cookieField.Length));
        if (kind == Kind.TamperedTag)
        {
            packet[offset + 24] ^= 0x01;
        }
        return packet[..(offset + 24 + 16 + cookieField.Length)];
    }
}
