using System.Diagnostics;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>Waits for a condition, checking every 20 ms, and fails the test when it does not hold in time.</summary>
internal static class Poll
{
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string? because = null)
        => UntilAsync(() => Task.FromResult(condition()), timeout, because);

    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string? because = null)
    {
        var stopwatch = Stopwatch.StartNew();
        while (true)
        {
            if (await condition())
            {
                return;
            }

            if (stopwatch.Elapsed > timeout)
            {
                Assert.Fail($"Not true after {timeout}{(because is null ? "" : ": " + because)}.");
            }

            await Task.Delay(20);
        }
    }
}
