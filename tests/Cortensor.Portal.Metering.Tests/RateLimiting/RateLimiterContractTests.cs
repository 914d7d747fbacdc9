using System.Diagnostics;
using Cortensor.Portal.Metering.RateLimiting;
using CsCheck;

namespace Cortensor.Portal.Metering.Tests.RateLimiting;

/// <summary>
/// The accuracy suite every <see cref="IRateLimiter"/> passes (in-process, Redis). A subclass supplies the limiter and
/// a way to let time pass; the suite is written so that it also holds on a real clock.
/// </summary>
/// <remarks>
/// <para>Exactness tests use windows long enough that a test ends well inside one emission interval (20 per 60 s,
/// T = 3 s). Refill and TTL tests use short windows and wait through <see cref="WaitAsync"/>, under 1.5 s per test.</para>
/// <para>On a real clock (<see cref="UsesRealClock"/>) a time read back may be early by at most the real time the test
/// has run so far (<see cref="Tolerance"/>), and a count may be higher by the units that came back meanwhile; checks
/// that only hold within a short window are skipped when the test ran too slowly to be inside it.</para>
/// <para>Every test uses fresh random ids and hash tags, so a shared store needs no cleanup between tests. This file
/// depends only on xunit and the Metering library (the Redis tests compile it as a link).</para>
/// </remarks>
public abstract class RateLimiterContractTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Second = TimeSpan.FromSeconds(1);

    private readonly Stopwatch _sinceStart = Stopwatch.StartNew();

    /// <summary>Creates a limiter. With <see cref="SharesStateAcrossInstances"/>, limiters created by one test share state (as two replicas would).</summary>
    protected abstract IRateLimiter CreateLimiter(RateLimitingOptions options);

    /// <summary>True when two limiters from <see cref="CreateLimiter"/> share state; the concurrency tests then drive two of them.</summary>
    protected virtual bool SharesStateAcrossInstances => false;

    /// <summary>
    /// True when the limiter reads a real clock (its own, like Redis's <c>TIME</c>): values are then checked within
    /// <see cref="Tolerance"/> and waits get a margin. False for a fake clock that only <see cref="WaitAsync"/> moves:
    /// every value is then checked exactly.
    /// </summary>
    protected virtual bool UsesRealClock => true;

    /// <summary>Lets time pass for the limiter: advance a fake clock, or <see cref="Task.Delay(TimeSpan)"/> on a real one.</summary>
    protected virtual Task WaitAsync(TimeSpan duration) => Task.Delay(duration);

    /// <summary>
    /// How early a time read back may be: zero on a fake clock; on a real clock the real time since the test began
    /// (no two calls of the test are further apart than that), plus 10 ms.
    /// </summary>
    protected TimeSpan Tolerance => UsesRealClock ? _sinceStart.Elapsed + TimeSpan.FromMilliseconds(10) : TimeSpan.Zero;

    /// <summary>Added to waits on a real clock so that the limiter's clock has surely passed the point waited for.</summary>
    protected TimeSpan WaitMargin => UsesRealClock ? TimeSpan.FromMilliseconds(50) : TimeSpan.Zero;

    [Fact]
    public async Task Acquire_ConcurrentRequestsPerMinute_AdmitsExactlyQuota()
    {
        const int Quota = 20;
        var (first, second) = CreatePair(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();

        var decisions = await AcquireInParallel(2 * Quota, i => (i % 2 == 0 ? first : second, Request(tag, 0, Key(keyId, Rule("rpm", RateLimitClass.Requests, Quota, Minute)))));

        var admitted = decisions.Where(d => d.IsAllowed).ToList();
        var refilled = Refilled(Minute / Quota); // 0 unless the test took over 3 s
        Assert.InRange(admitted.Count, Quota, Quota + refilled);
        if (refilled == 0)
        {
            // No two admissions saw the same state.
            Assert.Equal(Enumerable.Range(0, Quota).Select(i => (long)i), admitted.Select(d => d.Counters[0].Remaining).Order());
        }

        Assert.All(decisions.Where(d => !d.IsAllowed), d =>
        {
            Assert.Null(d.Lease);
            Assert.Equal("key-rpm", d.LimitedBy?.Policy);
            Assert.True(d.RetryAfter > TimeSpan.Zero);
        });
    }

    [Fact]
    public async Task Acquire_ConcurrentRequestsPerSecond_AdmitsQuota()
    {
        const int Quota = 10;
        var (first, second) = CreatePair(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();

        var decisions = await AcquireInParallel(2 * Quota, i => (i % 2 == 0 ? first : second, Request(tag, 0, Key(keyId, Rule("rps", RateLimitClass.Requests, Quota, Second)))));

        // On a real clock one request comes back every 100 ms while the test runs.
        var admitted = decisions.Count(d => d.IsAllowed);
        Assert.InRange(admitted, Quota, Quota + Refilled(Second / Quota));
    }

    [Fact]
    public async Task Acquire_OrgLimit_SharedAcrossKeys()
    {
        var (first, second) = CreatePair(new RateLimitingOptions());
        var tag = NewId();
        var orgId = NewId();
        string[] keys = [NewId(), NewId()];

        var decisions = await AcquireInParallel(10, i => (i % 2 == 0 ? first : second, Request(
            tag,
            0,
            Key(keys[i % 2], Rule("rpm", RateLimitClass.Requests, 100, Minute)),
            Org(orgId, Rule("rpm", RateLimitClass.Requests, 5, Minute)))));

        Assert.InRange(decisions.Count(d => d.IsAllowed), 5, 5 + Refilled(Minute / 5));
        Assert.All(decisions.Where(d => !d.IsAllowed), d => Assert.Equal("org-rpm", d.LimitedBy?.Policy));
        var perKey = decisions.Where(d => d.IsAllowed).GroupBy(d => d.Lease!.Request.Partitions[0].Id).ToDictionary(g => g.Key, g => g.Count());
        var limiter = first;
        foreach (var key in keys)
        {
            // Each key's own counter was charged only by its admitted requests.
            var check = await limiter.AcquireAsync(Request(tag, 0, Key(key, Rule("rpm", RateLimitClass.Requests, 100, Minute))));
            AssertRemaining(100 - perKey.GetValueOrDefault(key) - 1, check.Counters[0], Minute / 100);
        }
    }

    [Fact]
    public async Task Acquire_Refused_ChargesNothing()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var wide = Rule("a", RateLimitClass.Requests, 10, Minute);
        var narrow = Rule("b", RateLimitClass.Requests, 2, Minute);

        Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, wide, narrow)))).IsAllowed);
        Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, wide, narrow)))).IsAllowed);
        var refused = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, wide, narrow)));

        Assert.False(refused.IsAllowed);
        Assert.Equal("key-b", refused.LimitedBy?.Policy);
        Assert.Equal(["key-a", "key-b"], refused.Counters.Select(c => c.Policy));
        AssertRemaining(8, refused.Counters[0], wide.Window / wide.Quota); // unchanged state of the rule that did not refuse
        Assert.Equal(0, refused.Counters[1].Remaining);

        var wideOnly = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, wide)));
        Assert.True(wideOnly.IsAllowed);
        AssertRemaining(7, wideOnly.Counters[0], wide.Window / wide.Quota);

        Assert.False((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, wide, narrow)))).IsAllowed);
        var again = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, wide)));
        AssertRemaining(6, again.Counters[0], wide.Window / wide.Quota);
    }

    [Fact]
    public async Task Acquire_RetryAfterRemainingReset_FollowGcra()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var rule = Rule("rpm", RateLimitClass.Requests, 20, Minute); // T = 3 s

        var firstDecision = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
        Assert.True(firstDecision.IsAllowed);
        Assert.Equal(TimeSpan.Zero, firstDecision.RetryAfter);
        Assert.Null(firstDecision.LimitedBy);
        Assert.False(firstDecision.Degraded);
        Assert.False(firstDecision.Unavailable);
        Assert.NotNull(firstDecision.Lease);
        var counter = Assert.Single(firstDecision.Counters);
        Assert.Equal("key-rpm", counter.Policy);
        Assert.Equal(rule, counter.Rule);
        Assert.Equal(19, counter.Remaining);
        Assert.Equal(TimeSpan.FromSeconds(3), counter.Reset); // exact: a fresh rule's reset is T whatever the clock

        RateLimitDecision last = firstDecision;
        for (var i = 1; i < 20; i++)
        {
            last = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
            Assert.True(last.IsAllowed);
        }

        Assert.Equal(0, last.Counters[0].Remaining);
        AssertTime(Minute, last.Counters[0].Reset);

        var refused = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
        Assert.False(refused.IsAllowed);
        Assert.Null(refused.Lease);
        Assert.Equal(0, refused.Counters[0].Remaining);
        AssertTime(Minute, refused.Counters[0].Reset);
        AssertTime(TimeSpan.FromSeconds(3), refused.RetryAfter);
        Assert.Same(refused.Counters[0], refused.LimitedBy);
    }

    [Fact]
    public async Task Acquire_AfterRetryAfter_OneUnitCameBack()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var rule = Rule("rps", RateLimitClass.Requests, 5, Second); // T = 200 ms

        for (var i = 0; i < 5; i++)
        {
            Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)))).IsAllowed);
        }

        var sinceRefusal = Stopwatch.StartNew();
        var refused = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
        Assert.False(refused.IsAllowed);
        AssertTime(TimeSpan.FromMilliseconds(200), refused.RetryAfter);

        await WaitAsync(refused.RetryAfter + WaitMargin);

        var admitted = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
        Assert.True(admitted.IsAllowed);
        var next = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rule)));
        if (!UsesRealClock || sinceRefusal.Elapsed < refused.RetryAfter + TimeSpan.FromMilliseconds(200))
        {
            // Only one unit came back.
            Assert.Equal(0, admitted.Counters[0].Remaining);
            Assert.False(next.IsAllowed);
        }
    }

    [Fact]
    public async Task Acquire_SeveralRulesRefuse_LimitedByTheOneThatFreesLast()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var rps = Rule("rps", RateLimitClass.Requests, 1, Second);
        var rpm = Rule("rpm", RateLimitClass.Requests, 1, Minute);

        Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rps, rpm)))).IsAllowed);
        var refused = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, rps, rpm)));

        Assert.False(refused.IsAllowed);
        Assert.Equal("key-rpm", refused.LimitedBy?.Policy);
        AssertTime(Minute, refused.RetryAfter);
        Assert.Equal(0, refused.Counters[1].Remaining);
        if (Tolerance < Second)
        {
            Assert.Equal(0, refused.Counters[0].Remaining); // rps refused too
        }
    }

    [Fact]
    public async Task Acquire_TokenRule_ChargesEstimateAtAdmission()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var tpm = Rule("tpm", RateLimitClass.Tokens, 1000, Minute); // T = 60 ms per token

        var first = await limiter.AcquireAsync(Request(tag, 300, Key(keyId, tpm)));
        Assert.True(first.IsAllowed);
        Assert.Equal(700, first.Counters[0].Remaining);
        Assert.Equal(TimeSpan.FromSeconds(18), first.Counters[0].Reset);

        var second = await limiter.AcquireAsync(Request(tag, 600, Key(keyId, tpm)));
        Assert.True(second.IsAllowed);
        AssertRemaining(100, second.Counters[0], Minute / 1000);

        var refused = await limiter.AcquireAsync(Request(tag, 200, Key(keyId, tpm)));
        Assert.False(refused.IsAllowed);
        Assert.Equal("key-tpm", refused.LimitedBy?.Policy);
        AssertTime(TimeSpan.FromSeconds(6), refused.RetryAfter); // 100 tokens short, 60 ms each

        var fits = await limiter.AcquireAsync(Request(tag, 100, Key(keyId, tpm)));
        Assert.True(fits.IsAllowed); // the refusal charged nothing
        AssertRemaining(0, fits.Counters[0], Minute / 1000);
    }

    [Fact]
    public async Task Release_ActualAboveEstimate_ChargesTheDifference()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var tpm = Rule("tpm", RateLimitClass.Tokens, 1000, Minute);

        var admitted = await limiter.AcquireAsync(Request(tag, 100, Key(keyId, tpm)));
        Assert.Equal(900, admitted.Counters[0].Remaining);
        await limiter.ReleaseAsync(admitted.Lease!, 400);

        var check = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, tpm)));
        Assert.True(check.IsAllowed);
        AssertRemaining(600, check.Counters[0], Minute / 1000);
    }

    [Fact]
    public async Task Release_ActualBelowEstimate_Refunds()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var tpm = Rule("tpm", RateLimitClass.Tokens, 1000, Minute);

        var admitted = await limiter.AcquireAsync(Request(tag, 500, Key(keyId, tpm)));
        await limiter.ReleaseAsync(admitted.Lease!, 100);

        var check = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, tpm)));
        AssertRemaining(900, check.Counters[0], Minute / 1000);
    }

    [Fact]
    public async Task Release_RefundOfEverything_NeverBeyondFullQuota()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var tpm = Rule("tpm", RateLimitClass.Tokens, 1000, Minute);

        var admitted = await limiter.AcquireAsync(Request(tag, 100, Key(keyId, tpm)));
        await limiter.ReleaseAsync(admitted.Lease!, 0);

        var check = await limiter.AcquireAsync(Request(tag, 1000, Key(keyId, tpm)));
        Assert.True(check.IsAllowed);
        Assert.Equal(0, check.Counters[0].Remaining); // exact on any clock: the refund stopped at now
        Assert.Equal(Minute, check.Counters[0].Reset);
    }

    [Fact]
    public async Task Acquire_MoreTokensThanQuota_RefusedWithWindowAsRetryAfter()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var tpm = Rule("tpm", RateLimitClass.Tokens, 1000, Minute);

        var refused = await limiter.AcquireAsync(Request(tag, 1001, Key(keyId, tpm)));

        Assert.False(refused.IsAllowed);
        Assert.Equal("key-tpm", refused.LimitedBy?.Policy);
        Assert.Equal(Minute, refused.RetryAfter);
        var whole = await limiter.AcquireAsync(Request(tag, 1000, Key(keyId, tpm)));
        Assert.True(whole.IsAllowed);
        Assert.Equal(0, whole.Counters[0].Remaining);
    }

    [Fact]
    public async Task Acquire_ZeroTokens_NeedsTheTokenRuleNotOverdrawn()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var tpm = Rule("tpm", RateLimitClass.Tokens, 1000, Minute);

        var all = await limiter.AcquireAsync(Request(tag, 1000, Key(keyId, tpm)));
        var exhausted = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, tpm)));
        Assert.True(exhausted.IsAllowed); // exactly used up is not overdrawn
        AssertRemaining(0, exhausted.Counters[0], Minute / 1000);

        await limiter.ReleaseAsync(all.Lease!, 1500); // 500 tokens beyond the quota: 30 s to pay back
        var overdrawn = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, tpm)));

        Assert.False(overdrawn.IsAllowed);
        Assert.Equal("key-tpm", overdrawn.LimitedBy?.Policy);
        AssertTime(TimeSpan.FromSeconds(30), overdrawn.RetryAfter);
    }

    [Fact]
    public async Task Acquire_ConcurrencyCap_HoldsUnderParallelAcquire()
    {
        var (first, second) = CreatePair(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var cap = Rule("concurrency", RateLimitClass.Concurrency, 3, TimeSpan.Zero);

        var decisions = await AcquireInParallel(20, i => (i % 2 == 0 ? first : second, Request(tag, 0, Key(keyId, cap))));

        var admitted = decisions.Where(d => d.IsAllowed).ToList();
        Assert.Equal(3, admitted.Count);
        Assert.Equal([0L, 1L, 2L], admitted.Select(d => d.Counters[0].Remaining).Order());
        Assert.All(decisions, d => Assert.Equal(TimeSpan.Zero, d.Counters[0].Reset));
        Assert.All(decisions.Where(d => !d.IsAllowed), d =>
        {
            Assert.Equal("key-concurrency", d.LimitedBy?.Policy);
            Assert.Equal(0, d.Counters[0].Remaining);
            Assert.Equal(RateLimitConventions.ConcurrencyRetryAfter, d.RetryAfter);
        });
    }

    [Fact]
    public async Task Release_FreesTheConcurrencySlot()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var cap = Rule("concurrency", RateLimitClass.Concurrency, 1, TimeSpan.Zero);

        var held = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, cap)));
        Assert.True(held.IsAllowed);
        Assert.False((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, cap)))).IsAllowed);

        await limiter.ReleaseAsync(held.Lease!, 0);

        var next = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, cap)));
        Assert.True(next.IsAllowed);
        Assert.Equal(0, next.Counters[0].Remaining);
    }

    [Fact]
    public async Task Acquire_SlotNeverReleased_FreedAfterTtl()
    {
        var ttl = TimeSpan.FromMilliseconds(500);
        var limiter = CreateLimiter(new RateLimitingOptions { ConcurrencySlotTtl = ttl });
        var tag = NewId();
        var keyId = NewId();
        var cap = Rule("concurrency", RateLimitClass.Concurrency, 1, TimeSpan.Zero);

        var sinceAdmission = Stopwatch.StartNew();
        Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, cap)))).IsAllowed);
        await WaitAsync(ttl / 2);
        var early = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, cap)));
        if (!UsesRealClock || sinceAdmission.Elapsed < ttl)
        {
            Assert.False(early.IsAllowed); // still held
        }
        else if (early.Lease is not null)
        {
            await limiter.ReleaseAsync(early.Lease, 0); // the test ran too slowly: the slot had already expired
        }

        await WaitAsync((ttl / 2) + WaitMargin);

        Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, cap)))).IsAllowed);
    }

    [Fact]
    public async Task Acquire_OnePartitionRefuses_NoPartitionCharged()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var orgId = NewId();
        var keyRpm = Rule("rpm", RateLimitClass.Requests, 5, Minute);
        var keyTpm = Rule("tpm", RateLimitClass.Tokens, 1000, Minute);
        var keyCap = Rule("concurrency", RateLimitClass.Concurrency, 5, TimeSpan.Zero);
        var orgRpm = Rule("rpm", RateLimitClass.Requests, 2, Minute);
        RateLimitRequest Both() => Request(tag, 100, Key(keyId, keyRpm, keyTpm, keyCap), Org(orgId, orgRpm));

        Assert.True((await limiter.AcquireAsync(Both())).IsAllowed);
        Assert.True((await limiter.AcquireAsync(Both())).IsAllowed);
        var refused = await limiter.AcquireAsync(Both());

        Assert.False(refused.IsAllowed);
        Assert.Equal(["key-rpm", "key-tpm", "key-concurrency", "org-rpm"], refused.Counters.Select(c => c.Policy));
        Assert.Equal("org-rpm", refused.LimitedBy?.Policy);
        Assert.Equal(3, refused.Counters[2].Remaining); // 2 slots held, the refused request took none

        var keyOnly = await limiter.AcquireAsync(Request(tag, 100, Key(keyId, keyRpm, keyTpm, keyCap)));
        Assert.True(keyOnly.IsAllowed);
        AssertRemaining(2, keyOnly.Counters[0], keyRpm.Window / keyRpm.Quota);
        AssertRemaining(700, keyOnly.Counters[1], keyTpm.Window / keyTpm.Quota);
        Assert.Equal(2, keyOnly.Counters[2].Remaining);
    }

    [Fact]
    public async Task Release_OfARefusedPartitionRequest_KeepsOtherSlots()
    {
        var limiter = CreateLimiter(new RateLimitingOptions());
        var tag = NewId();
        var keyId = NewId();
        var orgId = NewId();
        var keyCap = Rule("concurrency", RateLimitClass.Concurrency, 1, TimeSpan.Zero);
        var orgRpm = Rule("rpm", RateLimitClass.Requests, 1, Minute);

        var first = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, keyCap), Org(orgId, orgRpm)));
        Assert.True(first.IsAllowed);
        await limiter.ReleaseAsync(first.Lease!, 0);

        var refusedByOrg = await limiter.AcquireAsync(Request(tag, 0, Key(keyId, keyCap), Org(orgId, orgRpm)));
        Assert.False(refusedByOrg.IsAllowed);
        Assert.Equal("org-rpm", refusedByOrg.LimitedBy?.Policy);

        // The refused request left no slot behind.
        Assert.True((await limiter.AcquireAsync(Request(tag, 0, Key(keyId, keyCap)))).IsAllowed);
    }

    /// <summary>Scenarios <see cref="Acquire_RandomRulesAndSequences_RemainingNeverAboveQuota"/> draws: fewer on a real clock, where every step is a round trip.</summary>
    protected virtual int PropertyIterations => UsesRealClock ? 40 : 300;

    /// <summary>
    /// Random rules (every class, quotas from 1 to int.MaxValue, awkward windows) on a key and an org, and random
    /// acquire / release / wait sequences: every counter of every decision keeps 0 ≤ remaining ≤ its quota (and
    /// ≤ quota − cost when admitted), so the RateLimit headers never advertise more than the policy.
    /// </summary>
    [Fact]
    public async Task Acquire_RandomRulesAndSequences_RemainingNeverAboveQuota()
    {
        await LimitScenario.Generator.SampleAsync(
            scenario => RunScenarioAsync(
                CreateLimiter(new RateLimitingOptions()),
                scenario,
                // A real clock cannot be advanced: a few milliseconds at most, so the run stays short.
                wait => WaitAsync(UsesRealClock ? TimeSpan.FromMilliseconds(wait.Ticks % 3) : wait)),
            iter: PropertyIterations,
            threads: 1);
    }

    /// <summary>Runs one scenario on <paramref name="limiter"/>, checking every decision with <see cref="AssertWithinQuota"/>.</summary>
    internal static async Task RunScenarioAsync(IRateLimiter limiter, LimitScenario scenario, Func<TimeSpan, Task> wait)
    {
        ArgumentNullException.ThrowIfNull(limiter);
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(wait);
        var tag = NewId();
        RateLimitPartition[] partitions = [.. new[] { Key(NewId(), scenario.KeyRules), Org(NewId(), scenario.OrgRules) }.Where(static p => p.Rules.Count > 0)];
        var held = new Queue<RateLimitLease>();
        foreach (var step in scenario.Steps)
        {
            switch (step.Kind)
            {
                case LimitStepKind.Acquire:
                    var request = Request(tag, step.Tokens, partitions);
                    var decision = await limiter.AcquireAsync(request);
                    AssertWithinQuota(request, decision);
                    if (decision.Lease is { } lease)
                    {
                        held.Enqueue(lease);
                    }

                    break;
                case LimitStepKind.Release when held.Count > 0:
                    await limiter.ReleaseAsync(held.Dequeue(), step.Tokens);
                    break;
                case LimitStepKind.Wait:
                    await wait(step.Wait);
                    break;
            }
        }

        while (held.TryDequeue(out var rest))
        {
            await limiter.ReleaseAsync(rest, 0);
        }
    }

    internal static void AssertWithinQuota(RateLimitRequest request, RateLimitDecision decision)
    {
        if (decision.Unavailable)
        {
            Assert.Empty(decision.Counters);
            return;
        }

        var i = 0;
        foreach (var (_, rule) in request.EnumerateRules())
        {
            var counter = decision.Counters[i++];
            Assert.InRange(counter.Rule.Quota, 1, rule.Quota); // a fallback may divide the quota, never raise it
            var cost = !decision.IsAllowed ? 0 : rule.Class == RateLimitClass.Tokens ? request.Tokens : 1;
            Assert.InRange(counter.Remaining, 0, counter.Rule.Quota - cost);
            Assert.True(counter.Reset >= TimeSpan.Zero);
        }

        Assert.Equal(i, decision.Counters.Count);
        if (!decision.IsAllowed)
        {
            Assert.NotNull(decision.LimitedBy);
            Assert.True(decision.RetryAfter > TimeSpan.Zero);
        }
    }

    /// <summary>A fresh random id, so tests never collide in a shared store.</summary>
    protected static string NewId() => Guid.NewGuid().ToString("N");

    protected static RateLimitRule Rule(string name, RateLimitClass @class, long quota, TimeSpan window) => new(name, @class, quota, window);

    protected static RateLimitPartition Key(string id, params RateLimitRule[] rules) => new("key", id, rules);

    protected static RateLimitPartition Org(string id, params RateLimitRule[] rules) => new("org", id, rules);

    protected static RateLimitRequest Request(string hashTag, int tokens, params RateLimitPartition[] partitions) => new()
    {
        RequestId = NewId(),
        HashTag = hashTag,
        Partitions = partitions,
        Tokens = tokens,
    };

    /// <summary>Asserts a time read back: exact on a fake clock, up to <see cref="Tolerance"/> early on a real one.</summary>
    protected void AssertTime(TimeSpan expected, TimeSpan actual)
    {
        Assert.InRange(actual, expected - Tolerance, expected);
    }

    /// <summary>Asserts a remaining count: exact on a fake clock; on a real one, units that came back within <see cref="Tolerance"/> may add.</summary>
    protected void AssertRemaining(long expected, RateLimitCounter counter, TimeSpan emissionInterval)
    {
        ArgumentNullException.ThrowIfNull(counter);
        Assert.InRange(counter.Remaining, expected, expected + Refilled(emissionInterval));
    }

    /// <summary>Units that may have come back while the test ran: 0 on a fake clock.</summary>
    protected int Refilled(TimeSpan emissionInterval) => (int)(Tolerance.Ticks / emissionInterval.Ticks);

    private (IRateLimiter First, IRateLimiter Second) CreatePair(RateLimitingOptions options)
    {
        var first = CreateLimiter(options);
        return (first, SharesStateAcrossInstances ? CreateLimiter(options) : first);
    }

    private static async Task<RateLimitDecision[]> AcquireInParallel(int count, Func<int, (IRateLimiter Limiter, RateLimitRequest Request)> call)
    {
        using var start = new ManualResetEventSlim();
        var tasks = Enumerable.Range(0, count).Select(i => Task.Run(async () =>
        {
            var (limiter, request) = call(i);
            start.Wait();
            return await limiter.AcquireAsync(request);
        })).ToArray();
        start.Set();
        return await Task.WhenAll(tasks);
    }
}

