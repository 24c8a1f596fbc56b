using System.Buffers.Binary;
using System.Text;
using Appliance.Fuzz.Targets;
using Appliance.Protocol;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Testing;

namespace Appliance.Fuzz;

/// <summary>
/// The seed corpora: a few valid inputs per target, made by the real code where there is one (the
/// golden client packets, NTS requests and NTS-KE messages the appliance's own clients write, answers
/// its own responder gives), so afl-fuzz starts deep. `Appliance.Fuzz seeds DIR` writes
/// DIR/TARGET/seed-NAME; `make fuzz` minimises them with what it found into tests/testdata/fuzz.
/// </summary>
public static class Seeds
{
    private const byte Synced = 0x80;

    public static void Write(string directory)
    {
        foreach ((string target, string name, byte[] octets) in All())
        {
            FuzzTarget fuzzTarget = FuzzTargets.Find(target) ?? throw new InvalidOperationException(target);
            if (octets.Length > fuzzTarget.MaxInput)
            {
                throw new InvalidOperationException($"seed {target}/{name} is {octets.Length} octets, more than the target takes");
            }
            fuzzTarget.Run(octets); // a seed that fails is a finding before fuzzing starts
            string path = Path.Combine(directory, target, "seed-" + name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, octets);
            Console.WriteLine($"{path}: {octets.Length} octets");
        }
    }

    private static IEnumerable<(string Target, string Name, byte[] Octets)> All()
    {
        foreach (string golden in (string[])["chronyd-v4", "chronyd-v3", "chronyd-xleave", "ntpdig", "ntpq-mode6"])
        {
            yield return ("ntp", golden, [Synced, .. File.ReadAllBytes(Repo.TestData("golden", golden + ".bin"))]);
        }
        byte[] chrony = File.ReadAllBytes(Repo.TestData("golden", "chronyd-v4.bin"));
        yield return ("ntp", "kod-rate", [Synced | (byte)PolicyVerdict.RateKiss, .. chrony]);
        yield return ("ntp", "mac", [Synced, .. chrony, 0, 0, 0, 1, .. new byte[16]]);

        foreach (AeadAlgorithm aead in AeadAlgorithms.All)
        {
            yield return ("nts", $"aead{(int)aead}", [Synced, .. NtsRequest(aead, 0)]);
            yield return ("nts", $"aead{(int)aead}-placeholders", [Synced, .. NtsRequest(aead, 2)]);
        }
        yield return ("nts", "unsynchronised", [0, .. NtsRequest(AeadAlgorithm.AesSivCmac256, 1)]);

        byte[] keRequest = new byte[64];
        var client = new NtsKeClientSession([AeadAlgorithm.AesSivCmac256, AeadAlgorithm.AesSivCmac512]);
        keRequest = keRequest[..client.WriteRequest(keRequest)];
        byte[] chronyKeRequest = [.. Record(true, NtsKeRecordType.NextProtocol, 0, 0), .. Record(true, NtsKeRecordType.AeadAlgorithm, 0, 30, 0, 15), .. Record(true, NtsKeRecordType.EndOfMessage)];
        byte[] keResponse = KeResponse(keRequest);
        foreach ((string name, byte[] message) in (IEnumerable<(string, byte[])>)[("request", keRequest), ("chrony-request", chronyKeRequest), ("response", keResponse)])
        {
            yield return ("ntske-records", name, [0, .. message]);
        }
        yield return ("ntske-records", "limited", [1, 2, .. keResponse]);
        yield return ("ntske-server", "request", [0, .. keRequest]);
        yield return ("ntske-server", "chrony-request", [0, .. chronyKeRequest]);
        yield return ("ntske-server", "request-split", [3, 1, 5, 3, .. keRequest]);
        yield return ("ntske-client", "response", [0, .. keResponse]);
        yield return ("ntske-client", "response-split", [2, 7, 100, .. keResponse]);
        yield return ("ntske-client", "error", [0, .. Record(true, NtsKeRecordType.Error, 0, 1), .. Record(true, NtsKeRecordType.EndOfMessage)]);

        yield return ("upstream", "plain", Upstream(nts: false, PolicyVerdict.Allow));
        yield return ("upstream", "nts", Upstream(nts: true, PolicyVerdict.Allow));
        yield return ("upstream", "kod-rate", Upstream(nts: false, PolicyVerdict.RateKiss));

        yield return ("gpsd", "session", Encoding.ASCII.GetBytes(GpsdSession()));
        yield return ("gpsd", "sky", "{\"class\":\"TPV\",\"mode\":3}\n{\"class\":\"SKY\",\"satellites\":[{\"PRN\":1,\"used\":true},{\"PRN\":2,\"used\":false}]}\n{\"class\":\"SKY\",\"uSat\":7}\n"u8.ToArray());

        yield return ("ptp", "exchange", PtpExchange());
        yield return ("roughtime", "request", RoughtimeTarget.ValidRequest);
        yield return ("roughtime", "request-draft", RoughtimeTarget.MakeRequest(Fixed.Octets(5, 32), [Appliance.Protocol.Roughtime.RoughtimeVersion.Draft]));
        yield return ("roughtime", "response", RoughtimeTarget.AnswerToAnother());
        // RFC 10049 Appendix B's first response (another server's key).
        yield return ("roughtime", "rfc-response", Convert.FromBase64String(
            "Uk9VR0hUSU2UAQAABwAAAEAAAABgAAAAZAAAAGQAAADAAAAAWAEAAFNJRwBOT05DVFlQRVBBVEhTUkVQQ0VSVElORFhBWL64CToGs4v/4UtfN/80HLFiA09vGIDRP/zTjcTj8/1DlZWCsVja6RlfwaYnc1wfJqThfhcuSDonrTGyKngBMGH2UGU3otTJ7rOCGKpJYzDI2bQi5zFDFbfNMyvCPh0BAAAABQAAAAQAAAAIAAAAEAAAABQAAABWRVIAUkFESU1JRFBWRVJTUk9PVAEAAAADAAAAQ0u4aQAAAAABAAAAc86AWYB/O3Kxzsx4d5P5cbSOftJUA8bWVtVrQ3tc+b0CAAAAQAAAAFNJRwBERUxFI2B5tbj5ePjVKYE0PAL1NmgZOAsqh/E2from9Ol5BAnVcLje0C6exbXY8hE3dRvYV01Alru8Ocle+jOZT5r8AwMAAAAgAAAAKAAAAFBVQktNSU5UTUFYVKqljhhqi4A54vW20e+slwViPyxybNnqKXzimIiIUHQMaBCvaQAAAADYyd9pAAAAAAAAAAA="));

        yield return ("config", "embedded-default", Encoding.UTF8.GetBytes(ConfigLoader.EmbeddedDefaultText));
        yield return ("config", "appliance-image", File.ReadAllBytes(Repo.Path("appliance-image", "etc", "appliance.yaml")));

        yield return ("chrony", "sources", Encoding.ASCII.GetBytes(ChronyConf));

        yield return ("control", "status", "{\"verb\":\"status\"}\n"u8.ToArray());
        yield return ("control", "clients", "{\"verb\":\"clients\",\"limit\":5}\n"u8.ToArray());
        yield return ("control", "rotate-keys", "{\"verb\":\"rotate-keys\"}"u8.ToArray());
        yield return ("control", "unknown", "{\"verb\":\"monlist\",\"limit\":null}\n"u8.ToArray());
    }

