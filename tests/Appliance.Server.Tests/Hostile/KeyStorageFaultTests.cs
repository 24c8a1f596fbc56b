using System.Text.Json;
using System.Text.RegularExpressions;
using Appliance.Protocol.Nts;
using Appliance.Server.Tests.Control;
using Appliance.Sources;
using Appliance.Testing;

namespace Appliance.Server.Tests.Hostile;

/// <summary>
/// Issue #18, key storage under faults, against the real executable (software clock, NTS-KE with a
/// test certificate, the control socket): the disk full (a 16 KiB tmpfs, filled) or read-only (a bind
/// mount remounted read-only; root ignores file modes, so chmod would prove nothing) while a rotation
/// is saved, and a key file corrupted or truncated at start. Needs root for the mounts; every mount is
/// undone in a finally.
/// </summary>
public sealed partial class KeyStorageFaultTests
{
    private const string SaveFailed = "NTS key ring could not be saved to ";

    [Fact]
    public async Task DiskFull_ARotationServesFromMemory_LoggedOnce_RetriedAndCounted_SavedWhenSpaceReturns()
    {
        var fixture = new NtsServerFixture(extraNtsKe: $"control: {{ socket: {ControlTests.NewSocketPath()} }}");
        string keys = Path.GetDirectoryName(fixture.KeyFile)!;
        string filler = Path.Combine(keys, "filler");
        Directory.CreateDirectory(keys);
        await Run.CheckedAsync("mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs", keys);
        try
        {
            await FaultWhileServingAsync(fixture, inject: () => Fill(filler), clear: () => File.Delete(filler), fault: "No space left on device");
        }
        finally
        {
            await Run.CommandAsync("umount", [keys], TimeSpan.FromSeconds(30));
        }
    }

    [Fact]
    public async Task ReadOnly_ARotationServesFromMemory_LoggedOnce_RetriedAndCounted_SavedWhenWritableAgain()
    {
        var fixture = new NtsServerFixture(extraNtsKe: $"control: {{ socket: {ControlTests.NewSocketPath()} }}");
        string keys = Path.GetDirectoryName(fixture.KeyFile)!;
        string backing = Path.Combine(fixture.Certificate.Directory, "keys-backing");
        Directory.CreateDirectory(keys);
        Directory.CreateDirectory(backing);
        await Run.CheckedAsync("mount", "--bind", backing, keys);
        try
        {
            await FaultWhileServingAsync(fixture,
                inject: () => Run.CheckedAsync("mount", "-o", "remount,ro,bind", keys).GetAwaiter().GetResult(),
                clear: () => Run.CheckedAsync("mount", "-o", "remount,rw,bind", keys).GetAwaiter().GetResult(),
                fault: "Read-only file system");
        }
        finally
        {
            await Run.CommandAsync("umount", [keys], TimeSpan.FromSeconds(30));
        }
    }

    /// <summary>
    /// A cookie from before the fault and one sealed under the key the fault kept from the disk both
    /// open while the disk refuses the save and after a restart that follows the save on retry.
    /// </summary>
    private static async Task FaultWhileServingAsync(NtsServerFixture fixture, Action inject, Action clear, string fault)
    {
        string socket = Socket(fixture);
        string config = ApplianceProcess.WriteConfig(fixture.Yaml);
        NtsKeResult before, after;
        await using (PeerProcess server = await StartAsync(config))
        {
            before = await fixture.KeAsync();
            Assert.True(before.Succeeded);
            Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(before, before.Cookies[0])).Check);
            string saved = KeyStorageKillTests.Describe(fixture.KeyFile);

            inject();
            CommandResult rotate = await ApplianceProcess.RunAsync("rotate-keys", "--socket", socket);
            Assert.True(rotate.ExitCode == 0, rotate.ToString());
            Assert.StartsWith("rotated", rotate.StdOut, StringComparison.Ordinal);
            Assert.Contains("could not be saved", rotate.StdOut, StringComparison.Ordinal);
            Assert.Contains(fault, rotate.StdOut, StringComparison.Ordinal);

