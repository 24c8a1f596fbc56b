using System.Buffers.Binary;
using Appliance.Protocol;

namespace Appliance.Protocol.Tests;

public class NtpResponderTests
{
    public static TheoryData<string> GoldenRequests => new(Packets.GoldenClientRequests);

    [Theory]
    [MemberData(nameof(GoldenRequests))]
    public void Respond_GoldenClientRequest_AnswersPerRfc5905(string name)
    {
        byte[] request = Packets.Golden(name);
        var req = NtpHeader.Read(request);
        byte[] buffer = (byte[])request.Clone();
        ServerState state = Packets.SyncedState();

        Outcome outcome = Packets.Respond(buffer, request.Length, state, out int length);

        Assert.Equal(new Outcome(ResponseAction.Respond, ResponseReason.Served), outcome);
        Assert.Equal(NtpHeader.Length, length);
        var resp = NtpHeader.Read(buffer);
        Assert.Equal(NtpMode.Server, resp.Mode);
        Assert.Equal(req.Version, resp.Version);
        Assert.Equal(req.Poll, resp.Poll);
        Assert.Equal(LeapIndicator.NoWarning, resp.Leap);
        Assert.Equal(2, resp.Stratum);
        Assert.Equal(-24, resp.Precision);
        Assert.Equal(0xC0000201u, resp.ReferenceId);
        Assert.Equal(req.Transmit, resp.Origin);
        Assert.Equal(NtpTimestamp.FromUnixNanoseconds(Packets.ReceiveUnixNs), resp.Receive);
        Assert.Equal(state.ReferenceTime, resp.Reference);
        Assert.True(resp.Receive.SecondsSince(resp.Reference) > 0, "reference time must precede the receive time");
        Assert.Equal(NtpShort.FromSeconds(0.0125), resp.RootDelay);
    }

