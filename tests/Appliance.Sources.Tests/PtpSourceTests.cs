using System.Net;
using Appliance.Protocol;
using Appliance.Protocol.Client;
using Appliance.Sources;
using Appliance.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Appliance.Sources.Tests;

/// <summary>
/// The PTP slave's message handling, fed datagrams with their source addresses as its sockets
/// would (tests/Appliance.Server.Tests/PtpTests.cs runs it against ptp4l and a spoofer on real
/// sockets). Time is explicit: arrival and departure stamps, and the monotonic milliseconds.
/// </summary>
public class PtpSourceTests
{
    private const long Second = 1_000_000_000;
    private const long Start = 1_795_435_200 * Second; // 2026-11-23

    private static readonly byte[] s_master = Convert.FromHexString("1AB017FFFE68DCD50001");
    private static readonly byte[] s_backup = Convert.FromHexString("02A0C9FFFE000BAD0001");
    private static readonly NetAddress s_masterAddress = Address("10.7.0.1");
    private static readonly NetAddress s_backupAddress = Address("10.7.0.3");
    private static readonly NetAddress s_ownAddress = Address("10.7.0.2");
    private static readonly NetAddress s_elsewhere = Address("10.7.0.9");

    private static NetAddress Address(string text) => NetAddress.FromIPAddress(IPAddress.Parse(text));

    private static PtpSource Slave() => new(new PtpOptions { Interface = "veth-test" }, NullLogger.Instance) { LocalAddresses = [s_ownAddress, Address("127.0.0.1")] };

    private static double Offset(Measurement m) => (m.T2 - ((m.T1 / 2) + (m.T4 / 2))) / 1e9;

    private ushort _sequence;

    /// <summary>
    /// One two-step Sync and one Delay_Req/Delay_Resp, as a master <paramref name="masterMinusSlave"/>
    /// seconds ahead of the slave sends them over a 20 µs path (its timestamps in its own timescale,
    /// <paramref name="timescaleOffset"/> seconds ahead of UTC). Returns the measurement, if any.
    /// </summary>
    private Measurement? Exchange(PtpSource slave, long now, byte[]? identity = null, NetAddress? from = null,
        double masterMinusSlave = 0, int timescaleOffset = 0, long at = Start, bool followUpFirst = false)
    {
        identity ??= s_master;
        NetAddress source = from ?? s_masterAddress;
        long shift = (long)(masterMinusSlave * Second) + (timescaleOffset * Second);
        ushort sequence = ++_sequence;
        long t1 = at, t2 = at + 20_000 - shift;
        if (followUpFirst)
        {
            slave.OnGeneral(PtpMessages.FollowUp(identity, sequence, t1), source, now);
        }
        slave.OnEvent(PtpMessages.Sync(identity, sequence, originNanoseconds: null), source, t2);
        if (!followUpFirst)
        {
            slave.OnGeneral(PtpMessages.FollowUp(identity, sequence, t1), source, now);
        }
        var request = new byte[44];
        if (!slave.WriteDelayRequest(request))
        {
            return null;
        }
        long t3 = t2 + 1_000_000;
        slave.DelayRequestSent(t3);
        long t4 = t3 + 20_000 + shift;
        return slave.OnGeneral(PtpMessages.DelayResp(identity, PtpMessages.SequenceOf(request), t4, PtpMessages.IdentityOf(request)), source, now);
    }

    [Fact]
    public void Exchange_WithTheMaster_MeasuresItsOffset()
    {
        PtpSource slave = Slave();
        Assert.Null(slave.OnGeneral(PtpMessages.Announce(s_master, 1), s_masterAddress, now: 1000));
        Measurement m = Exchange(slave, now: 1000, masterMinusSlave: 0.25)!.Value;
        Assert.Equal(0.25, Offset(m), 9);
        Assert.Equal(40e-6, (m.T4 - m.T1) / 1e9, 9); // the round trip: 20 µs each way
        Assert.Equal(ReferenceIds.Ptp, m.Response.ReferenceId);
        Assert.Equal(0, slave.Counters.Invalid);
    }

