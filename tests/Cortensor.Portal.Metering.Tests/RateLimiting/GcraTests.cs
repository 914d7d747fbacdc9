using Cortensor.Portal.Metering.RateLimiting;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

public sealed class GcraTests
{
    private const long Second = 1_000_000;
    private const long Minute = 60 * Second;
    private const long Now = 1_700_000_000 * Second;

    [Theory]
    [InlineData(20, Minute, 3 * Second)]
    [InlineData(7, Minute, 8_571_428)] // truncated: 7 * T fits in the window
    [InlineData(2_000_000, Second, 1)] // never below 1 µs
    public void EmissionInterval_IsWindowOverQuotaTruncated(long quota, long window, long expected)
    {
        Assert.Equal(expected, Gcra.EmissionInterval(quota, window));
    }

    [Fact]
    public void Evaluate_FreshState_AllowsWithQuotaMinusCost()
    {
        var result = Gcra.Evaluate(0, Now, 20, Minute, 1);

        Assert.Equal(new GcraResult(true, Now + (3 * Second), 19, 0, 3 * Second), result);
    }

    [Fact]
    public void Evaluate_BurstOfQuota_ThenRefusedForOneInterval()
    {
        long tat = 0;
        for (var i = 0; i < 7; i++)
        {
            var allowed = Gcra.Evaluate(tat, Now, 7, Minute, 1);
            Assert.True(allowed.IsAllowed);
            Assert.Equal(6 - i, allowed.Remaining);
            tat = allowed.Tat;
        }

        var refused = Gcra.Evaluate(tat, Now, 7, Minute, 1);

        Assert.False(refused.IsAllowed);
        Assert.Equal(tat, refused.Tat); // unchanged
        Assert.Equal(0, refused.Remaining);
        Assert.Equal((8 * 8_571_428) - Minute, refused.RetryAfter);
        Assert.Equal(tat - Now, refused.Reset);
        Assert.True(Gcra.Evaluate(tat, Now + refused.RetryAfter, 7, Minute, 1).IsAllowed);
        Assert.False(Gcra.Evaluate(tat, Now + refused.RetryAfter - 1, 7, Minute, 1).IsAllowed);
    }

    [Fact]
    public void Evaluate_CostAboveQuota_NeverPassesAndRetryAfterIsTheWindow()
    {
        var result = Gcra.Evaluate(0, Now, 1000, Minute, 1001);

        Assert.False(result.IsAllowed);
        Assert.Equal(Minute, result.RetryAfter);
        Assert.Equal(0, result.Reset);
    }

    [Fact]
    public void Evaluate_ZeroCost_PassesUntilOverdrawn()
    {
        var full = Now + Minute; // exactly used up
        var exhausted = Gcra.Evaluate(full, Now, 1000, Minute, 0);
        Assert.True(exhausted.IsAllowed);
        Assert.Equal(0, exhausted.Remaining);
        Assert.Equal(full, exhausted.Tat);

        var overdrawn = Gcra.Evaluate(full + (500 * 60_000), Now, 1000, Minute, 0);
        Assert.False(overdrawn.IsAllowed);
        Assert.Equal(30 * Second, overdrawn.RetryAfter);
    }

    [Fact]
    public void Evaluate_StaleState_CountsFromNow()
    {
        var result = Gcra.Evaluate(Now - Minute, Now, 20, Minute, 2);

        Assert.True(result.IsAllowed);
        Assert.Equal(Now + (6 * Second), result.Tat);
        Assert.Equal(18, result.Remaining);
    }

    [Fact]
    public void Peek_ReportsStateWithoutCharging()
    {
        var tat = Now + (9 * Second);

        var peek = Gcra.Peek(tat, Now, 20, Minute);

        Assert.Equal(new GcraResult(true, tat, 17, 0, 9 * Second), peek);
    }

    [Theory]
    [InlineData(100, 100 * 60_000)] // charge from now
    [InlineData(-50, 0)] // refund, clamped at now
    public void Settle_FromFreshState(long delta, long expectedAhead)
    {
        Assert.Equal(Now + expectedAhead, Gcra.Settle(0, Now, 1000, Minute, delta));
    }

    [Fact]
    public void Settle_Refund_MovesTatBack()
    {
        var tat = Now + (500 * 60_000);

        Assert.Equal(Now + (100 * 60_000), Gcra.Settle(tat, Now, 1000, Minute, -400));
        Assert.Equal(Now + (900 * 60_000), Gcra.Settle(tat, Now, 1000, Minute, 400));
    }

    [Fact]
    public void Evaluate_InvalidArguments_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Gcra.Evaluate(0, Now, 0, Minute, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gcra.Evaluate(0, Now, 1, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gcra.Evaluate(0, Now, 1, Minute, -1));
    }

    [Fact]
    public void Conventions_MicrosecondsRoundTrip()
    {
        Assert.Equal(1_500_000, RateLimitConventions.ToMicroseconds(TimeSpan.FromSeconds(1.5)));
        Assert.Equal(TimeSpan.FromSeconds(1.5), RateLimitConventions.FromMicroseconds(1_500_000));
        Assert.Equal("org-tpm", RateLimitConventions.PolicyName("org", "tpm"));
    }
}
