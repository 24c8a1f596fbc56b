using Appliance.Server.Hosting;
using Appliance.Testing;

namespace Appliance.Server.Tests.Monitoring;

/// <summary>The version and commit behind appliance_build_info, appliance version and appliance status.</summary>
public class BuildInfoTests
{
    [Theory]
    [InlineData("0.1.0+e9baa8a957ee6fc24863ec041b1a968fd6115cd2", "0.1.0", "e9baa8a957ee6fc24863ec041b1a968fd6115cd2")]
    [InlineData("0.1.0", "0.1.0", "unknown")] // built outside a git checkout: the SDK appends nothing
    [InlineData("0.1.0+", "0.1.0", "unknown")]
    [InlineData("1.2.3-rc.1+abc", "1.2.3-rc.1", "abc")]
    [InlineData(null, "unknown", "unknown")]
    public void Parse_SplitsTheInformationalVersionAtThePlus(string? informational, string version, string commit) =>
        Assert.Equal((version, commit), BuildInfo.Parse(informational));

    [Fact]
    public async Task Commit_IsTheCheckoutsCommitAtBuildTime_AndVersionTheProjects()
    {
        Assert.Matches(@"^\d+\.\d+\.\d+", BuildInfo.Version);
        CommandResult checkout = await Run.CommandAsync("git", ["-C", Repo.Root, "rev-parse", "--git-dir"], TimeSpan.FromSeconds(10));
        if (checkout.ExitCode != 0)
        {
            Assert.Equal(BuildInfo.Unknown, BuildInfo.Commit); // built outside a git checkout
            return;
        }
        // The build read the checkout's commit (HEAD then, maybe not HEAD now): a commit of this repository.
        Assert.Matches("^[0-9a-f]{40}$", BuildInfo.Commit);
        CommandResult known = await Run.CommandAsync("git", ["-C", Repo.Root, "cat-file", "-t", BuildInfo.Commit], TimeSpan.FromSeconds(10));
        Assert.True(known.ExitCode == 0 && known.StdOut.Trim() == "commit", known.ToString());
    }
}