    [Fact]
    public void AFollowUpReadBeforeItsSync_StillCompletesIt()
    {
        // The event and general ports are read on two threads: the Follow_Up can be taken first.
        PtpSource slave = Slave();
        slave.OnGeneral(PtpMessages.Announce(s_master, 1), s_masterAddress, now: 1000);
        Assert.Equal(3e-6, Offset(Exchange(slave, now: 1000, masterMinusSlave: 3e-6, followUpFirst: true)!.Value), 9);
        Assert.Equal(-3e-6, Offset(Exchange(slave, now: 1000, masterMinusSlave: -3e-6)!.Value), 9);
        // A Follow_Up kept for a Sync that never came does not complete a later one.
        slave.OnGeneral(PtpMessages.FollowUp(s_master, 500, Start), s_masterAddress, now: 1000);
        slave.OnEvent(PtpMessages.Sync(s_master, 501, originNanoseconds: null), s_masterAddress, Start);
        Assert.False(slave.WriteDelayRequest(new byte[44]));
    }

    [Fact]
    public void TheMastersIdentity_FromAnotherAddress_IsRefusedAndCounted_AndMovesNothing()
    {
        PtpSource slave = Slave();
        slave.OnGeneral(PtpMessages.Announce(s_master, 1), s_masterAddress, now: 1000);

        // From this host and from another node: an Announce that would put 1000 s on every sample,
        // a one-step Sync 0.8 s early, and a whole exchange under the master's name.
        foreach (NetAddress impostor in new[] { s_ownAddress, s_elsewhere })
        {
            slave.OnGeneral(PtpMessages.Announce(s_master, 2, PtpMessages.PtpTimescale | PtpMessages.UtcOffsetValid, utcOffset: 1000), impostor, now: 1100);
            slave.OnEvent(PtpMessages.Sync(s_master, 7, Start - (8 * Second / 10)), impostor, Start);
            Assert.Null(Exchange(slave, now: 1200, from: impostor, masterMinusSlave: 0.4));
        }
        Assert.True(slave.Counters.Invalid >= 2 * 4, $"{slave.Counters.Invalid} refusals counted");

        Measurement m = Exchange(slave, now: 1300, masterMinusSlave: 1e-6)!.Value;
        Assert.Equal(1e-6, Offset(m), 9);
    }

    [Fact]
    public void TheUtcOffset_ChangesOnlyByTheLeapSecondTheMasterAnnounced()
    {
        PtpSource slave = Slave();
        const byte tai = PtpMessages.PtpTimescale | PtpMessages.UtcOffsetValid;
        slave.OnGeneral(PtpMessages.Announce(s_master, 1, tai, utcOffset: 37), s_masterAddress, now: 1000);
        Assert.Equal(0, Offset(Exchange(slave, now: 1000, timescaleOffset: 37)!.Value), 9);

        // The master itself says 38, then 1000, with no leap second announced: both refused.
        slave.OnGeneral(PtpMessages.Announce(s_master, 2, tai, utcOffset: 38), s_masterAddress, now: 1250);
        slave.OnGeneral(PtpMessages.Announce(s_master, 3, tai, utcOffset: 1000), s_masterAddress, now: 1500);
        Assert.Equal(2, slave.Counters.Invalid);
        Assert.Equal(0, Offset(Exchange(slave, now: 1500, timescaleOffset: 37)!.Value), 9);

        // leap61 announced, then 38 after it: taken; the next samples are converted with 38.
        slave.OnGeneral(PtpMessages.Announce(s_master, 4, tai | PtpMessages.Leap61, utcOffset: 37), s_masterAddress, now: 1750);
        slave.OnGeneral(PtpMessages.Announce(s_master, 5, tai, utcOffset: 38), s_masterAddress, now: 2000);
        Assert.Equal(2, slave.Counters.Invalid);
        Assert.Equal(0, Offset(Exchange(slave, now: 2000, timescaleOffset: 38)!.Value), 9);

        // A leap61 does not allow −1, nor +2; leap59 allows −1.
        slave.OnGeneral(PtpMessages.Announce(s_master, 6, tai | PtpMessages.Leap61, utcOffset: 38), s_masterAddress, now: 2250);
        slave.OnGeneral(PtpMessages.Announce(s_master, 7, tai, utcOffset: 37), s_masterAddress, now: 2300);
        slave.OnGeneral(PtpMessages.Announce(s_master, 8, tai, utcOffset: 40), s_masterAddress, now: 2350);
        Assert.Equal(4, slave.Counters.Invalid);
        slave.OnGeneral(PtpMessages.Announce(s_master, 9, tai | PtpMessages.Leap59, utcOffset: 38), s_masterAddress, now: 2400);
        slave.OnGeneral(PtpMessages.Announce(s_master, 10, tai, utcOffset: 37), s_masterAddress, now: 2450);
        Assert.Equal(4, slave.Counters.Invalid);
        Assert.Equal(0, Offset(Exchange(slave, now: 2450, timescaleOffset: 37)!.Value), 9);
    }