    [Fact]
    public void Respond_RootDispersion_GrowsWithPhiSinceLastUpdate()
    {
        // Updated 8 s before the request: dispersion = 1 ms + 15 ppm × 8 s = 1.12 ms (RFC 5905 §11.2.2).
        byte[] buffer = Packets.Request();
        Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out _);
        double dispersion = NtpHeader.Read(buffer).RootDispersion.ToSeconds();
        Assert.InRange(dispersion, 0.00112, 0.00112 + (2 / 65536.0));
    }

    [Fact]
    public void Respond_Unsynchronised_SendsLeap3Stratum16()
    {
        byte[] buffer = Packets.Request();
        Outcome outcome = Packets.Respond(buffer, buffer.Length, ServerState.Unsynchronised(-20), out int length);
        Assert.Equal(new Outcome(ResponseAction.Respond, ResponseReason.Unsynchronised), outcome);
        var resp = NtpHeader.Read(buffer.AsSpan(0, length));
        Assert.Equal(LeapIndicator.Unsynchronised, resp.Leap);
        Assert.Equal(16, resp.Stratum);
    }

    [Fact]
    public void Respond_StateAnnouncingLeapSecond_PassesLeapIndicator()
    {
        byte[] buffer = Packets.Request();
        ServerState state = Packets.SyncedState();
        var leapState = new ServerState
        {
            Leap = LeapIndicator.InsertSecond,
            Stratum = state.Stratum,
            ReferenceId = state.ReferenceId,
            ReferenceTime = state.ReferenceTime,
            UpdatedAtUnixNanoseconds = state.UpdatedAtUnixNanoseconds,
            Precision = state.Precision,
        };
        Packets.Respond(buffer, buffer.Length, leapState, out _);
        Assert.Equal(LeapIndicator.InsertSecond, NtpHeader.Read(buffer).Leap);
    }

    [Fact]
    public void StampTransmit_WritesTransmitTimestampOnly()
    {
        byte[] buffer = Packets.Request();
        Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out _);
        byte[] before = (byte[])buffer.Clone();
        var t3 = NtpTimestamp.FromUnixNanoseconds(Packets.ReceiveUnixNs + 5_000);
        NtpResponder.StampTransmit(buffer, t3);
        Assert.Equal(t3, NtpHeader.Read(buffer).Transmit);
        Assert.Equal(before.AsSpan(0, 40).ToArray(), buffer.AsSpan(0, 40).ToArray());
    }

    [Fact]
    public void Respond_NtpqMode6Query_IsDroppedAsControlQuery()
    {
        byte[] buffer = Packets.Golden("ntpq-mode6");
        Outcome outcome = Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out int length);
        Assert.Equal(Outcome.Drop(ResponseReason.ControlQuery), outcome);
        Assert.Equal(0, length);
    }

    [Fact]
    public void Respond_Mode7Monlist_IsDroppedAsPrivateQuery()
    {
        // ntpdc's MON_GETLIST_1: an 8-byte mode-7 request, the classic amplification probe.
        byte[] buffer = [0x17, 0x00, 0x03, 0x2a, 0x00, 0x00, 0x00, 0x00];
        Assert.Equal(Outcome.Drop(ResponseReason.PrivateQuery), Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out _));
    }

    [Theory]
    [InlineData(NtpMode.Reserved)]
    [InlineData(NtpMode.SymmetricActive)]
    [InlineData(NtpMode.SymmetricPassive)]
    [InlineData(NtpMode.Server)]
    [InlineData(NtpMode.Broadcast)]
    public void Respond_NonClientMode_IsDropped(NtpMode mode)
    {
        byte[] buffer = Packets.Request(mode: mode);
        Assert.Equal(Outcome.Drop(ResponseReason.UnexpectedMode), Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    [InlineData(7)]
    public void Respond_UnsupportedVersion_IsDropped(byte version)
    {
        byte[] buffer = Packets.Request(version);
        Assert.Equal(Outcome.Drop(ResponseReason.UnsupportedVersion), Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out _));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(47)]
    public void Respond_ShorterThanHeader_IsDropped(int length)
    {
        byte[] buffer = Packets.Request();
        Assert.Equal(Outcome.Drop(ResponseReason.TooShort), Packets.Respond(buffer, length, Packets.SyncedState(), out _));
    }

    [Theory]
    [InlineData(4, 12)]  // shorter than the smallest extension field and not a MAC
    [InlineData(4, 16)]  // a field whose length word is zero
    [InlineData(3, 32)]  // NTPv3 has no extension fields
    public void Respond_MalformedExtensionArea_IsDropped(byte version, int extra)
    {
        byte[] buffer = Packets.Request(version, extraBytes: extra);
        Assert.Equal(Outcome.Drop(ResponseReason.MalformedExtensionField),
            Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out _));
    }

    [Fact]
    public void Respond_ExtensionFieldLongerThanPacket_IsDropped()
    {
        byte[] buffer = Packets.Request(extraBytes: 32);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(48), 0x0104);
        BinaryPrimitives.WriteUInt16BigEndian(buffer.AsSpan(50), 36);
        Assert.Equal(Outcome.Drop(ResponseReason.MalformedExtensionField),
            Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out _));
    }

    [Fact]
    public void Respond_UnknownExtensionField_IsIgnoredAndAnsweredWithHeaderOnly()
    {
        // RFC 7822 §3: a server ignores extension fields it does not know.
        byte[] buffer = Packets.Request(extraBytes: 32);
        ExtensionFields.Write(buffer.AsSpan(48), 0x7777, new byte[28]);
        Outcome outcome = Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out int length);
        Assert.Equal(ResponseAction.Respond, outcome.Action);
        Assert.Equal(NtpHeader.Length, length);
    }

    [Theory]
    [InlineData(20)]
    [InlineData(24)]
    public void Respond_LegacyMac_GetsCryptoNak(int macLength)
    {
        byte[] buffer = Packets.Request(extraBytes: macLength);
        BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(48), 42); // key id 42, unknown here
        Outcome outcome = Packets.Respond(buffer, buffer.Length, Packets.SyncedState(), out int length);
        Assert.Equal(new Outcome(ResponseAction.Respond, ResponseReason.UnknownKey), outcome);
        Assert.Equal(NtpHeader.Length + 4, length);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(48)));
    }

    private struct FixedPolicy(PolicyVerdict verdict) : IClientPolicy
    {
        public readonly PolicyVerdict Evaluate(in RequestContext context, bool nts) => verdict;

        public readonly bool WithinRate(NetAddress client, long limiterNanoseconds) => false;
    }

    [Theory]
    [InlineData(PolicyVerdict.DenyKiss, KissCode.Deny, ResponseReason.Denied)]
    [InlineData(PolicyVerdict.RestrictKiss, KissCode.Restrict, ResponseReason.Denied)]
    [InlineData(PolicyVerdict.RateKiss, KissCode.Rate, ResponseReason.RateLimited)]
    public void Respond_PolicyKiss_SendsKissOfDeathWithCode(PolicyVerdict verdict, KissCode code, ResponseReason reason)
    {
        byte[] buffer = Packets.Golden("chronyd-v4");
        var req = NtpHeader.Read(buffer);
        var policy = new FixedPolicy(verdict);
        Outcome outcome = NtpResponder.Respond(buffer, buffer.Length, Packets.Context(), Packets.SyncedState(), ref policy, out int length);

        Assert.Equal(new Outcome(ResponseAction.KissOfDeath, reason), outcome);
        Assert.Equal(NtpHeader.Length, length);
        var kod = NtpHeader.Read(buffer);
        Assert.Equal(LeapIndicator.Unsynchronised, kod.Leap);
        Assert.Equal(0, kod.Stratum);
        Assert.Equal(NtpMode.Server, kod.Mode);
        Assert.Equal(req.Transmit, kod.Origin);
        Assert.Equal(code, KissOfDeath.Read(buffer));
        // A KoD never hands out the server's time.
        Assert.Equal(req.Transmit, kod.Receive);
        Assert.Equal(req.Transmit, kod.Transmit);
    }

    [Theory]
    [InlineData(PolicyVerdict.DenyIgnore, ResponseReason.Denied)]
    [InlineData(PolicyVerdict.RateDrop, ResponseReason.RateLimited)]
    public void Respond_PolicyIgnore_SendsNothing(PolicyVerdict verdict, ResponseReason reason)
    {
        byte[] buffer = Packets.Request();
        var policy = new FixedPolicy(verdict);
        Outcome outcome = NtpResponder.Respond(buffer, buffer.Length, Packets.Context(), Packets.SyncedState(), ref policy, out int length);
        Assert.Equal(Outcome.Drop(reason), outcome);
        Assert.Equal(0, length);
    }

    [Fact]
    public void Respond_MalformedPacket_IsNotChargedToThePolicy()
    {
        byte[] buffer = Packets.Request(mode: NtpMode.Control);
        var policy = new FixedPolicy(PolicyVerdict.RateKiss);
        Outcome outcome = NtpResponder.Respond(buffer, buffer.Length, Packets.Context(), Packets.SyncedState(), ref policy, out _);
        Assert.Equal(ResponseAction.Drop, outcome.Action);
    }
}
