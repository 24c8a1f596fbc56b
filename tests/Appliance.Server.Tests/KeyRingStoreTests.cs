using System.Diagnostics;
using System.Text.RegularExpressions;
using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Nts;

namespace Appliance.Server.Tests;

public partial class KeyRingStoreTests
{
    private static readonly DateTimeOffset s_t0 = DateTimeOffset.FromUnixTimeSeconds(1_795_435_200);

    private static string TempFile() => Path.Combine(Directory.CreateTempSubdirectory("keys").FullName, "ring", "nts-keys.json");

    private static byte[] SealWith(CookieKeyRing ring)
    {
        var cookie = new byte[NtsCookie.Length(AeadAlgorithm.AesSivCmac256)];
        NtsCookie.Seal(ring.Current, new byte[16], AeadAlgorithm.AesSivCmac256, new byte[32], new byte[32], cookie);
        return cookie;
    }

    /// <summary>A fleet secret as an operator makes one: mode 0600.</summary>
    private static void WriteSecret(string path, byte[] secret)
    {
        File.WriteAllBytes(path, secret);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }

    private static CookieFailure Open(CookieKeyRing ring, byte[] cookie) => NtsCookie.Open(ring, cookie, new byte[64], new byte[64], out _);

    [Fact]
    public void Rotation_NextKeyReady_OldCookiesOpenForKeepPeriods()
    {
        var store = new KeyRingStore(new NtsKeysConfig(TempFile(), TimeSpan.FromHours(1), 2, null));
        store.Update(s_t0, out CookieKeyRing ring0);
        uint p = store.PeriodOf(s_t0);
        Assert.Equal(p, ring0.Current.Id);
        Assert.NotNull(ring0.Find(p + 1)); // the next key exists before it is needed
        byte[] cookie = SealWith(ring0);

        store.Update(s_t0.AddHours(1), out CookieKeyRing ring1);
        Assert.Equal(p + 1, ring1.Current.Id);
        Assert.Same(ring0.Find(p + 1), ring1.Current);
        Assert.Equal(CookieFailure.None, Open(ring1, cookie));

        store.Update(s_t0.AddHours(2), out CookieKeyRing ring2);
        Assert.Equal(CookieFailure.None, Open(ring2, cookie)); // keep = 2
        store.Update(s_t0.AddHours(3), out CookieKeyRing ring3);
        Assert.Equal(CookieFailure.UnknownKey, Open(ring3, cookie));
        Assert.Equal(4, ring3.Keys.Count); // p+1, p+2, p+3 (current), p+4 (next)
    }

    [Fact]
    public void ForceRotate_AFreshCurrentKey_OldCookiesOpen_TheScheduleStays_AndARestartKeepsIt()
    {
        string file = TempFile();
        var config = new NtsKeysConfig(file, TimeSpan.FromHours(1), 2, null);
        var store = new KeyRingStore(config);
        store.Update(s_t0, out CookieKeyRing before);
        uint p = store.PeriodOf(s_t0);
        byte[] next = before.Find(p + 1)!.Key;
        byte[] cookie = SealWith(before);

        CookieKeyRing forced = store.ForceRotate(s_t0.AddMinutes(10));

        // The new current key takes the next id but not the next key's bytes: those were on disk too.
        Assert.Equal(p + 1, forced.Current.Id);
        Assert.NotEqual(next, forced.Current.Key);
        Assert.NotNull(forced.Find(p + 2));
        Assert.Equal(CookieFailure.None, Open(forced, cookie));
        Assert.Equal(s_t0.AddHours(1), store.NextRotation(s_t0.AddMinutes(10)));
        store.Save();

        // The advance is persisted: a restart seals with the forced key, and the schedule moves on from it.
        var restarted = new KeyRingStore(config);
        restarted.Load();
        Assert.False(restarted.Update(s_t0.AddMinutes(20), out CookieKeyRing after));
        Assert.Equal(forced.Current.Key, after.Current.Key);
        restarted.Update(s_t0.AddHours(1), out CookieKeyRing rotated);
        Assert.Equal(p + 2, rotated.Current.Id);
        Assert.Equal(CookieFailure.None, Open(rotated, cookie)); // keep = 2: p is two before p + 2
        restarted.Update(s_t0.AddHours(2), out CookieKeyRing later);
        Assert.Equal(CookieFailure.UnknownKey, Open(later, cookie));
    }