    [Fact]
    public void AnAnnounceFromThisHost_NeverBecomesTheMaster_NotEvenFirst_NorAfterTheMasterFallsSilent()
    {
        PtpSource slave = Slave();
        slave.OnGeneral(PtpMessages.Announce(s_backup, 1), s_ownAddress, now: 1000);
        Assert.Equal(1, slave.Counters.Invalid);
        Assert.Null(Exchange(slave, now: 1000, identity: s_backup, from: s_ownAddress));
        Assert.Equal(SourceState.Starting, slave.State);

        slave.OnGeneral(PtpMessages.Announce(s_master, 1), s_masterAddress, now: 1100);
        Assert.NotNull(Exchange(slave, now: 1100));

        // The master falls silent for longer than the timeout: no more samples from it, and a clock
        // on this host still cannot take over.
        long silent = 1100 + PtpSource.MasterTimeoutMilliseconds + 1;
        Assert.Null(Exchange(slave, now: silent));
        slave.OnGeneral(PtpMessages.Announce(s_backup, 2), s_ownAddress, now: silent);
        Assert.Null(Exchange(slave, now: silent, identity: s_backup, from: s_ownAddress));
        Assert.Equal(2, slave.Counters.Invalid);
    }

    [Fact]
    public void AnotherMaster_IsTakenOnlyOnceOursFallsSilent_AndOnTheSameUtcOffset()
    {
        PtpSource slave = Slave();
        slave.OnGeneral(PtpMessages.Announce(s_master, 1), s_masterAddress, now: 1000);
        // A second clock while ours is alive: not followed, and not an offence (a link may hold several).
        slave.OnGeneral(PtpMessages.Announce(s_backup, 1), s_backupAddress, now: 2000);
        Assert.Null(Exchange(slave, now: 2000, identity: s_backup, from: s_backupAddress));
        Assert.Equal(0, slave.Counters.Invalid);

        long silent = 1000 + PtpSource.MasterTimeoutMilliseconds + 1;
        // After the silence, a backup on another timescale (or with another offset) is not believed at once.
        slave.OnGeneral(PtpMessages.Announce(s_backup, 2, PtpMessages.PtpTimescale, utcOffset: 37), s_backupAddress, now: silent);
        Assert.Equal(1, slave.Counters.Invalid);
        // On the same timescale it takes over, and the old master's identity is just another clock.
        slave.OnGeneral(PtpMessages.Announce(s_backup, 3), s_backupAddress, now: silent + 100);
        Assert.Equal(2e-6, Offset(Exchange(slave, now: silent + 100, identity: s_backup, from: s_backupAddress, masterMinusSlave: 2e-6)!.Value), 9);
        Assert.Null(Exchange(slave, now: silent + 200));
        Assert.Equal(1, slave.Counters.Invalid);
    }