internal enum LimitStepKind
{
    Acquire,
    Release,
    Wait,
}

/// <summary>One step of a property scenario: acquire with <see cref="Tokens"/>, release the oldest lease with <see cref="Tokens"/> actual, or wait.</summary>
internal readonly record struct LimitStep(LimitStepKind Kind, int Tokens, TimeSpan Wait);

/// <summary>The rules of a key and an org, and a sequence of steps against them.</summary>
internal sealed record LimitScenario(RateLimitRule[] KeyRules, RateLimitRule[] OrgRules, LimitStep[] Steps)
{
    /// <summary>Quotas across magnitudes, with the values whose W/Q is not a whole number of microseconds.</summary>
    private static readonly Gen<long> Quota = Gen.Frequency(
        (3, Gen.Long[1, 20]),
        (3, Gen.Long[1, 1_000_000]),
        (2, Gen.Long[1, int.MaxValue]),
        (1, Gen.OneOf(50_000_000L, 90_000L, 7L, 400_000L)));

    private static readonly Gen<TimeSpan> Window = Gen.Frequency(
        (3, Gen.OneOf(TimeSpan.FromSeconds(1), TimeSpan.FromMinutes(1))),
        (1, Gen.Long[1, 7_200_000_000].Select(static us => TimeSpan.FromTicks(us * TimeSpan.TicksPerMicrosecond))));

