namespace Appliance.Testing;

/// <summary>Polls a condition until it holds; fails the test with <c>what()</c> when the timeout passes first.</summary>
public static class Eventually
{
    public static Task TrueAsync(Func<bool> condition, TimeSpan timeout, Func<string> what) =>
        TrueAsync(() => Task.FromResult(condition()), timeout, what);

    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> what)
    {
        DateTime deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"not within {timeout.TotalSeconds} s: {what()}");
            }
            await Task.Delay(200);
        }
    }
}
