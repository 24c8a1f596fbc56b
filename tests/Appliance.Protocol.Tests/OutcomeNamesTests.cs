using Appliance.Testing;

namespace Appliance.Protocol.Tests;

public class OutcomeNamesTests
{
    [Fact]
    public void ActionNames_CoverResponseAction_ButDeferred()
    {
        Assert.Empty(NameTables.Problems(OutcomeNames.ActionCount, OutcomeNames.Action, ResponseAction.Deferred));
        // Counters index actions 0..ActionCount-1: the one action never counted must stay last.
        Assert.Equal((int)ResponseAction.Deferred, OutcomeNames.ActionCount);
    }

    [Fact]
    public void ReasonNames_CoverResponseReason() =>
        Assert.Empty(NameTables.Problems<ResponseReason>(OutcomeNames.ReasonCount, OutcomeNames.Reason));

    [Fact]
    public void NameTableCheck_FindsAMissingName() =>
        Assert.NotEmpty(NameTables.Problems<ResponseReason>(OutcomeNames.ReasonCount - 1, r => r == ResponseReason.Served ? "served" : OutcomeNames.Reason(ResponseReason.Served)));
}