    [Fact]
    public void ForceRotate_InFleetMode_Throws()
    {
        string secret = Path.Combine(Directory.CreateTempSubdirectory("fleet").FullName, "fleet.key");
        WriteSecret(secret, new byte[32]);
        var store = new KeyRingStore(new NtsKeysConfig("unused", TimeSpan.FromHours(1), 2, secret));
        Assert.Throws<InvalidOperationException>(() => store.ForceRotate(s_t0));
    }

    [Fact]
    public void Reconfigure_ANewRotation_KeepsTheCurrentKeyUntilTheNewPeriodEnds_IdsOnlyGrow()
    {
        var store = new KeyRingStore(new NtsKeysConfig(TempFile(), TimeSpan.FromHours(24), 7, null));
        DateTimeOffset now = s_t0.AddHours(5);
        store.Update(now, out CookieKeyRing daily);
        byte[] cookie = SealWith(daily);

        CookieKeyRing hourly = store.Reconfigure(new NtsKeysConfig("ignored", TimeSpan.FromHours(1), 3, "ignored"), now);

        Assert.Same(daily.Current, hourly.Current);
        Assert.Equal(TimeSpan.FromHours(1), store.Config.Rotation);
        Assert.Equal(3, store.Config.Keep);
        Assert.NotEqual("ignored", store.Config.Storage);
        Assert.Equal(s_t0.AddHours(6), store.NextRotation(now));
        store.Update(s_t0.AddHours(6), out CookieKeyRing turned);
        Assert.Equal(daily.Current.Id + 1, turned.Current.Id);
        Assert.Equal(CookieFailure.None, Open(turned, cookie));
        // keep = 3 keys before the current one, hourly from now on: the daily key's id is 3 before the current at 8 h.
        store.Update(s_t0.AddHours(8), out CookieKeyRing kept);
        Assert.Equal(CookieFailure.None, Open(kept, cookie));
        store.Update(s_t0.AddHours(9), out CookieKeyRing gone);
        Assert.Equal(CookieFailure.UnknownKey, Open(gone, cookie));
    }

    [Fact]
    public void Load_AFileWrittenBeforeForcedRotations_HasNoAdvance_AndLoads()
    {
        string file = TempFile();
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        uint p = (uint)(s_t0.ToUnixTimeSeconds() / 3600);
        string key = Convert.ToBase64String(new byte[CookieKey.KeyLength]);
        File.WriteAllText(file, $$$"""{"Version":1,"RotationSeconds":3600,"Keys":[{"Id":{{{p}}},"Key":"{{{key}}}"}]}""");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var store = new KeyRingStore(new NtsKeysConfig(file, TimeSpan.FromHours(1), 2, null));
        store.Load();
        store.Update(s_t0, out CookieKeyRing ring);
        Assert.Equal(p, ring.Current.Id);
        Assert.Equal(new byte[CookieKey.KeyLength], ring.Current.Key);
    }

