using Appliance.Protocol.Crypto;
using Appliance.Protocol.Nts;
using Appliance.Server.Configuration;
using Appliance.Server.Nts;

namespace Appliance.Server.Tests;

public class KeyRingStoreTests
{
    private static readonly DateTimeOffset s_t0 = DateTimeOffset.FromUnixTimeSeconds(1_795_435_200);

    private static string TempFile() => Path.Combine(Directory.CreateTempSubdirectory("keys").FullName, "ring", "nts-keys.json");

    private static byte[] SealWith(CookieKeyRing ring)
    {
        var cookie = new byte[NtsCookie.Length(AeadAlgorithm.AesSivCmac256)];
        NtsCookie.Seal(ring.Current, new byte[16], AeadAlgorithm.AesSivCmac256, new byte[32], new byte[32], cookie);
        return cookie;
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
    }

    [Fact]
    public void FleetMode_TwoAppliancesDeriveTheSameRing_AnotherSecretDoesNot()
    {
        string dir = Directory.CreateTempSubdirectory("fleet").FullName;
        string secretA = Path.Combine(dir, "a.key"), secretB = Path.Combine(dir, "b.key");
        File.WriteAllBytes(secretA, Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        File.WriteAllBytes(secretB, Enumerable.Range(1, 32).Select(i => (byte)i).ToArray());
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
        File.WriteAllBytes(file, new byte[8]);
        var e = Assert.Throws<InvalidDataException>(() => new KeyRingStore(new NtsKeysConfig("x", TimeSpan.FromHours(1), 1, file)));
        Assert.Contains("/dev/urandom", e.Message, StringComparison.Ordinal);
    }
}
