using Cortensor.Portal.Accounts.Plans;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>The behaviour every durable <see cref="IPlanStore"/> must show (plans and subscriptions).</summary>
/// <remarks>
/// Beyond the interface docs:
/// <list type="bullet">
/// <item><see cref="IPlanStore.AddSubscriptionAsync"/> with an unknown plan or a duplicate id throws <see cref="InvalidOperationException"/>.</item>
/// <item>A subscription covers <c>at</c> when <c>PeriodStart &lt;= at &lt; PeriodEnd</c> (no end = open-ended) and it is
/// <see cref="SubscriptionStatus.Active"/>, or it is <see cref="SubscriptionStatus.Cancelled"/> with an end: a cancelled
/// subscription runs out at the end the cancellation set. A cancelled subscription without an end covers nothing.</item>
/// <item><see cref="IPlanStore.CancelSubscriptionAsync"/> sets status <see cref="SubscriptionStatus.Cancelled"/> and the end;
/// it returns false (and changes nothing) for an unknown or already cancelled subscription.</item>
/// </list>
/// </remarks>
public abstract class PlanStoreContractTests : ExtendedStoreContractTests
{
    [Fact]
    public async Task Plans_UpsertThenFind_RoundTripsAllFields()
    {
        await using var store = await CreateAsync();
        var full = new Plan
        {
            Id = "plan_pro",
            Name = "Pro",
            Description = "For teams",
            RequestsPerMinute = 600,
            TokensPerMinute = 250_000,
            WeeklyRequestAllowance = 100_000,
            PriceMinor = 4_900,
            Currency = "USD",
            CreatedAt = BaseTime.AddTicks(1234560).ToOffset(TimeSpan.FromHours(3)),
        };
        var free = new Plan { Id = "plan_free", Name = "Free", CreatedAt = BaseTime };

        await store.Plans.UpsertPlanAsync(full);
        await store.Plans.UpsertPlanAsync(free);

        AssertSamePlan(full, await store.Plans.FindPlanAsync("plan_pro"));
        AssertSamePlan(free, await store.Plans.FindPlanAsync("plan_free"));
        Assert.Null(await store.Plans.FindPlanAsync("plan_missing"));
    }

    [Fact]
    public async Task Plans_UpsertExisting_ReplacesEveryField()
    {
        await using var store = await CreateAsync();
        await store.Plans.UpsertPlanAsync(new Plan
        {
            Id = "plan_pro",
            Name = "Pro",
            Description = "old",
            RequestsPerMinute = 60,
            TokensPerMinute = 1000,
            WeeklyRequestAllowance = 10,
            PriceMinor = 100,
            Currency = "EUR",
            CreatedAt = BaseTime,
        });
        var replaced = new Plan { Id = "plan_pro", Name = "Pro 2", Description = "new", RequestsPerMinute = 120, CreatedAt = BaseTime.AddDays(1) };

        await store.Plans.UpsertPlanAsync(replaced);

        AssertSamePlan(replaced, await store.Plans.FindPlanAsync("plan_pro"));
        Assert.Single(await store.Plans.ListPlansAsync());
    }

    [Fact]
    public async Task Plans_List_OrderedById()
    {
        await using var store = await CreateAsync();
        Assert.Empty(await store.Plans.ListPlansAsync());
        foreach (var id in (string[])["plan_c", "plan_a", "plan_b"])
        {
            await store.Plans.UpsertPlanAsync(new Plan { Id = id, Name = id.ToUpperInvariant(), CreatedAt = BaseTime });
        }

        var plans = await store.Plans.ListPlansAsync();

        Assert.Equal(["plan_a", "plan_b", "plan_c"], plans.Select(p => p.Id));
        Assert.Equal("PLAN_B", plans[1].Name);
    }

    [Fact]
    public async Task Subscriptions_AddThenGetActive_RoundTripsAllFields()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_pro");
        var subscription = new PlanSubscription
        {
            Id = "sub_1",
            OrgId = "org_a",
            PlanId = "plan_pro",
            PeriodStart = BaseTime.AddTicks(1234560).ToOffset(TimeSpan.FromHours(-5)),
            PeriodEnd = BaseTime.AddDays(30).AddTicks(10),
            Status = SubscriptionStatus.Active,
            CreatedAt = BaseTime.AddTicks(-10),
        };

        await store.Plans.AddSubscriptionAsync(subscription);