    private static byte[] NtsRequest(AeadAlgorithm aead, int placeholders)
    {
        var packet = new byte[1024];
        byte[] nonce = Fixed.Octets(50, AeadAlgorithms.MaxNonceLength);
        int n = NtsClientPacket.WriteRequest(packet, 0x1122334455667788, Fixed.UniqueId, Fixed.Cookie(aead), placeholders, nonce, AeadAlgorithms.Create(aead, Fixed.C2S(aead)));
        return packet[..n];
    }

    private static byte[] Record(bool critical, NtsKeRecordType type, params byte[] body)
    {
        var record = new byte[NtsKeRecords.HeaderLength + body.Length];
        NtsKeRecords.Write(record, critical, type, body);
        return record;
    }

    /// <summary>The appliance's own NTS-KE server's answer to <paramref name="request"/> (keys and nonces fixed).</summary>
    private static byte[] KeResponse(byte[] request)
    {
        var server = new NtsKeServerSession(new NtsKeServerOptions(1024, "ntp.example", 11123), Fixed.Ring);
        server.Receive(request);
        int keyLength = AeadAlgorithms.KeyLength(server.Aead!.Value);
        server.SupplyKeys(Fixed.C2S(server.Aead.Value).AsSpan(0, keyLength), Fixed.S2C(server.Aead.Value).AsSpan(0, keyLength), new byte[NtsKeServerSession.RandomLength]);
        return server.Response.ToArray();
    }

    /// <summary>An association's exchanges answered by the real responder (and NTS handler), as the upstream input.</summary>
    private static byte[] Upstream(bool nts, PolicyVerdict verdict)
    {
        var input = new List<byte> { nts ? (byte)1 : (byte)0 };
        var handler = new NtsPacketHandler(new CookieKeyRingCell(Fixed.Ring), new CountingRandom());
        long shift = 250_000_000;
        UpstreamTarget.Drive(nts, patchOrigin: false, request =>
        {
            if (input.Count > 1 + (2 * (2 + 48)) || (verdict != PolicyVerdict.Allow && input.Count > 1))
            {
                return null; // two exchanges (one for a KoD)
            }
            byte[] buffer = [.. request];
            long t2 = Fixed.ReceiveUnixNs + shift;
            var context = new RequestContext(NetAddress.FromIPv4(0x7F000001), t2, NtpTimestamp.FromUnixNanoseconds(t2));
            var policy = new ScriptedPolicy(verdict);
            ServerState state = Fixed.Synced(t2 - 1_000_000_000);
            Outcome outcome = NtpResponder.Respond(buffer, buffer.Length, context, state, ref policy, handler, 0, false, out int length);
            if (outcome.Action == ResponseAction.Deferred)
            {
                var group = default(NtsGroup);
                group.Add(0, buffer);
                handler.Answer(ref group, state);
                (_, length) = handler.Result(0);
                NtpResponder.StampTransmit(buffer, NtpTimestamp.FromUnixNanoseconds(t2 + 20_000));
                handler.Seal(ref group);
            }
            else
            {
                NtpResponder.StampTransmit(buffer, NtpTimestamp.FromUnixNanoseconds(t2 + 20_000));
            }
            byte[] datagram = buffer[..length];
            Span<byte> prefix = stackalloc byte[2];
            BinaryPrimitives.WriteUInt16BigEndian(prefix, (ushort)datagram.Length);
            input.AddRange(prefix.ToArray());
            input.AddRange(datagram);
            return datagram;
        });
        return [.. input];
    }

