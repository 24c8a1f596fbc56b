using Appliance.Server.Configuration;
using Appliance.Server.Migration;
using O = Appliance.Server.Migration.MigrationOutcome;

namespace Appliance.Server.Tests;

/// <summary>
/// Every directive and option issue #15 lists, mapped as docs/migrating-from-chrony.md says: the
/// value written at its key, and the outcome of the directive's report line. Lines are separated by
/// '|'; the note checked is the last line's. Each migrated YAML binds (MigrationHelpers.Migrate).
/// </summary>
public class MigrationMapperTests
{
    public static TheoryData<string, string, string, O> Cases => new()
    {
        // server and its options.
        { "server a.example iburst", "sources[0].ntp.address", "a.example", O.Mapped },
        { "server a.example iburst", "sources[0].ntp.iburst", "true", O.Mapped },
        { "server a.example", "sources[0].ntp.iburst", "false", O.Mapped },
        { "server a.example minpoll 4 maxpoll 8", "sources[0].ntp.minpoll", "4", O.Mapped },
        { "server a.example minpoll 4 maxpoll 8", "sources[0].ntp.maxpoll", "8", O.Mapped },
        { "server a.example minpoll -6", "sources[0].ntp.minpoll", "-4", O.MappedWithDifference },
        { "server a.example maxpoll 24", "sources[0].ntp.maxpoll", "17", O.MappedWithDifference },
        { "server a.example maxpoll 2", "sources[0].ntp.maxpoll", "6", O.MappedWithDifference },
        { "server a.example port 1123", "sources[0].ntp.address", "a.example:1123", O.Mapped },
        { "server 2001:db8::1 port 1123", "sources[0].ntp.address", "[2001:db8::1]:1123", O.Mapped },
        { "server a.example nts", "sources[0].ntp.nts", "true", O.Mapped },
        { "server a.example nts ntsport 4461", "sources[0].ntp.address", "a.example:4461", O.Mapped },
        { "server a.example nts port 1123", "sources[0].ntp.address", "a.example", O.MappedWithDifference },
        { "server a.example prefer", "sources[0].ntp.address", "a.example", O.NotMapped },
        { "server a.example trust", "sources[0].ntp.address", "a.example", O.NotMapped },
        { "server a.example require", "sources[0].ntp.address", "a.example", O.NotMapped },
        { "server a.example key 1", "sources[0].ntp.address", "a.example", O.NotMapped },
        { "server b.example|server a.example noselect", "sources[1]", "(absent)", O.NotMapped },
        { "server a.example xleave", "sources[0].ntp.address", "a.example", O.MappedWithDifference },
        { "server a.example maxdelay 0.1", "sources[0].ntp.address", "a.example", O.MappedWithDifference },
        { "server a.example iburst bogus", "sources[0].ntp.address", "a.example", O.NotMapped },
        { "server a.example minpoll", "sources[0].ntp.minpoll", "(absent)", O.NotMapped },
        { "SERVER a.example IBURST", "sources[0].ntp.iburst", "true", O.Mapped },

        // pool and peer.
        { "pool 2.debian.pool.ntp.org iburst", "sources[3].ntp.address", "1.debian.pool.ntp.org", O.MappedWithDifference },
        { "pool 2.debian.pool.ntp.org iburst", "sources[4]", "(absent)", O.MappedWithDifference },
        { "pool 0.pool.ntp.org maxsources 2", "sources[1].ntp.address", "1.pool.ntp.org", O.MappedWithDifference },
        { "pool time.example.com iburst", "sources[1]", "(absent)", O.MappedWithDifference },
        { "peer 192.0.2.1", "sources[0].ntp.address", "192.0.2.1", O.MappedWithDifference },

        // refclock.
        { "refclock SOCK /run/chrony.ttyS0.sock refid PPS", "sources[0].gpsd.pps", "true", O.MappedWithDifference },
        { "refclock SHM 0 refid NMEA", "sources[0].gpsd.pps", "false", O.MappedWithDifference },
        { "refclock SHM 0 offset 0.5 delay 0.2 refid NMEA", "sources[0].gpsd.offset", "500ms", O.MappedWithDifference },
        { "refclock SHM 0 offset 0.5 delay 0.2 refid NMEA", "sources[0].gpsd.delay", "200ms", O.MappedWithDifference },
        { "refclock SHM 0 offset -0.25 delay 0.2", "sources[0].gpsd.offset", "-250ms", O.MappedWithDifference },
        { "refclock SHM 1 refid PPS", "sources[0].gpsd.pps", "true", O.MappedWithDifference },
        { "refclock SHM 0 refid NMEA|refclock SOCK /run/chrony.ttyS0.sock", "sources[1]", "(absent)", O.MappedWithDifference },
        { "refclock PPS /dev/pps0", "sources[0].pps.device", "/dev/pps0", O.Mapped },
        { "refclock PPS /dev/pps1:clear refid GPS2", "sources[0].pps.edge", "clear", O.Mapped },
        { "refclock SHM 0 refid NMEA noselect|refclock PPS /dev/pps0 lock NMEA", "sources[1].pps.lock", "127.0.0.1:2947", O.Mapped },
        { "refclock PPS /dev/pps0 lock NMEA|refclock SHM 0 refid NMEA", "sources[0].pps.lock", "127.0.0.1:2947", O.MappedWithDifference },
        { "refclock PPS /dev/pps0 lock GPS", "sources[0].pps.lock", "(absent)", O.MappedWithDifference },
        { "refclock PPS /dev/pps0 prefer", "sources[0].pps.device", "/dev/pps0", O.NotMapped },
        { "refclock PHC /dev/ptp0", "sources[0].phc.utc-offset", "0s", O.Mapped },
        { "refclock PHC /dev/ptp0 tai dpoll -2", "sources[0].phc.utc-offset", "37s", O.MappedWithDifference },
        { "refclock PHC /dev/ptp0 tai dpoll -2", "sources[0].phc.poll", "-2", O.MappedWithDifference },
        { "refclock PHC /dev/ptp0:extpps poll 0 precision 1e-7 refid PPS", "sources", "(absent)", O.NotMapped },
        { "refclock MEINBERG 0", "sources", "(absent)", O.NotMapped },
        { "refclock PPS :clear", "sources", "(absent)", O.NotMapped },
        { "refclock PHC :nocrossts tai", "sources", "(absent)", O.NotMapped },

        // allow and deny, chrony's subnet forms and `all`.
        { "allow", "ntp.access", "(absent)", O.Mapped },
        { "allow all", "ntp.access", "(absent)", O.Mapped },
        { "allow", "ntp.listen", "(absent)", O.Mapped },
        { "allow 192.168.1.0/24", "ntp.access.allow", "192.168.1.0/24", O.Mapped },
        { "allow 3.4.5", "ntp.access.allow", "3.4.5.0/24", O.Mapped },
        { "allow 11.10.31/24", "ntp.access.allow", "11.10.31.0/24", O.Mapped },
        { "allow 1.2.3.4", "ntp.access.allow", "1.2.3.4", O.Mapped },
        { "allow 1.2.3.4/16", "ntp.access.allow", "1.2.0.0/16", O.Mapped },
        { "allow 2001:db8::/32", "ntp.access.allow", "2001:db8::/32", O.Mapped },
        { "allow 0/0", "ntp.access.allow", "0.0.0.0/0", O.Mapped },
        { "allow ::/0", "ntp.access.allow", "::/0", O.Mapped },
        { "allow|deny 192.0.2.66", "ntp.access.deny", "192.0.2.66", O.Mapped },
        { "allow 1.2.3.4|deny 1.2.3.0/24|allow 1.2.0.0/16", "ntp.access.allow", "1.2.3.4, 1.2.0.0/16", O.Mapped },
        { "allow 1.2.3.4|deny 1.2.3.0/24|allow all 1.2.0.0/16", "ntp.access.allow", "1.2.0.0/16", O.Mapped },
        { "allow 1.2.3.4|deny 1.2.3.0/24|allow all 1.2.0.0/16", "ntp.access.deny", "(absent)", O.Mapped },
        { "allow ntp.example.net", "ntp.listen", "127.0.0.1:123, [::1]:123", O.NotMapped },
        { "server a.example", "ntp.listen", "127.0.0.1:123, [::1]:123", O.Mapped },

        // listening.
        { "allow|bindaddress 192.0.2.1", "ntp.listen", "192.0.2.1:123, [::]:123", O.Mapped },
        { "allow|bindaddress 2001:db8::1", "ntp.listen", "0.0.0.0:123, [2001:db8::1]:123", O.Mapped },
        { "allow|port 1123", "ntp.listen", "0.0.0.0:1123, [::]:1123", O.Mapped },
        { "allow|port 0", "ntp.listen", "127.0.0.1:123, [::1]:123", O.Mapped },
        { "bindaddress 192.0.2", "ntp.listen", "127.0.0.1:123, [::1]:123", O.NotMapped },
        { "allow|hwtimestamp *", "ntp.hardware-timestamps", "true", O.MappedWithDifference },
        { "allow|hwtimestamp eth0 rxfilter all", "ntp.hardware-timestamps", "true", O.MappedWithDifference },

        // rate limiting.
        { "allow|ratelimit interval 1 burst 16 leak 3", "ntp.rate-limit.interval", "2s", O.Mapped },
        { "allow|ratelimit interval 1 burst 16 leak 3", "ntp.rate-limit.burst", "16", O.Mapped },
        { "allow|ratelimit interval 1 burst 16 leak 3", "ntp.rate-limit.leak", "3", O.Mapped },
        { "allow|ratelimit", "ntp.rate-limit.interval", "8s", O.Mapped },
        { "allow|ratelimit interval -19", "ntp.rate-limit.interval", "1ms", O.MappedWithDifference },
        { "allow|ratelimit leak 0", "ntp.rate-limit.leak", "1", O.MappedWithDifference },
        { "allow|ratelimit burst 1000000", "ntp.rate-limit.burst", "1000", O.MappedWithDifference },
        { "allow|ratelimit interval x", "ntp.rate-limit.interval", "8s", O.NotMapped },
        { "allow|clientloglimit 1048576", "ntp.rate-limit.clients", "21845", O.MappedWithDifference }, // 1048576 bytes / RateLimiter.BytesPerClient (48)
        { "allow|clientloglimit 100", "ntp.rate-limit.clients", "1024", O.MappedWithDifference },
        { "allow|noclientlog", "ntp.rate-limit", "(absent)", O.NoCounterpart },

        // NTS server.
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem", "nts-ke.private-key", "/k.pem", O.Mapped },
        { "allow|ntsserverkey /k.pem|ntsservercert /c.pem", "nts-ke.certificate", "/c.pem", O.Mapped },
        { "allow|ntsservercert /c.pem", "nts-ke", "(absent)", O.NotMapped },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsport 4461", "nts-ke.listen", "0.0.0.0:4461, [::]:4461", O.Mapped },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsport 4460", "nts-ke.listen", "(absent)", O.Mapped },
        { "ntsservercert /c.pem|ntsserverkey /k.pem", "nts-ke.listen", "127.0.0.1:4460, [::1]:4460", O.Mapped },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsdumpdir /var/lib/chrony", "nts-ke.keys.storage", "/var/lib/chrony/appliance-nts-keys", O.MappedWithDifference },
        { "ntsdumpdir /var/lib/chrony", "nts-ke", "(absent)", O.NoCounterpart },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsrotate 3600", "nts-ke.keys.rotation", "1h", O.Mapped },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsrotate 0", "nts-ke.keys.rotation", "30d", O.MappedWithDifference },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsntpserver ntp.example.net", "nts-ke.ntp-server", "ntp.example.net", O.Mapped },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|maxntsconnections 500", "nts-ke.max-connections", "500", O.Mapped },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsratelimit interval 4 burst 3", "nts-ke.client-limit.connections", "3", O.Mapped },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsratelimit interval 4 burst 3", "nts-ke.client-limit.interval", "16s", O.Mapped },
        { "server a.example nts|ntstrustedcerts /etc/ca.pem", "sources[0].ntp.trust", "/etc/ca.pem", O.Mapped },
        { "ntsrotate 3600", "nts-ke", "(absent)", O.NoCounterpart },
        { "allow|ntsservercert /c.pem|ntsserverkey /k.pem|ntsaeads 30 15", "nts-ke.aeads", "AES-128-GCM-SIV, AES-SIV-CMAC-256", O.Mapped },
        { "server a.example nts|ntsaeads 15 30", "sources[0].ntp.aeads", "AES-SIV-CMAC-256, AES-128-GCM-SIV", O.Mapped },
        { "server a.example nts|ntsaeads 16 15", "sources[0].ntp.aeads", "AES-SIV-CMAC-256", O.MappedWithDifference },
        { "server a.example nts|ntsaeads 16", "sources[0].ntp.aeads", "(absent)", O.NotMapped },
        { "server a.example|ntsaeads 30", "sources[0].ntp.aeads", "(absent)", O.NoCounterpart },

        // the clock.
        { "local", "clock.local.stratum", "10", O.Mapped },
        { "local stratum 3 orphan", "clock.local.stratum", "3", O.MappedWithDifference },
        { "local stratum 5 distance 1.0", "clock.local.stratum", "5", O.MappedWithDifference },
        { "local stratum 16", "clock.local.stratum", "15", O.MappedWithDifference },
        { "server a.example|makestep 0.1 3", "clock.step-threshold", "100ms", O.MappedWithDifference },
        { "server a.example|makestep 1000 3", "clock.step-threshold", "10s", O.MappedWithDifference },
        { "server a.example|makestep 1", "clock.step-threshold", "(absent)", O.NotMapped },
        { "server a.example|maxchange 1000 1 2", "clock.panic-threshold", "1000s", O.MappedWithDifference },
        { "server a.example|leapsectz right/UTC", "clock.leap-seconds", "/usr/share/zoneinfo/leap-seconds.list", O.MappedWithDifference },
        { "server a.example|leapseclist /etc/leap.list", "clock.leap-seconds", "/etc/leap.list", O.Mapped },
        { "server a.example|minsources 2", "clock.min-sources", "2", O.Mapped },
        { "server a.example|smoothtime 400 0.01 leaponly", "clock", "(absent)", O.NotMapped },
        { "server a.example|leapsecmode slew", "clock", "(absent)", O.NotMapped },

        // no counterpart needed, and what is not chrony.
        { "server a.example|driftfile /var/lib/chrony/drift", "sources[1]", "(absent)", O.NoCounterpart },
        { "server a.example|rtcsync", "sources[1]", "(absent)", O.NoCounterpart },
        { "server a.example|logdir /var/log/chrony", "sources[1]", "(absent)", O.NoCounterpart },
        { "server a.example|cmdport 0", "sources[1]", "(absent)", O.NoCounterpart },
        { "server a.example|dumpdir /var/run/chrony", "sources[1]", "(absent)", O.NoCounterpart },
        { "server a.example|keyfile /etc/chrony/chrony.keys", "sources[1]", "(absent)", O.NoCounterpart },
        { "server a.example|maxupdateskew 100.0", "sources[1]", "(absent)", O.NoCounterpart },
        { "server a.example|maxdistance 3", "sources[1]", "(absent)", O.NotMapped },
        { "server a.example|frobnicate 3", "sources[1]", "(absent)", O.NotMapped },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Directive_IsMappedAsDocumented(string lines, string path, string expected, O outcome)
    {
        string[] split = lines.Split('|');
        Migrated migrated = MigrationHelpers.Migrate(string.Join('\n', split) + "\n");

        Assert.Equal(expected, migrated[path]);
        MigrationNote note = migrated.NoteAt(split.Length);
        Assert.True(outcome == note.Outcome, $"{note}\nexpected {outcome}");
    }

    [Fact]
    public void EveryLine_GetsExactlyOneNote_WithItsFileAndLine()
    {
        string text = "# comment\n  ! another\n; third\n% fourth\nserver a.example iburst\n\nallow 192.0.2.0/24\ndriftfile /x\nbogus line\nrtcsync\n";
        Migrated migrated = MigrationHelpers.Migrate(text);

        Assert.Equal([5, 7, 8, 9, 10], migrated.Result.Notes.Where(n => n.Line > 0).Select(n => n.Line).ToArray());
        Assert.All(migrated.Result.Notes, n => Assert.EndsWith("chrony.conf", n.File, StringComparison.Ordinal));
        Assert.Contains("chrony.conf:9: bogus: not mapped:", migrated.NoteAt(9).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void NoAllow_ListensOnLoopbackOnly_AndSaysSo()
    {
        Migrated migrated = MigrationHelpers.Migrate("server a.example iburst\n");

        Assert.Equal("127.0.0.1:123, [::1]:123", migrated["ntp.listen"]);
        MigrationNote note = migrated.FileNote("(allow)");
        Assert.Equal(O.MappedWithDifference, note.Outcome);
        Assert.Contains("loopback only", note.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Serving_WithoutRatelimit_KeepsTheAppliancesLimit_AndSaysHowToTurnItOff()
    {
        Migrated migrated = MigrationHelpers.Migrate("server a.example iburst\nallow\n");

        Assert.Equal("(absent)", migrated["ntp.rate-limit"]);
        Assert.Contains("rate-limit: off", migrated.FileNote("(ratelimit)").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NoSourceAtAll_ServesTheLocalClock_SoThatTheYamlIsValid_AndReportsItNotMapped()
    {
        Migrated migrated = MigrationHelpers.Migrate("driftfile /x\n");

        Assert.Equal(ConfigKeys.ClockLocalStratum.Default, migrated["clock.local.stratum"]);
        Assert.Equal(O.NotMapped, migrated.FileNote("(sources)").Outcome);
    }

    [Fact]
    public void SourcesFile_TakesOnlyServerPoolAndPeer()
    {
        string dir = MigrationHelpers.Scratch();
        Directory.CreateDirectory(Path.Combine(dir, "etc/chrony/sources.d"));
        File.WriteAllText(Path.Combine(dir, "etc/chrony/sources.d/dhcp.sources"), "server 192.0.2.7 iburst\nallow\n");
        Migrated migrated = MigrationHelpers.Migrate("sourcedir /etc/chrony/sources.d\n", dir);

        Assert.Equal("192.0.2.7", migrated["sources[0].ntp.address"]);
        Assert.Equal("127.0.0.1:123, [::1]:123", migrated["ntp.listen"]);
        MigrationNote allow = Assert.Single(migrated.Result.Notes, n => n.Directive == "allow");
        Assert.Equal(O.NotMapped, allow.Outcome);
        Assert.Equal("/etc/chrony/sources.d/dhcp.sources", allow.File);
    }

    [Theory]
    [InlineData("server")]
    [InlineData("server a.example:123")]
    [InlineData("server a.example minpoll x maxpoll")]
    [InlineData("refclock")]
    [InlineData("refclock SHM x")]
    [InlineData("refclock PPS")]
    [InlineData("allow 300.1.2.3")]
    [InlineData("allow 1.2.3.4/40")]
    [InlineData("allow all 10.0.0.0/8 extra")]
    [InlineData("deny ::1/200")]
    [InlineData("port 70000")]
    [InlineData("ratelimit interval")]
    [InlineData("local stratum x distance")]
    [InlineData("makestep x y")]
    [InlineData("maxchange 1")]
    [InlineData("clientloglimit lots")]
    [InlineData("ntsrotate soon")]
    [InlineData("hwtimestamp")]
    [InlineData("ntstrustedcerts")]
    [InlineData("ntsaeads")]
    [InlineData("bindaddress")]
    [InlineData("\u0000\u0001 \u00ff")]
    public void MalformedDirective_IsANotMappedLine_NeverAnException(string line)
    {
        Migrated migrated = MigrationHelpers.Migrate($"server a.example iburst\n{line}\n");

        Assert.Equal(O.NotMapped, migrated.NoteAt(2).Outcome);
    }

    [Fact]
    public void Yaml_IsBuiltFromTheModel_ChronyTextReachesItOnlyAsQuotedScalars()
    {
        // A path with YAML syntax in it stays one scalar: the model quotes it, nothing is pasted.
        Migrated migrated = MigrationHelpers.Migrate("server a.example\nleapseclist /x\":{evil:[1]}\n");

        Assert.Equal("/x\":{evil:[1]}", migrated["clock.leap-seconds"]);
        Assert.Equal("(absent)", migrated["clock.evil"]);
    }
}