            // The rotation went on in memory and was published: new cookies come under the new key, the old still open, no NAK.
            after = await fixture.KeAsync();
            Assert.True(after.Succeeded);
            Assert.NotEqual(before.Cookies[0][..4], after.Cookies[0][..4]); // the key id leads the cookie (RFC 8915 §6)
            Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(before, before.Cookies[1])).Check);
            Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(after, after.Cookies[0])).Check);
            // The disk still holds the ring before the rotation, whole, and no partly written temporary file.
            Assert.Equal(saved, KeyStorageKillTests.Describe(fixture.KeyFile));
            Assert.Equal(saved, KeyStorageKillTests.Describe(fixture.KeyFile + ".prev"));
            Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(fixture.KeyFile)!, "*.tmp", new EnumerationOptions { AttributesToSkip = 0 }));

            // Retried with a back-off (1 s, 2 s, …), each try counted, the error logged once.
            string metrics = MetricsUrl().Match(server.Output).Groups["url"].Value;
            await Eventually.TrueAsync(async () => (await MetricsScrape.FetchAsync(metrics))["appliance_nts_key_persist_failures_total"] >= 3,
                TimeSpan.FromSeconds(30), () => server.Output);
            Assert.Equal(1, Regex.Count(server.Output, Regex.Escape(SaveFailed + fixture.KeyFile)));
            Assert.Contains(fault, server.Output, StringComparison.Ordinal);

            // Space (or writability) returns: the next retry saves, says so, and the files are the ring in memory.
            clear();
            await Eventually.TrueAsync(() => server.Output.Contains($"NTS key ring saved to {fixture.KeyFile} again", StringComparison.Ordinal),
                TimeSpan.FromSeconds(90), () => server.Output);
            Assert.Equal(await ServedIdsAsync(socket), Ids(KeyStorageKillTests.Describe(fixture.KeyFile)));
            Assert.Equal(KeyStorageKillTests.Describe(fixture.KeyFile), KeyStorageKillTests.Describe(fixture.KeyFile + ".prev"));
            Assert.NotEqual(saved, KeyStorageKillTests.Describe(fixture.KeyFile));
            Assert.Equal(1, Regex.Count(server.Output, Regex.Escape(SaveFailed)));
            await server.TerminateAsync();
            await server.WaitForExitAsync(TimeSpan.FromSeconds(30));
        }

        // A restart loads what the retry saved: both cookies still open.
        await using (PeerProcess again = await StartAsync(config))
        {
            Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(before, before.Cookies[2])).Check);
            Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(after, after.Cookies[1])).Check);
            Assert.DoesNotContain("recovered", again.Output, StringComparison.Ordinal);
        }
        File.Delete(config);
    }

    [Fact]
    public async Task Start_WithTheKeyFileTruncated_RecoversFromThePreviousCopy_SaysSoOnce_AndOldCookiesOpen_WithBothBad_Refuses()
    {
        var fixture = new NtsServerFixture();
        string config = ApplianceProcess.WriteConfig(fixture.Yaml);
        NtsKeResult before;
        await using (PeerProcess server = await StartAsync(config))
        {
            before = await fixture.KeAsync();
            Assert.True(before.Succeeded);
        }
        byte[] good = await File.ReadAllBytesAsync(fixture.KeyFile);
        await File.WriteAllBytesAsync(fixture.KeyFile, good[..(good.Length / 2)]); // a torn write, as a broken disk or editor leaves it

        await using (PeerProcess server = await StartAsync(config))
        {
            string[] said = [.. server.Output.Split('\n').Where(l => l.Contains("recovered from its previous copy", StringComparison.Ordinal))];
            Assert.True(said.Length == 1, server.Output);
            Assert.Contains($"{fixture.KeyFile} is not a key file", said[0], StringComparison.Ordinal);
            Assert.Contains($"set aside as {fixture.KeyFile}.corrupt", said[0], StringComparison.Ordinal);
            // The same keys, not a new ring: a cookie from before the restart opens, and the key file is whole again.
            Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(before, before.Cookies[0])).Check);
            Assert.Equal(good, await File.ReadAllBytesAsync(fixture.KeyFile));
            Assert.Equal(good[..(good.Length / 2)], await File.ReadAllBytesAsync(fixture.KeyFile + ".corrupt"));
        }

        // Both damaged: no silent new ring, but a refusal that names the files and what to do.
        await File.WriteAllBytesAsync(fixture.KeyFile, good[..(good.Length / 2)]);
        await File.WriteAllBytesAsync(fixture.KeyFile + ".prev", []);
        CommandResult refused = await ApplianceProcess.RunAsync("serve", "--config", config);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains($"cannot load the NTS cookie keys ({fixture.KeyFile}): {fixture.KeyFile} is not a key file", refused.StdErr, StringComparison.Ordinal);
        Assert.Contains($"its previous copy {fixture.KeyFile}.prev is not a key file (it is empty: truncated)", refused.StdErr, StringComparison.Ordinal);
        Assert.Contains($"restore the files from a backup, or remove {fixture.KeyFile} and {fixture.KeyFile}.prev to start a new ring", refused.StdErr, StringComparison.Ordinal);
        Assert.Equal(good[..(good.Length / 2)], await File.ReadAllBytesAsync(fixture.KeyFile));
        File.Delete(config);
    }

    [Fact]
    public async Task Start_ARecoveryOnAReadOnlyDisk_ServesTheRecoveredRing_AndWritesItBackOnceWritable()
    {
        // The start-up save fails, but a ring was on disk: the start goes on with it and the save is retried.
        var fixture = new NtsServerFixture();
        string keys = Path.GetDirectoryName(fixture.KeyFile)!;
        string backing = Path.Combine(fixture.Certificate.Directory, "keys-backing");
        Directory.CreateDirectory(keys);
        Directory.CreateDirectory(backing);
        string config = ApplianceProcess.WriteConfig(fixture.Yaml);
        await Run.CheckedAsync("mount", "--bind", backing, keys);
        try
        {
            NtsKeResult before;
            await using (PeerProcess first = await StartAsync(config))
            {
                before = await fixture.KeAsync();
                Assert.True(before.Succeeded);
            }
            byte[] good = await File.ReadAllBytesAsync(fixture.KeyFile);
            await File.WriteAllBytesAsync(fixture.KeyFile, good[..(good.Length / 3)]);
            await Run.CheckedAsync("mount", "-o", "remount,ro,bind", keys);

            await using PeerProcess server = await StartAsync(config);
            Assert.Equal(NtsResponseCheck.Authentic, (await fixture.QueryAsync(before, before.Cookies[0])).Check);
            Assert.Contains("recovered from its previous copy", server.Output, StringComparison.Ordinal);
            await Eventually.TrueAsync(() => server.Output.Contains(SaveFailed + fixture.KeyFile, StringComparison.Ordinal), TimeSpan.FromSeconds(30), () => server.Output);
            Assert.Equal(good[..(good.Length / 3)], await File.ReadAllBytesAsync(fixture.KeyFile)); // read-only: nothing could be set aside or written

            await Run.CheckedAsync("mount", "-o", "remount,rw,bind", keys);
            await Eventually.TrueAsync(() => server.Output.Contains($"NTS key ring saved to {fixture.KeyFile} again", StringComparison.Ordinal),
                TimeSpan.FromSeconds(90), () => server.Output);
            Assert.Equal(good, await File.ReadAllBytesAsync(fixture.KeyFile));
            Assert.Equal(1, Regex.Count(server.Output, Regex.Escape(SaveFailed)));
        }
        finally
        {
            await Run.CommandAsync("umount", [keys], TimeSpan.FromSeconds(30));
            File.Delete(config);
        }
    }

    private static async Task<PeerProcess> StartAsync(string config)
    {
        PeerProcess server = ApplianceProcess.Start("serve", "--config", config);
        await server.WaitForOutputAsync("serving NTS-KE", TimeSpan.FromSeconds(60));
        return server;
    }

    /// <summary>Fills the disk the file is on: unbuffered writes until the kernel says ENOSPC.</summary>
    private static void Fill(string path)
    {
        using var stream = new FileStream(path, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, BufferSize = 0 });
        var chunk = new byte[512];
        try
        {
            while (true)
            {
                stream.Write(chunk);
            }
        }
        catch (IOException e) when (e.Message.Contains("No space left", StringComparison.Ordinal))
        {
            // full
        }
    }

    private static string Socket(NtsServerFixture fixture) => SocketPath().Match(fixture.Yaml).Groups["path"].Value;

    private static HashSet<uint> Ids(string ring) => [.. ring.Split(',').Select(k => uint.Parse(k[..k.IndexOf(':', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture))];

    private static async Task<HashSet<uint>> ServedIdsAsync(string socket)
    {
        JsonElement keys = await ControlTests.JsonVerbAsync(socket, "keys");
        return [.. keys.GetProperty("keys").EnumerateArray().Select(k => k.GetProperty("id").GetUInt32())];
    }

    [GeneratedRegex(@"metrics on (?<url>http://\S+/metrics)")]
    private static partial Regex MetricsUrl();

    [GeneratedRegex(@"control: \{ socket: (?<path>\S+) \}")]
    private static partial Regex SocketPath();
}