        AssertSameSubscription(subscription, await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(1)));
    }

    [Fact]
    public async Task Subscriptions_AddForUnknownPlan_Throws()
    {
        await using var store = await CreateAsync();

        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_missing", BaseTime, null)));

        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(1)));
    }

    [Fact]
    public async Task Subscriptions_AddDuplicateId_ThrowsAndKeepsFirst()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_a");
        await AddPlanAsync(store, "plan_b");
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_a", BaseTime, null));

        await Assert.ThrowsAnyAsync<InvalidOperationException>(
            () => store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_b", BaseTime.AddDays(1), null)));

        Assert.Equal("plan_a", (await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(2)))?.PlanId);
    }

    [Fact]
    public async Task Subscriptions_ActiveWindow_StartInclusiveEndExclusive()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_pro");
        var start = BaseTime;
        var end = BaseTime.AddDays(30);
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_pro", start, end));

        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", start.AddTicks(-10)));
        Assert.Equal("sub_1", (await store.Plans.GetActiveSubscriptionAsync("org_a", start))?.Id);
        Assert.Equal("sub_1", (await store.Plans.GetActiveSubscriptionAsync("org_a", end.AddTicks(-10)))?.Id);
        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", end));
        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_b", start.AddDays(1)));
    }

    [Fact]
    public async Task Subscriptions_OpenEnded_CoversEverythingAfterStart()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_pro");
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_pro", BaseTime, null));

        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddTicks(-10)));
        var found = await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddYears(10));
        Assert.NotNull(found);
        Assert.Null(found.PeriodEnd);
    }

    [Fact]
    public async Task Subscriptions_Overlapping_LatestStartWins()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_free");
        await AddPlanAsync(store, "plan_pro");
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_free", "org_a", "plan_free", BaseTime, null));
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_pro", "org_a", "plan_pro", BaseTime.AddDays(10), BaseTime.AddDays(40)));

        Assert.Equal("sub_free", (await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(5)))?.Id);
        Assert.Equal("sub_pro", (await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(10)))?.Id);
        Assert.Equal("sub_pro", (await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(39)))?.Id);
        Assert.Equal("sub_free", (await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(40)))?.Id);
    }

    [Fact]
    public async Task Subscriptions_Cancel_SetsStatusAndEnd_CoversUntilEnd()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_pro");
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_pro", BaseTime, null));
        var end = BaseTime.AddDays(7).AddTicks(1234560);

        Assert.True(await store.Plans.CancelSubscriptionAsync("sub_1", end));

        var stillCovered = await store.Plans.GetActiveSubscriptionAsync("org_a", end.AddTicks(-10));
        Assert.NotNull(stillCovered);
        Assert.Equal(SubscriptionStatus.Cancelled, stillCovered.Status);
        AssertUtcInstant(end, stillCovered.PeriodEnd);
        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", end));
    }

    [Fact]
    public async Task Subscriptions_CancelAtNow_EndsImmediately()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_pro");
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_pro", BaseTime, BaseTime.AddDays(30)));
        var now = BaseTime.AddDays(3);

        Assert.True(await store.Plans.CancelSubscriptionAsync("sub_1", now));

        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", now));
        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(20)));
    }

    [Fact]
    public async Task Subscriptions_CancelUnknownOrTwice_ReturnsFalse()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_pro");
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_pro", BaseTime, null));

        Assert.False(await store.Plans.CancelSubscriptionAsync("sub_missing", BaseTime.AddDays(1)));
        Assert.True(await store.Plans.CancelSubscriptionAsync("sub_1", BaseTime.AddDays(5)));
        Assert.False(await store.Plans.CancelSubscriptionAsync("sub_1", BaseTime.AddDays(9)));

        // The second cancellation changed nothing: the end is still the first one.
        Assert.Equal("sub_1", (await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(4)))?.Id);
        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(6)));
    }

    [Fact]
    public async Task Subscriptions_CancelledWithoutEnd_CoversNothing()
    {
        await using var store = await CreateAsync();
        await AddPlanAsync(store, "plan_pro");
        await store.Plans.AddSubscriptionAsync(NewSubscription("sub_1", "org_a", "plan_pro", BaseTime, null) with { Status = SubscriptionStatus.Cancelled });

        Assert.Null(await store.Plans.GetActiveSubscriptionAsync("org_a", BaseTime.AddDays(1)));
    }

    // ---------------------------------------------------------------- helpers

    protected static Task AddPlanAsync(ExtendedStoreUnderTest store, string planId)
    {
        ArgumentNullException.ThrowIfNull(store);
        return store.Plans.UpsertPlanAsync(new Plan { Id = planId, Name = planId, CreatedAt = BaseTime });
    }

    protected static PlanSubscription NewSubscription(string id, string orgId, string planId, DateTimeOffset start, DateTimeOffset? end) => new()
    {
        Id = id,
        OrgId = orgId,
        PlanId = planId,
        PeriodStart = start,
        PeriodEnd = end,
        CreatedAt = start,
    };

    protected static void AssertSamePlan(Plan expected, Plan? actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected with { CreatedAt = actual.CreatedAt }, actual);
        AssertUtcInstant(expected.CreatedAt, actual.CreatedAt);
    }

    protected static void AssertSameSubscription(PlanSubscription expected, PlanSubscription? actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        Assert.NotNull(actual);
        Assert.Equal(expected with { PeriodStart = actual.PeriodStart, PeriodEnd = actual.PeriodEnd, CreatedAt = actual.CreatedAt }, actual);
        AssertUtcInstant(expected.PeriodStart, actual.PeriodStart);
        AssertUtcInstant(expected.PeriodEnd, actual.PeriodEnd);
        AssertUtcInstant(expected.CreatedAt, actual.CreatedAt);
    }
}
