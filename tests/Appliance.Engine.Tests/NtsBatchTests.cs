using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Timestamping;

namespace Appliance.Engine.Tests;

/// <summary>
/// The batch path with NTS: requests are answered a group of AesSivLanes.Width at a time (their AES-SIV work side by side),
/// so every kind of request, mixed in one batch, must come out exactly as it would alone.
/// </summary>
public class NtsBatchTests
{
    private static readonly CookieKey s_key = new(7, Enumerable.Range(40, 32).Select(i => (byte)i).ToArray());
    private static readonly CookieKey s_stranger = new(8, Enumerable.Range(80, 32).Select(i => (byte)i).ToArray());

    private sealed record Client(AeadAlgorithm Aead, byte[] C2S, byte[] S2C, byte[] Uid, int Placeholders)
    {
        public static Client Make(int n, AeadAlgorithm aead, int placeholders)
        {
            int length = AeadAlgorithms.KeyLength(aead);
            return new Client(aead, [.. Enumerable.Range(n, length).Select(i => (byte)i)], [.. Enumerable.Range(n + 100, length).Select(i => (byte)i)],
                [.. Enumerable.Range(n + 7, 32).Select(i => (byte)i)], placeholders);
        }

        public byte[] Request(CookieKey key)
        {
            var cookie = new byte[NtsCookie.Length(Aead)];
            NtsCookie.Seal(key, Uid.AsSpan(0, 16), Aead, C2S, S2C, cookie);
            var packet = new byte[1024];
            int n = NtsClientPacket.WriteRequest(packet, 0x0102030405060708, Uid, cookie, Placeholders, Uid.AsSpan(16), new AesSiv(C2S));
            return packet[..n];
        }
    }

    [Fact]
    public void MixedBatch_EveryRequestAnsweredAsAlone_AndNothingAllocated()
    {
        var ring = new CookieKeyRing(s_key, []);
        const int size = 13;
        var scratch = new BatchScratch(size, new NtsPacketHandler(new CookieKeyRingCell(ring), new CsprngBuffer(), size));
        var clients = new Client?[size];
        var requests = new byte[size][];
        var expected = new ResponseReason[size];
        for (int i = 0; i < size; i++)
        {
            // Kinds in a pattern that splits them across groups of lanes: good (AEAD 15 and 17, 0-2
            // placeholders), plain NTP, a tampered authenticator, a cookie under an unknown key.
            Client c = Client.Make(i * 3, i % 5 == 4 ? AeadAlgorithm.AesSivCmac512 : AeadAlgorithm.AesSivCmac256, i % 3);
            switch (i % 6)
            {
                case 1:
                    requests[i] = new byte[48];
                    requests[i][0] = NtpHeader.FirstOctet(LeapIndicator.NoWarning, 4, NtpMode.Client);
                    expected[i] = ResponseReason.Served;
                    break;
                case 3:
                    requests[i] = c.Request(s_key);
                    requests[i][^1] ^= 0x40;
                    expected[i] = ResponseReason.NtsBadAuthenticator;
                    break;
                case 5:
                    requests[i] = c.Request(s_stranger);
                    clients[i] = c;
                    expected[i] = ResponseReason.NtsCookieUnknownKey;
                    break;
                default:
                    requests[i] = c.Request(s_key);
                    clients[i] = c;
                    expected[i] = ResponseReason.Served;
                    break;
            }
        }
        using var batch = new PacketBatch(size);
        var counters = new WorkerCounters();
        var state = new ServerState { Leap = LeapIndicator.NoWarning, Stratum = 2, ReferenceId = 1, Precision = -24 };
        var policy = default(AllowAllPolicy);
        IPEndPoint[] peers = [.. Enumerable.Range(0, size).Select(i => new IPEndPoint(IPAddress.Parse($"192.0.2.{i + 1}"), 1000 + i))];
        void Run()
        {
            batch.Clear();
            for (int i = 0; i < size; i++)
            {
                batch.Load(i, requests[i], peers[i], 1_795_435_203_000_000_000);
            }
            NtpWorker.ProcessBatch(batch, state, ref policy, counters, scratch);
            NtpWorker.StampAndSeal(batch, state, scratch, counters);
        }

        Run();
        long cookies = 0;
        for (int i = 0; i < size; i++)
        {
            byte[] response = batch.Payload(i)[..batch.ResponseLength(i)].ToArray();
            Client? c = clients[i];
            switch (expected[i])
            {
                case ResponseReason.NtsBadAuthenticator:
                    Assert.Empty(response);
                    break;
                case ResponseReason.NtsCookieUnknownKey:
                    Assert.Equal(NtsResponseCheck.Nak, NtsClientPacket.CheckResponse(response, c!.Uid, new AesSiv(c.S2C), new byte[2048], out _));
                    break;
                case ResponseReason.Served when c is null:
                    Assert.Equal(NtpMode.Server, NtpHeader.Read(response).Mode);
                    Assert.Equal(48, response.Length);
                    break;
                default:
                    var found = new List<byte[]>();
                    Assert.Equal(NtsResponseCheck.Authentic,
                        NtsClientPacket.CheckResponse(response, c!.Uid, new AesSiv(c.S2C), new byte[2048], out int n, cookie => found.Add(cookie.ToArray())));
                    Assert.Equal(1 + c.Placeholders, n);
                    Assert.True(response.Length <= requests[i].Length);
                    foreach (byte[] cookie in found)
                    {
                        // Each fresh cookie opens to this client's keys, not a neighbour's in the group.
                        var c2s = new byte[64];
                        var s2c = new byte[64];
                        Assert.Equal(CookieFailure.None, NtsCookie.Open(ring, cookie, c2s, s2c, out AeadAlgorithm aead));
                        Assert.Equal(c.Aead, aead);
                        Assert.Equal(c.C2S, c2s[..c.C2S.Length]);
                        Assert.Equal(c.S2C, s2c[..c.S2C.Length]);
                    }
                    cookies += n;
                    break;
            }
        }
        Assert.Equal(cookies, counters.CookiesIssued);
        Assert.Equal(expected.Count(r => r == ResponseReason.NtsBadAuthenticator), counters.Get(ResponseAction.Drop, ResponseReason.NtsBadAuthenticator, nts: true));
        Assert.Equal(expected.Count(r => r == ResponseReason.NtsCookieUnknownKey), counters.Get(ResponseAction.KissOfDeath, ResponseReason.NtsCookieUnknownKey, nts: true));
        Assert.Equal(clients.Count(c => c is not null) - expected.Count(r => r == ResponseReason.NtsCookieUnknownKey),
            counters.Get(ResponseAction.Respond, ResponseReason.Served, nts: true));
        // Every time response, plain or NTS, carries the daemon's own transmit reading; NAKs and drops none.
        Assert.Equal(counters.Get(ResponseAction.Respond, ResponseReason.Served), counters.TransmitTimestamps(TimestampSource.UserSpace));
        Assert.Equal(0, counters.TransmitTimestamps(TimestampSource.KernelSoftware) + counters.TransmitTimestamps(TimestampSource.Hardware));

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < 50; round++)
        {
            Run();
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