    /// <summary>
    /// A grandmaster that started with a wrong UTC offset and corrects it is followed again once it has
    /// announced the new one, and nothing else, for the settle time (the first version of the offset
    /// check pinned the first offset for the life of the process: the master was lost until a restart).
    /// </summary>
    [Fact]
    public void AMastersCorrectedUtcOffset_IsTakenOnceAnnouncedWithoutContradictionForTheSettleTime()
    {
        PtpSource slave = Slave();
        const byte tai = PtpMessages.PtpTimescale;
        slave.OnGeneral(PtpMessages.Announce(s_master, 1, tai, utcOffset: 0), s_masterAddress, now: 1000);
        Assert.NotNull(Exchange(slave, now: 1000));

        ushort sequence = 2;
        long now = 2000;
        for (; now < 2000 + PtpSource.OffsetSettleMilliseconds; now += 1000)
        {
            slave.OnGeneral(PtpMessages.Announce(s_master, sequence++, tai, utcOffset: 37), s_masterAddress, now);
        }
        // Not yet believed: the master is not followed meanwhile (silent to us after the timeout).
        Assert.Null(Exchange(slave, now: now - 1000, timescaleOffset: 37));
        slave.OnGeneral(PtpMessages.Announce(s_master, sequence, tai, utcOffset: 37), s_masterAddress, now);
        Assert.Equal(0, Offset(Exchange(slave, now: now, timescaleOffset: 37)!.Value), 9);
    }

    /// <summary>A spoofer announcing another offset in the master's name never gets it believed while the master keeps announcing its own.</summary>
    [Fact]
    public void ASpoofedUtcOffset_IsNeverTaken_WhileTheMasterContradictsIt()
    {
        PtpSource slave = Slave();
        const byte tai = PtpMessages.PtpTimescale;
        ushort sequence = 1;
        for (long now = 1000; now < 1000 + (3 * PtpSource.OffsetSettleMilliseconds); now += 1000)
        {
            slave.OnGeneral(PtpMessages.Announce(s_master, sequence++, tai, utcOffset: 37), s_masterAddress, now);
            slave.OnGeneral(PtpMessages.Announce(s_master, sequence++, tai, utcOffset: 1000), s_masterAddress, now + 1);
            slave.OnGeneral(PtpMessages.Announce(s_master, sequence++, tai, utcOffset: 1000), s_masterAddress, now + 500);
            Assert.Equal(0, Offset(Exchange(slave, now: now + 500, timescaleOffset: 37)!.Value), 9);
        }
    }

    /// <summary>
    /// After a master change, a Follow_Up of the new master that carries the sequence number of the old
    /// master's last Sync completes nothing: it would pair the new master's origin with the old one's arrival.
    /// </summary>
    [Fact]
    public void ANewMastersFollowUp_NeverCompletesTheOldMastersSync()
    {
        PtpSource slave = Slave();
        slave.OnGeneral(PtpMessages.Announce(s_master, 1), s_masterAddress, now: 1000);
        Assert.NotNull(Exchange(slave, now: 1000));
        // The old master's last Sync, its Follow_Up never sent.
        slave.OnEvent(PtpMessages.Sync(s_master, ++_sequence, originNanoseconds: null), s_masterAddress, Start);

        long silent = 1000 + PtpSource.MasterTimeoutMilliseconds + 1;
        slave.OnGeneral(PtpMessages.Announce(s_backup, 1), s_backupAddress, now: silent);
        slave.OnGeneral(PtpMessages.FollowUp(s_backup, _sequence, Start + (400 * 1_000_000)), s_backupAddress, now: silent);
        Assert.False(slave.WriteDelayRequest(new byte[44]));
        // Its own Sync and Follow_Up make a sample.
        Assert.NotNull(Exchange(slave, now: silent, identity: s_backup, from: s_backupAddress));
    }
}
