using Appliance.Timestamping;

namespace Appliance.Timestamping.Tests;

/// <summary>The reading of /proc status files and the check every thread of a switched appliance must pass.</summary>
public class PrivilegesTests
{
    private const ulong Two = 0x2000400; // CAP_NET_BIND_SERVICE | CAP_SYS_TIME

    private static string Status(string uid = "65534\t65534\t65534\t65534", string gid = "65534\t65534\t65534\t65534",
        string inh = "0000000000000000", string prm = "0000000002000400", string eff = "0000000002000400",
        string bnd = "0000000002000400", string amb = "0000000000000000") => $"""
        Name:	ntp worker 0
        Umask:	0022
        State:	S (sleeping)
        Tgid:	4242
        Pid:	4250
        Uid:	{uid}
        Gid:	{gid}
        FDSize:	256
        Groups:	65534 
        CapInh:	{inh}
        CapPrm:	{prm}
        CapEff:	{eff}
        CapBnd:	{bnd}
        CapAmb:	{amb}
        NoNewPrivs:	0
        Seccomp:	0

        """;

    [Fact]
    public void Parse_StatusText_ReadsIdsAndEveryCapabilitySet()
    {
        ThreadCredentials t = ThreadCredentials.Parse(4250, Status(uid: "1\t2\t3\t4", inh: "0000000000000001", bnd: "000001ffffffffff", amb: "0000000000000002"))!;

        Assert.Equal("ntp worker 0", t.Name);
        Assert.Equal([1u, 2u, 3u, 4u], t.Uids);
        Assert.Equal([65534u, 65534u, 65534u, 65534u], t.Gids);
        Assert.Equal((1UL, Two, Two, 0x1ffffffffffUL, 2UL), (t.Inheritable, t.Permitted, t.Effective, t.Bounding, t.Ambient));
    }

    [Theory]
    [InlineData("CapAmb")] // a kernel before 4.3: nothing proves the ambient set empty
    [InlineData("Uid")]
    [InlineData("CapBnd")]
    public void Parse_FieldMissing_IsNull(string field)
    {
        string text = string.Join('\n', Status().Split('\n').Where(l => !l.StartsWith(field + ":", StringComparison.Ordinal)));
        Assert.Null(ThreadCredentials.Parse(1, text));
    }

    [Theory]
    [InlineData("65534\t65534\t65534")]
    [InlineData("65534\t65534\t65534\tx")]
    public void Parse_MalformedIds_IsNull(string uid) => Assert.Null(ThreadCredentials.Parse(1, Status(uid: uid)));

    [Fact]
    public void Parse_MalformedMask_IsNull() => Assert.Null(ThreadCredentials.Parse(1, Status(eff: "00000000020004zz")));

    [Fact]
    public void Parse_ThisProcess_ReadsEveryThread()
    {
        IReadOnlyList<ThreadCredentials> threads = Privileges.ReadThreads();
        Assert.True(threads.Count >= 2, $"{threads.Count}: the process and at least its main thread");
        Assert.Contains(threads, t => t.Tid == OsThread.CurrentId());
        Assert.All(threads, t => Assert.Equal(Privileges.Uids().Effective, t.Uids[1]));
    }

    [Fact]
    public void Problems_ThreadsAsSwitched_None()
    {
        ThreadCredentials t = ThreadCredentials.Parse(1, Status())!;
        Assert.Empty(ThreadCredentials.Problems([t, t with { Tid = 2 }], 65534, 65534, Two));
    }

    [Fact]
    public void Problems_FewerCapabilitiesThanAllowed_None()
    {
        ThreadCredentials t = ThreadCredentials.Parse(1, Status(prm: "0000000000000400", eff: "0000000000000000", bnd: "0000000000000400"))!;
        Assert.Empty(ThreadCredentials.Problems([t], 65534, 65534, Two));
    }