    [Fact]
    public void Persistence_RestartKeepsEveryKey_FileIs0600()
    {
        string file = TempFile();
        var config = new NtsKeysConfig(file, TimeSpan.FromHours(24), 7, null);
        var first = new KeyRingStore(config);
        first.Update(s_t0, out CookieKeyRing ring);
        first.Save();
        byte[] cookie = SealWith(ring);

        var second = new KeyRingStore(config);
        second.Load();
        Assert.False(second.Update(s_t0, out CookieKeyRing restored));
        Assert.Equal(ring.Current.Key, restored.Current.Key);
        Assert.Equal(CookieFailure.None, Open(restored, cookie));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(file)!, "*.tmp"));
        // The previous good copy: the same ring, 0600, in a file of its own (another inode, so damage to one is not damage to both).
        Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(second.CopyPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(second.CopyPath));
        Assert.False(first.Unsaved);
        Assert.Null(second.Recovered);
        Assert.True(second.LoadedFromDisk);
    }

    /// <summary>How a key file is found damaged at start: truncated anywhere, emptied, overwritten, gone.</summary>
    public static TheoryData<string> Damages() => ["truncated to half", "truncated to 1 byte", "emptied", "zeroed", "a flipped byte"];

    private static void Damage(string file, string damage)
    {
        byte[] bytes = File.ReadAllBytes(file);
        switch (damage)
        {
            case "truncated to half":
                File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
                break;
            case "truncated to 1 byte":
                File.WriteAllBytes(file, bytes[..1]);
                break;
            case "emptied":
                File.WriteAllBytes(file, []);
                break;
            case "zeroed":
                File.WriteAllBytes(file, new byte[bytes.Length]);
                break;
            case "a flipped byte":
                // Inside the first key's base64: the JSON stays valid only if the flip keeps base64, so flip to a non-base64 byte.
                int at = Array.IndexOf(bytes, (byte)'=') - 3;
                bytes[at] = (byte)'#';
                File.WriteAllBytes(file, bytes);
                break;
            case "removed":
                File.Delete(file);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(damage));
        }
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public void Load_ADamagedKeyFile_IsRecoveredFromThePreviousCopy_TheSameKeys_AndSaid(string damage)
    {
        string file = TempFile();
        var config = Random(file);
        var first = new KeyRingStore(config);
        first.Update(s_t0, out CookieKeyRing ring);
        first.Save();
        byte[] cookie = SealWith(ring);
        byte[] good = File.ReadAllBytes(file);
        Damage(file, damage);
        byte[]? damaged = File.Exists(file) ? File.ReadAllBytes(file) : null;

        var second = new KeyRingStore(config);
        second.Load();

        // The same keys: a cookie sealed before the damage opens, and nothing new was made.
        Assert.False(second.Update(s_t0, out CookieKeyRing recovered));
        Assert.Equal(CookieFailure.None, Open(recovered, cookie));
        Assert.Equal(ring.Keys.Select(k => k.Key), recovered.Keys.Select(k => k.Key));
        Assert.NotNull(second.Recovered);
        Assert.StartsWith(file + " ", second.Recovered, StringComparison.Ordinal);
        Assert.Contains("recovered from its previous copy " + second.CopyPath, second.Recovered, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', second.Recovered);
        Assert.True(second.Unsaved);
        // The bad file is kept aside for a look (it may show tampering); a save then writes the key file back.
        Assert.Equal(damaged, File.Exists(second.SetAsidePath) ? File.ReadAllBytes(second.SetAsidePath) : null);
        second.Save();
        Assert.Equal(good, File.ReadAllBytes(file));
        Assert.False(second.Unsaved);
    }

    [Fact]
    public void Load_ARemovedKeyFile_WithAGoodCopy_IsRefused_SayingHowToKeepTheKeysOrStartAnew()
    {
        // Removing the key file is how an operator starts a new ring after a leak: the copy must not bring the same keys back in silence.
        string file = TempFile();
        Saved(file);
        var store = new KeyRingStore(Random(file));
        File.Delete(file);

        var e = Assert.Throws<InvalidDataException>(store.Load);

        Assert.StartsWith($"{file} is missing, but its previous copy {store.CopyPath} holds a ring of ", e.Message, StringComparison.Ordinal);
        Assert.Contains($"mv {store.CopyPath} {file}", e.Message, StringComparison.Ordinal);
        Assert.Contains($"remove {store.CopyPath} too", e.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(store.CopyPath));
        Assert.False(File.Exists(file));
    }

    [Theory]
    [InlineData("removed")]
    [InlineData("truncated to half")]
    [InlineData("older")]
    public void Load_AGoodKeyFile_WithABadCopy_LoadsIt_SaysSo_AndTheNextSaveWritesTheCopyAgain(string copyDamage)
    {
        string file = TempFile();
        var config = Random(file);
        var first = new KeyRingStore(config);
        first.Update(s_t0, out _);
        first.Save();
        byte[] older = File.ReadAllBytes(first.CopyPath);
        first.ForceRotate(s_t0);
        first.Save();
        byte[] good = File.ReadAllBytes(file);
        if (copyDamage == "older")
        {
            File.WriteAllBytes(first.CopyPath, older); // a save cut off between the two files
        }
        else
        {
            Damage(first.CopyPath, copyDamage);
        }

        var second = new KeyRingStore(config);
        second.Load();

        Assert.Null(second.Recovered);
        Assert.NotNull(second.CopyProblem);
        Assert.StartsWith(second.CopyPath + " ", second.CopyProblem, StringComparison.Ordinal);
        Assert.EndsWith($"it is written again from {file}", second.CopyProblem, StringComparison.Ordinal);
        Assert.True(second.Unsaved);
        second.Update(s_t0, out _);
        second.Save();
        Assert.Equal(good, File.ReadAllBytes(file));
        Assert.Equal(good, File.ReadAllBytes(second.CopyPath));

        var third = new KeyRingStore(config);
        third.Load();
        Assert.Null(third.CopyProblem);
        Assert.False(third.Unsaved);
    }

    [Theory]
    [InlineData("truncated to half", "truncated to half")]
    [InlineData("emptied", "a flipped byte")]
    [InlineData("removed", "zeroed")]
    [InlineData("a flipped byte", "removed")]
    public void Load_ADamagedKeyFile_WithNoGoodCopy_IsRefused_NamingBothFilesAndWhatToDo(string fileDamage, string copyDamage)
    {
        string file = TempFile();
        Saved(file);
        var store = new KeyRingStore(Random(file));
        Damage(file, fileDamage);
        Damage(store.CopyPath, copyDamage);
        byte[]? before = File.Exists(file) ? File.ReadAllBytes(file) : null;

        var e = Assert.Throws<InvalidDataException>(store.Load);

        Assert.StartsWith(file + " ", e.Message, StringComparison.Ordinal);
        Assert.Contains(copyDamage == "removed" ? $"there is no previous copy ({store.CopyPath})" : $"its previous copy {store.CopyPath} ", e.Message, StringComparison.Ordinal);
        Assert.Contains($"restore the files from a backup, or remove {file} and {store.CopyPath} to start a new ring", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        // Never a silent new ring, and nothing touched: the files stay for the operator to look at.
        Assert.Equal(before, File.Exists(file) ? File.ReadAllBytes(file) : null);
        Assert.False(File.Exists(store.SetAsidePath));
    }

    [Fact]
    public void Load_AKeyFileOpenToOthers_IsRefused_EvenWithAGoodCopy()
    {
        // The copy holds the same keys, exposed alike: recovering from it would hide the exposure.
        string file = TempFile();
        Saved(file);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var store = new KeyRingStore(Random(file));
        var e = Assert.Throws<InvalidDataException>(store.Load);
        Assert.StartsWith(file + " is open to others (mode 0604)", e.Message, StringComparison.Ordinal);
        Assert.Contains($"Remove it and {store.CopyPath} to start a new ring", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FleetMode_TwoAppliancesDeriveTheSameRing_AnotherSecretDoesNot()
    {
        string dir = Directory.CreateTempSubdirectory("fleet").FullName;
        string secretA = Path.Combine(dir, "a.key"), secretB = Path.Combine(dir, "b.key");
        WriteSecret(secretA, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        WriteSecret(secretB, Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
        KeyRingStore Make(string secret) => new(new NtsKeysConfig(Path.Combine(dir, "unused.json"), TimeSpan.FromHours(24), 7, secret));

        Make(secretA).Update(s_t0, out CookieKeyRing a1);
        Make(secretA).Update(s_t0, out CookieKeyRing a2);
        Make(secretB).Update(s_t0, out CookieKeyRing b);
        Assert.Equal(a1.Current.Key, a2.Current.Key);
        Assert.Equal(CookieFailure.None, Open(a2, SealWith(a1)));
        Assert.Equal(CookieFailure.Invalid, Open(b, SealWith(a1)));
        // Fleet keys are derived for the whole keep window, past periods included.
        Assert.Equal(9, a1.Keys.Count);
        Assert.False(File.Exists(Path.Combine(dir, "unused.json")));
    }

    [Fact]
    public void FleetSecret_TooShort_IsRefusedWithTheFix()
    {
        string file = Path.Combine(Directory.CreateTempSubdirectory("fleet").FullName, "short.key");
        WriteSecret(file, new byte[8]);
        var e = Assert.Throws<InvalidDataException>(() => new KeyRingStore(new NtsKeysConfig("x", TimeSpan.FromHours(1), 1, file)));
        Assert.Contains("/dev/urandom", e.Message, StringComparison.Ordinal);
    }

    /// <summary>The fleet secret derives every key of the fleet: it is held to the key file's rules (on a32f6d2 it was read whatever its mode and size).</summary>
    [Fact]
    public void FleetSecret_OpenToOthersOrTooLong_IsRefusedWithTheFix()
    {
        string dir = Directory.CreateTempSubdirectory("fleet").FullName;
        string open = Path.Combine(dir, "open.key");
        WriteSecret(open, new byte[32]);
        File.SetUnixFileMode(open, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var e = Assert.Throws<InvalidDataException>(() => new KeyRingStore(new NtsKeysConfig("x", TimeSpan.FromHours(1), 1, open)));
        Assert.StartsWith(open + " is open to others (mode 0604)", e.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600 " + open, e.Message, StringComparison.Ordinal);
        File.SetUnixFileMode(open, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        Assert.Throws<InvalidDataException>(() => new KeyRingStore(new NtsKeysConfig("x", TimeSpan.FromHours(1), 1, open)));
        // Readable by the service's group, as an operator provisions it (root:appliance 0640): taken.
        File.SetUnixFileMode(open, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        Assert.True(new KeyRingStore(new NtsKeysConfig("x", TimeSpan.FromHours(1), 1, open)).FleetMode);

        string huge = Path.Combine(dir, "huge.key");
        WriteSecret(huge, new byte[1 << 20]);
        e = Assert.Throws<InvalidDataException>(() => new KeyRingStore(new NtsKeysConfig("x", TimeSpan.FromHours(1), 1, huge)));
        Assert.StartsWith(huge + " is 1048576 bytes, more than a fleet secret can be", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Temporary files of saves that never finished, under any process id, are gone after a start (on a32f6d2 they stayed, readable by others).</summary>
    [Fact]
    public void Load_RemovesTheTemporaryFilesOfUnfinishedSaves()
    {
        string file = TempFile();
        Saved(file);
        string directory = Path.GetDirectoryName(file)!;
        string stale = Path.Combine(directory, $".{Path.GetFileName(file)}.999999.tmp");
        File.WriteAllText(stale, "keys of a save that crashed");
        File.SetUnixFileMode(stale, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        string unrelated = Path.Combine(directory, ".other.json.1.tmp");
        File.WriteAllText(unrelated, "not ours");

        new KeyRingStore(Random(file)).Load();

        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(unrelated));
    }

    private static NtsKeysConfig Random(string file, TimeSpan? rotation = null) => new(file, rotation ?? TimeSpan.FromHours(24), 7, null);

    private static string Saved(string file, TimeSpan? rotation = null)
    {
        var store = new KeyRingStore(Random(file, rotation));
        store.Update(s_t0, out _);
        store.Save();
        return File.ReadAllText(file);
    }

    [Fact]
    public void Save_AStaleTemporaryFileIsReplaced_NotReusedWithItsMode()
    {
        // A crash left the temporary file a process of our id would write (pids repeat after a reboot), mode 0644.
        string file = TempFile();
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        string temporary = Path.Combine(Path.GetDirectoryName(file)!, $".{Path.GetFileName(file)}.{Environment.ProcessId}.tmp");
        File.WriteAllText(temporary, "stale");
        File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        Saved(file);

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        Assert.False(File.Exists(temporary));
        new KeyRingStore(Random(file)).Load();
    }

    [Fact]
    public void Save_ATemporaryFileThatIsALink_IsNotFollowed()
    {
        string file = TempFile();
        string directory = Path.GetDirectoryName(file)!;
        Directory.CreateDirectory(directory);
        string elsewhere = Path.Combine(Path.GetDirectoryName(directory)!, "elsewhere.txt");
        File.WriteAllText(elsewhere, "not yours");
        File.CreateSymbolicLink(Path.Combine(directory, $".{Path.GetFileName(file)}.{Environment.ProcessId}.tmp"), elsewhere);

        Saved(file);

        Assert.Equal("not yours", File.ReadAllText(elsewhere));
        Assert.Null(new FileInfo(file).LinkTarget);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
    }

    [Theory]
    [InlineData(UnixFileMode.GroupRead)]
    [InlineData(UnixFileMode.OtherRead)]
    [InlineData(UnixFileMode.GroupWrite)]
    public void Load_AKeyFileOpenToOthers_IsRefused_WithTheFix(UnixFileMode extra)
    {
        string file = TempFile();
        Saved(file);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | extra);
        var e = Assert.Throws<InvalidDataException>(() => new KeyRingStore(Random(file)).Load());
        Assert.StartsWith(file, e.Message, StringComparison.Ordinal);
        Assert.Contains("chmod 600 " + file, e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> MalformedKeyFiles()
    {
        string key = Convert.ToBase64String(new byte[32]);
        return new TheoryData<string, string>
        {
            { "", "is not a key file" },
            { "null", "is not a key file (it holds null)" },
            { "[]", "is not a key file" },
            { "{\"Version\":1,", "is not a key file" },
            { "{\"Version\":2,\"RotationSeconds\":86400,\"Keys\":[]}", "version 2" },
            { "{\"Version\":1,\"Keys\":[{\"Id\":1,\"Key\":\"" + key + "\"}]}", "names no rotation period" },
            { "{\"Version\":1,\"RotationSeconds\":86400}", "holds no keys" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[]}", "holds no keys" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[null]}", "without a key" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":7}]}", "without a key" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":7,\"Key\":\"AAAA\"}]}", "(id 7) that is not 32 bytes" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":7,\"Key\":\"" + key + key + "\"}]}", "(id 7) that is not 32 bytes" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":7,\"Key\":\"not base64!\"}]}", "(id 7) that is not 32 bytes" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":7,\"Key\":\"" + key + "\"},{\"Id\":7,\"Key\":\"" + key + "\"}]}", "key id 7 twice" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":-1,\"Key\":\"" + key + "\"}]}", "is not a key file" },
            { "{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":" + new string('[', 100) + "}", "is not a key file" },
            { new string(' ', 1_100_000), "more than a key file can be" },
        };
    }

    [Theory]
    [MemberData(nameof(MalformedKeyFiles))]
    public void Load_AMalformedKeyFile_IsOneInvalidDataExceptionNamingTheFileAndTheProblem(string content, string problem)
    {
        string file = TempFile();
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, content);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var e = Assert.Throws<InvalidDataException>(() => new KeyRingStore(Random(file)).Load());
        Assert.StartsWith(file + " ", e.Message, StringComparison.Ordinal);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        Assert.Contains($"there is no previous copy ({file}.prev)", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"Version\":1,\"RotationSeconds\":86400}", "holds no keys")]
    [InlineData("{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[null]}", "without a key")]
    [InlineData("{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":7,\"Key\":\"AAAA\"}]}", "not 32 bytes")]
    [InlineData("{\"Version\":1,\"RotationSeconds\":86400,\"Keys\":[{\"Id\":7,\"Key\":\"####\"}]}", "not 32 bytes")]
    [InlineData("garbage", "is not a key file")]
    public async Task Start_WithAMalformedKeyFile_StopsWithOneLineNamingTheFileAndTheProblem(string content, string problem)
    {
        var fixture = new NtsServerFixture();
        Directory.CreateDirectory(Path.GetDirectoryName(fixture.KeyFile)!);
        File.WriteAllText(fixture.KeyFile, content);
        File.SetUnixFileMode(fixture.KeyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var e = await Assert.ThrowsAsync<Appliance.Server.Ntp.StartupFailedException>(fixture.StartAsync);
        Assert.StartsWith("cannot load the NTS cookie keys", e.Message, StringComparison.Ordinal);
        Assert.Contains(fixture.KeyFile, e.Message, StringComparison.Ordinal);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(content, File.ReadAllText(fixture.KeyFile)); // left as it was, for the operator to look at
    }

    [Fact]
    public void Load_KeysStoredUnderAnotherRotation_AreDropped_AndSaid()
    {
        // Key ids count rotation periods: at t0, 24h and 24h2s periods have the same number, 20780,
        // yet a 24h key id means another time under 24h2s. The stored keys must not be taken for the new ones.
        string file = TempFile();
        var first = new KeyRingStore(Random(file, TimeSpan.FromSeconds(86_400)));
        first.Update(s_t0, out CookieKeyRing before);
        first.Save();

        var second = new KeyRingStore(Random(file, TimeSpan.FromSeconds(86_402)));
        Assert.Equal(before.Current.Id, second.PeriodOf(s_t0));
        second.Load();
        Assert.True(second.Update(s_t0, out CookieKeyRing after));
        Assert.NotEqual(before.Current.Key, after.Current.Key);
        Assert.Contains("86400s", second.Discarded, StringComparison.Ordinal);
        Assert.Contains("86402s", second.Discarded, StringComparison.Ordinal);

        // The same rotation takes them, and says nothing.
        var same = new KeyRingStore(Random(file, TimeSpan.FromSeconds(86_400)));
        same.Load();
        Assert.False(same.Update(s_t0, out CookieKeyRing restored));
        Assert.Equal(before.Current.Key, restored.Current.Key);
        Assert.Null(same.Discarded);
    }

    [GeneratedRegex(@"^(?<call>openat|rename|renameat2?|fsync)\((?<args>.*)\)\s+=\s+(?<result>-?\d+)")]
    private static partial Regex Syscall();

    [Fact]
    public void Save_FlushesTheDirectory_AfterTheRename()
    {
        // What a crash after Save returned leaves depends on syscalls nothing else shows: trace this
        // thread while it saves (strace, from tests/peers/install.sh).
        string file = TempFile();
        string directory = Path.GetDirectoryName(file)!;
        var store = new KeyRingStore(Random(file));
        store.Update(s_t0, out _);
        string log = Path.Combine(Path.GetDirectoryName(directory)!, "strace.log");
        string thread = Path.GetFileName(new FileInfo("/proc/thread-self").LinkTarget!);
        using var strace = Process.Start(new ProcessStartInfo("strace", ["-e", "trace=openat,rename,renameat,renameat2,fsync", "-o", log, "-p", thread])
        {
            RedirectStandardError = true,
        })!;
        string? line;
        while ((line = strace.StandardError.ReadLine()) is not null && !line.Contains($"Process {thread} attached", StringComparison.Ordinal))
        {
        }
        Assert.NotNull(line);

        store.Save();

        using (var stop = Process.Start("kill", ["-INT", strace.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            stop.WaitForExit();
        }
        strace.WaitForExit();
        var calls = File.ReadAllLines(log).Select(l => Syscall().Match(l)).Where(m => m.Success).ToList();
        int rename = calls.FindIndex(m => m.Groups["call"].Value.StartsWith("rename", StringComparison.Ordinal) && m.Groups["args"].Value.Contains($"\"{file}\"", StringComparison.Ordinal));
        Assert.True(rename >= 0, string.Join("\n", calls.Select(m => m.Value)));
        Match? open = calls.Skip(rename).FirstOrDefault(m => m.Groups["call"].Value == "openat"
            && m.Groups["args"].Value.Contains($"\"{directory}\"", StringComparison.Ordinal) && m.Groups["args"].Value.Contains("O_DIRECTORY", StringComparison.Ordinal));
        Assert.True(open is not null, string.Join("\n", calls.Select(m => m.Value)));
        Assert.Contains(calls.Skip(rename), m => m.Groups["call"].Value == "fsync" && m.Groups["args"].Value == open.Groups["result"].Value && m.Groups["result"].Value == "0");
    }
}