    private static readonly Gen<RateLimitRule[]> Rules =
        Gen.Select(Gen.OneOf(RateLimitClass.Requests, RateLimitClass.Tokens, RateLimitClass.Concurrency), Quota, Window)
            .Array[0, 4]
            .Select(static rules => rules
                .Select(static (r, i) => new RateLimitRule("r" + i, r.Item1, r.Item2, r.Item1 == RateLimitClass.Concurrency ? TimeSpan.Zero : r.Item3))
                .ToArray());

    private static readonly Gen<int> Tokens = Gen.Frequency(
        (4, Gen.Int[0, 20]),
        (2, Gen.Int[0, 1_000_000]),
        (1, Gen.Int[0, int.MaxValue]));

    private static readonly Gen<LimitStep> Step = Gen.Frequency(
        (6, Tokens.Select(static t => new LimitStep(LimitStepKind.Acquire, t, TimeSpan.Zero))),
        (2, Tokens.Select(static t => new LimitStep(LimitStepKind.Release, t, TimeSpan.Zero))),
        (2, Gen.Long[0, 120_000_000].Select(static us => new LimitStep(LimitStepKind.Wait, 0, TimeSpan.FromTicks(us * TimeSpan.TicksPerMicrosecond)))));

    public static readonly Gen<LimitScenario> Generator =
        Gen.Select(Rules, Rules, Step.Array[1, 40])
            .Where(static s => s.Item1.Length + s.Item2.Length > 0)
            .Select(static s => new LimitScenario(s.Item1, s.Item2, s.Item3));

    /// <summary>Readable in a failure report (the default record text would only name the array types).</summary>
    public override string ToString() =>
        $"key [{string.Join(", ", KeyRules.Select(Describe))}] org [{string.Join(", ", OrgRules.Select(Describe))}] steps [{string.Join(", ", Steps.Select(static s => s.Kind == LimitStepKind.Wait ? $"wait {s.Wait.TotalMicroseconds} µs" : $"{s.Kind} {s.Tokens}"))}]";

    private static string Describe(RateLimitRule rule) => $"{rule.Class} {rule.Quota}/{rule.Window.TotalMicroseconds} µs";
}
