using Cortensor.Portal.Metering.RateLimiting;
using CsCheck;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

public sealed class GcraTests
{
    private const long Second = 1_000_000;
    private const long Minute = 60 * Second;
    private const long Now = 1_700_000_000 * Second;

    private static readonly GcraTat Fresh = default;

    [Fact]
    public void Evaluate_FreshState_AllowsWithQuotaMinusCost()
    {
        var result = Gcra.Evaluate(Fresh, Now, 20, Minute, 1);

        Assert.Equal(new GcraResult(true, GcraTat.At(Now + (3 * Second)), 19, 0, 3 * Second), result);
    }

    [Fact]
    public void Evaluate_BurstOfQuota_ThenRefusedForOneExactInterval()
    {
        // W/Q = 8,571,428.57 µs: not a whole number of microseconds.
        var tat = Fresh;
        for (var i = 0; i < 7; i++)
        {
            var allowed = Gcra.Evaluate(tat, Now, 7, Minute, 1);
            Assert.True(allowed.IsAllowed);
            Assert.Equal(6 - i, allowed.Remaining);
            tat = allowed.Tat;
        }

        Assert.Equal(GcraTat.At(Now + Minute), tat); // seven intervals are exactly the window

        var refused = Gcra.Evaluate(tat, Now, 7, Minute, 1);

        Assert.False(refused.IsAllowed);
        Assert.Equal(tat, refused.Tat); // unchanged
        Assert.Equal(0, refused.Remaining);
        Assert.Equal(8_571_429, refused.RetryAfter); // ceil(W/7)
        Assert.Equal(Minute, refused.Reset);
        Assert.True(Gcra.Evaluate(tat, Now + refused.RetryAfter, 7, Minute, 1).IsAllowed);
        Assert.False(Gcra.Evaluate(tat, Now + refused.RetryAfter - 1, 7, Minute, 1).IsAllowed);
    }

    [Theory]
    [InlineData(50_000_000, Minute)] // the reported case: remaining was 59,999,993 of 50,000,000
    [InlineData(90_000, Minute)] // 666.67 µs per token: a truncated interval held 90,090
    [InlineData(400_000, Second)]
    [InlineData(2_147_483_647, Minute)] // above one unit per µs
    [InlineData(9, Second)] // 111,111.11 µs per request
    public void Evaluate_RemainingNeverAboveQuota_AndFullQuotaBurstsExactly(long quota, long window)
    {
        var first = Gcra.Evaluate(Fresh, Now, quota, window, 7);
        Assert.True(first.IsAllowed);
        Assert.Equal(quota - 7, first.Remaining);
        Assert.Equal(quota, Gcra.Peek(Fresh, Now, quota, window).Remaining);

        // The rest of the quota fits in one charge, and nothing more.
        var rest = Gcra.Evaluate(first.Tat, Now, quota, window, quota - 7);
        Assert.True(rest.IsAllowed);
        Assert.Equal(0, rest.Remaining);
        Assert.Equal(window, rest.Reset);
        Assert.False(Gcra.Evaluate(rest.Tat, Now, quota, window, 1).IsAllowed);
    }

    [Fact]
    public void Evaluate_UnitsComeBackAtExactlyQuotaPerWindow()
    {
        // 90,000 per minute: after a full burst, one minute later exactly 90,000 are back (no more).
        var burst = Gcra.Evaluate(Fresh, Now, 90_000, Minute, 90_000);
        var tat = burst.Tat;
        for (var i = 0; i < 9; i++)
        {
            var step = Gcra.Evaluate(tat, Now + ((i + 1) * Minute / 10), 90_000, Minute, 9_000);
            Assert.True(step.IsAllowed);
            Assert.Equal(0, step.Remaining);
            tat = step.Tat;
        }

        Assert.Equal(0, Gcra.Peek(tat, Now + (9 * Minute / 10), 90_000, Minute).Remaining);
        Assert.Equal(9_000, Gcra.Peek(tat, Now + Minute, 90_000, Minute).Remaining);
    }

    [Fact]
    public void Evaluate_CostAboveQuota_NeverPassesAndRetryAfterIsTheWindow()
    {
        var result = Gcra.Evaluate(Fresh, Now, 1000, Minute, 1001);

        Assert.False(result.IsAllowed);
        Assert.Equal(Minute, result.RetryAfter);
        Assert.Equal(0, result.Reset);
    }

    [Fact]
    public void Evaluate_ZeroCost_PassesUntilOverdrawn()
    {
        var full = GcraTat.At(Now + Minute); // exactly used up
        var exhausted = Gcra.Evaluate(full, Now, 1000, Minute, 0);
        Assert.True(exhausted.IsAllowed);
        Assert.Equal(0, exhausted.Remaining);
        Assert.Equal(full, exhausted.Tat);

        var overdrawn = Gcra.Evaluate(GcraTat.At(Now + Minute + (500 * 60_000)), Now, 1000, Minute, 0);
        Assert.False(overdrawn.IsAllowed);
        Assert.Equal(30 * Second, overdrawn.RetryAfter);
    }

    [Fact]
    public void Evaluate_StaleState_CountsFromNow()
    {
        var result = Gcra.Evaluate(GcraTat.At(Now - Minute), Now, 20, Minute, 2);

        Assert.True(result.IsAllowed);
        Assert.Equal(GcraTat.At(Now + (6 * Second)), result.Tat);
        Assert.Equal(18, result.Remaining);
    }

    [Fact]
    public void Peek_ReportsStateWithoutCharging()
    {
        var tat = GcraTat.At(Now + (9 * Second));

        var peek = Gcra.Peek(tat, Now, 20, Minute);

        Assert.Equal(new GcraResult(true, tat, 17, 0, 9 * Second), peek);
    }

