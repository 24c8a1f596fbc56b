using Appliance.Server.Clock;
using Appliance.Server.Configuration;

namespace Appliance.Server.Tests;

public class ClockServiceTests
{
    [Fact]
    public void EverySourceKindTheConfigurationKnows_HasADriver()
    {
        Type[] kinds = typeof(SourceConfig).Assembly.GetTypes()
            .Where(t => t.IsSubclassOf(typeof(SourceConfig)) && !t.IsAbstract)
            .ToArray();
        Assert.NotEmpty(kinds);
        Assert.Equal(kinds.OrderBy(t => t.Name), ClockService.DriverKinds.OrderBy(t => t.Name));
    }
}