    [Fact]
    public void Problems_OneThreadKeepsTheFullBoundingSet_NamesThreadSetAndCapabilities()
    {
        ThreadCredentials good = ThreadCredentials.Parse(1, Status())!;
        ThreadCredentials bad = ThreadCredentials.Parse(7, Status(bnd: "0000000002200401"))! with { Name = ".NET Finalizer" };

        string problem = Assert.Single(ThreadCredentials.Problems([good, bad], 65534, 65534, Two));

        Assert.Equal("thread 7 (.NET Finalizer) holds CAP_CHOWN, CAP_SYS_ADMIN in its bounding set", problem);
    }

    [Theory]
    [InlineData("uid", "thread 1 (ntp worker 0) has uids 65534 0 65534 65534, not 65534")]
    [InlineData("gid", "thread 1 (ntp worker 0) has gids 0 0 0 0, not 65534")]
    [InlineData("inh", "thread 1 (ntp worker 0) holds CAP_SYS_TIME in its inheritable set")]
    [InlineData("amb", "thread 1 (ntp worker 0) holds CAP_NET_BIND_SERVICE in its ambient set")]
    [InlineData("prm", "thread 1 (ntp worker 0) holds CAP_SETUID in its permitted set")]
    [InlineData("eff", "thread 1 (ntp worker 0) holds CAP_DAC_OVERRIDE in its effective set")]
    public void Problems_EachWrongField_IsNamed(string field, string expected)
    {
        string status = field switch
        {
            "uid" => Status(uid: "65534\t0\t65534\t65534"),
            "gid" => Status(gid: "0\t0\t0\t0"),
            "inh" => Status(inh: "0000000002000000"),
            "amb" => Status(amb: "0000000000000400"),
            "prm" => Status(prm: "0000000002000480"),
            _ => Status(eff: "0000000002000402"),
        };

        Assert.Equal([expected], ThreadCredentials.Problems([ThreadCredentials.Parse(1, status)!], 65534, 65534, Two));
    }

    [Fact]
    public void Problems_NoThreadRead_IsAProblem() =>
        Assert.Equal(["no thread's credentials could be read"], ThreadCredentials.Problems([], 65534, 65534, Two));

    [Fact]
    public void Capabilities_MaskAndNames_MatchLinux()
    {
        Assert.Equal(Two, Capabilities.Mask(Capabilities.NetBindService, Capabilities.SysTime));
        Assert.Equal("CAP_NET_BIND_SERVICE, CAP_SYS_TIME", Capabilities.Names(Two));
        Assert.Equal("CAP_CHECKPOINT_RESTORE, cap 41", Capabilities.Names(3UL << 40));
        Assert.Equal("none", Capabilities.Names(0));
    }

    [Fact]
    public void FindUser_Nobody_IsUid65534WithItsGroup()
    {
        UserAccount nobody = Privileges.FindUser("nobody")!;
        Assert.Equal((65534u, 65534u), (nobody.Uid, nobody.Gid));
        Assert.Contains(65534u, nobody.Groups);
        Assert.Equal(0u, Privileges.FindUser("root")!.Uid);
        Assert.Null(Privileges.FindUser("no-such-user-17"));
    }

    [Fact]
    public void CreateOwnedDirectory_MakesItForTheOwnerWithTheMode_LeavesAnExistingOneAlone()
    {
        Assert.Equal(0u, Privileges.Uids().Effective); // chown to another user needs root, as the tests run
        string root = Directory.CreateTempSubdirectory("owned").FullName;
        try
        {
            string path = Path.Combine(root, "a", "b");
            UserAccount nobody = Privileges.FindUser("nobody")!;

            Assert.True(Privileges.CreateOwnedDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, nobody));

            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(path));
            Assert.Equal("65534:65534", Owner(path));
            Assert.Equal("0:0", Owner(Path.Combine(root, "a"))); // a parent made on the way stays root's
            Assert.False(Privileges.CreateOwnedDirectory(Path.Combine(root, "a"), UnixFileMode.UserRead, nobody));
            Assert.Equal("0:0", Owner(Path.Combine(root, "a")));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static string Owner(string path)
    {
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u:%g", path]) { RedirectStandardOutput = true })!;
        string owner = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return owner;
    }
}