    [Fact]
    public void Evaluate_FractionFromALargerQuota_CarriesOver()
    {
        // A reload lowered the quota from 7 to 3 per second: the stored fraction (in sevenths) is read in thirds.
        var tat = new GcraTat(Now + 10, 5);

        var peek = Gcra.Peek(tat, Now, 3, Second);

        Assert.True(peek.IsAllowed);
        Assert.Equal(2, peek.Remaining); // 10 µs + 5/3 µs in use: under one unit
        Assert.Equal(12, peek.Reset);
    }

    [Theory]
    [InlineData(100, 100 * 60_000)] // charge from now
    [InlineData(-50, 0)] // refund, clamped at now
    public void Settle_FromFreshState(long delta, long expectedAhead)
    {
        Assert.Equal(GcraTat.At(Now + expectedAhead), Gcra.Settle(Fresh, Now, 1000, Minute, delta));
    }

    [Fact]
    public void Settle_Refund_MovesTatBack()
    {
        var tat = GcraTat.At(Now + (500 * 60_000));

        Assert.Equal(GcraTat.At(Now + (100 * 60_000)), Gcra.Settle(tat, Now, 1000, Minute, -400));
        Assert.Equal(GcraTat.At(Now + (900 * 60_000)), Gcra.Settle(tat, Now, 1000, Minute, 400));
    }

    [Fact]
    public void Settle_KeepsTheFraction()
    {
        // 7 per minute: one token is 8,571,428 + 4/7 µs.
        var charged = Gcra.Settle(Fresh, Now, 7, Minute, 1);
        Assert.Equal(new GcraTat(Now + 8_571_428, 4), charged);
        Assert.Equal(GcraTat.At(Now + Minute), Gcra.Settle(charged, Now, 7, Minute, 6));
        Assert.Equal(GcraTat.At(Now), Gcra.Settle(charged, Now, 7, Minute, -1));
    }

    [Fact]
    public void Settle_OverdraftCappedAtMaxWindows()
    {
        var tat = Gcra.Settle(Fresh, Now, 1, Minute, int.MaxValue);

        Assert.Equal(GcraTat.At(Now + (Gcra.MaxOverdraftWindows * Minute)), tat);
        Assert.Equal(GcraTat.At(Now), Gcra.Settle(tat, Now, 1, Minute, -int.MaxValue));
    }

    /// <summary>
    /// Random quotas, windows and sequences of (wait, cost): remaining is exactly what may still be sent now (a cost of
    /// remaining passes, one more does not), never above the quota, and no run admits more than
    /// Q + elapsed·Q/W units in total.
    /// </summary>
    [Fact]
    public void Evaluate_RandomSequences_RemainingIsWhatFitsAndRateHolds()
    {
        var quotas = Gen.Frequency(
            (3, Gen.Long[1, 100]),
            (3, Gen.Long[1, 10_000_000]),
            (2, Gen.Long[1, int.MaxValue]),
            (1, Gen.OneOf(50_000_000L, 90_000L, 7L, 400_000L)));
        var windows = Gen.Frequency((3, Gen.OneOf(Second, Minute)), (1, Gen.Long[1, 7_200 * Second]));
        var scenarios =
            from quota in quotas
            from window in windows
            from steps in Gen.Select(Gen.Long[0, 2 * window], Gen.Frequency((3, Gen.Long[0, 3]), (2, Gen.Long[0, quota]), (1, Gen.Long[0, quota + 10]))).Array[1, 60]
            select (quota, window, steps);

        scenarios.Sample(
            (quota, window, steps) =>
            {
                var now = Now;
                var tat = Fresh;
                Int128 admitted = 0;
                foreach (var (wait, cost) in steps)
                {
                    now += wait;
                    var result = Gcra.Evaluate(tat, now, quota, window, cost);
                    Assert.InRange(result.Remaining, 0, result.IsAllowed ? quota - cost : 0);
                    if (result.IsAllowed)
                    {
                        tat = result.Tat;
                        admitted += cost;
                    }
                    else
                    {
                        Assert.True(result.RetryAfter > 0);
                        Assert.True(Gcra.Evaluate(tat, now + result.RetryAfter, quota, window, cost).IsAllowed == cost <= quota);
                    }

                    var left = Gcra.Peek(tat, now, quota, window).Remaining;
                    Assert.InRange(left, 0, quota);
                    Assert.True(Gcra.Evaluate(tat, now, quota, window, left).IsAllowed);
                    Assert.False(left < quota && Gcra.Evaluate(tat, now, quota, window, left + 1).IsAllowed);
                }

                Assert.True(admitted * window <= ((Int128)quota * window) + ((Int128)(now - Now) * quota), $"admitted {admitted} in {now - Now} µs");
            },
            iter: 2000,
            threads: 1);
    }

    [Fact]
    public void Evaluate_InvalidArguments_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Gcra.Evaluate(Fresh, Now, 0, Minute, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gcra.Evaluate(Fresh, Now, 1, 0, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Gcra.Evaluate(Fresh, Now, 1, Minute, -1));
    }

    [Fact]
    public void Conventions_MicrosecondsRoundTrip()
    {
        Assert.Equal(1_500_000, RateLimitConventions.ToMicroseconds(TimeSpan.FromSeconds(1.5)));
        Assert.Equal(TimeSpan.FromSeconds(1.5), RateLimitConventions.FromMicroseconds(1_500_000));
        Assert.Equal("org-tpm", RateLimitConventions.PolicyName("org", "tpm"));
    }
}