    private static string GpsdSession()
    {
        var text = new StringBuilder();
        text.Append("{\"class\":\"VERSION\",\"release\":\"3.22\",\"rev\":\"3.22\",\"proto_major\":3,\"proto_minor\":14}\n");
        text.Append("{\"class\":\"DEVICES\",\"devices\":[{\"class\":\"DEVICE\",\"path\":\"/dev/ttyS0\",\"driver\":\"NMEA0183\"}]}\n");
        text.Append("{\"class\":\"WATCH\",\"enable\":true,\"json\":true,\"pps\":true}\n");
        text.Append("{\"class\":\"TPV\",\"device\":\"/dev/ttyS0\",\"mode\":3,\"ept\":0.005,\"time\":\"2026-11-23T00:00:00.000Z\"}\n");
        text.Append("{\"class\":\"SKY\",\"device\":\"/dev/ttyS0\",\"uSat\":8}\n");
        for (long s = 1_795_435_200; s < 1_795_435_206; s++)
        {
            text.Append($"{{\"class\":\"TOFF\",\"device\":\"/dev/ttyS0\",\"real_sec\":{s},\"real_nsec\":0,\"clock_sec\":{s},\"clock_nsec\":{120_000_000 + (s % 3 * 1000)}}}\n");
            text.Append($"{{\"class\":\"PPS\",\"device\":\"/dev/ttyS0\",\"real_sec\":{s},\"real_nsec\":0,\"clock_sec\":{s},\"clock_nsec\":1500,\"precision\":-20}}\n");
        }
        text.Append("{\"class\":\"TOFF\",\"real_sec\":575000000,\"real_nsec\":0,\"clock_sec\":1795435210,\"clock_nsec\":0}\n");
        return text.ToString();
    }

    /// <summary>Announce, a two-step Sync and its Follow_Up, a Delay_Req, and the Delay_Resp to it.</summary>
    private static byte[] PtpExchange()
    {
        byte[] master = Convert.FromHexString("1AB017FFFE68DCD50001");
        const long At = 1_795_435_200_000_000_000L;
        var input = new List<byte>();
        void Receive(int op, byte[] message)
        {
            input.Add((byte)op);
            input.Add((byte)message.Length);
            input.AddRange(message);
        }
        Receive(1, PtpMessages.Announce(master, 1, flags: PtpMessages.UtcOffsetValid));
        Receive(0, PtpMessages.Sync(master, 7, originNanoseconds: null));
        Receive(1, PtpMessages.FollowUp(master, 7, At));
        input.Add(2); // Delay_Req
        Receive(1 | 0x10, PtpMessages.DelayResp(master, 0, At + 1_000_000, new byte[10]));
        Receive(0, PtpMessages.Sync(master, 8, originNanoseconds: At + 1_000_000_000));
        input.Add(2);
        Receive(1 | 0x10, PtpMessages.DelayResp(master, 0, At + 1_001_000_000, new byte[10]));
        input.Add(3);
        Receive(1 | 0x4, PtpMessages.Announce(Convert.FromHexString("02A0C9FFFE000BAD0001"), 2));
        return [.. input];
    }

    private const string ChronyConf = """
        # A chrony.conf with most of what the migrator maps.
        server a.example iburst minpoll 4 maxpoll 8
        server 2001:db8::1 port 1123
        server b.example nts ntsport 4461
        pool 2.debian.pool.ntp.org iburst maxsources 2
        refclock SHM 0 offset 0.5 delay 0.2 refid NMEA
        refclock PPS /dev/pps0 lock NMEA
        refclock PHC /dev/ptp0 tai dpoll -2
        allow 192.168.1.0/24
        deny 192.168.1.66
        allow 2001:db8::/32
        ratelimit interval 1 burst 16 leak 3
        ntsservercert /etc/c.pem
        ntsserverkey /etc/k.pem
        ntsport 4460
        ntsrotate 3600
        maxntsconnections 500
        bindaddress 192.0.2.1
        port 123
        local stratum 10
        makestep 1 3
        leapsectz right/UTC
        driftfile /var/lib/chrony/chrony.drift
        include /etc/chrony/conf.d/*.conf
        sourcedir /run/chrony-dhcp
        confdir /etc/chrony/conf.d
        """;
}
