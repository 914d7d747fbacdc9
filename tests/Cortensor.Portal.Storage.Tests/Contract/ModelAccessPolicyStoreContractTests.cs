using Cortensor.Portal.Accounts.Policies;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>The behaviour every durable <see cref="IModelAccessPolicyStore"/> must show.</summary>
/// <remarks>
/// Beyond the interface docs: <see cref="IModelAccessPolicyStore.SetAsync"/> on an existing (subject, alias) replaces its
/// effect and created time; <see cref="IModelAccessPolicyStore.ListApplicableAsync"/> returns the key's, the org's,
/// (when a plan id is given) the plan's and the global policies and nothing else, key policies first, then org, then
/// plan, then global, each by alias. A global policy's subject id is always <c>*</c>; another id throws
/// <see cref="ArgumentException"/> before anything is written or read.
/// </remarks>
public abstract class ModelAccessPolicyStoreContractTests : ExtendedStoreContractTests
{
    [Fact]
    public async Task Set_ThenList_RoundTripsAllFields_OrderedByAlias()
    {
        await using var store = await CreateAsync();
        var deny = NewPolicy(PolicySubjectType.Org, "org_a", "mistral", PolicyEffect.Deny) with
        {
            CreatedAt = BaseTime.AddTicks(1234560).ToOffset(TimeSpan.FromHours(9)),
        };
        var allow = NewPolicy(PolicySubjectType.Org, "org_a", "llama-3", PolicyEffect.Allow);
        await store.Policies.SetAsync(deny);
        await store.Policies.SetAsync(allow);
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "org_a", "gemma", PolicyEffect.Deny)); // same id, other subject type

        var listed = await store.Policies.ListAsync(PolicySubjectType.Org, "org_a");

        Assert.Equal(2, listed.Count);
        AssertSamePolicy(allow, listed[0]);
        AssertSamePolicy(deny, listed[1]);
    }

    [Fact]
    public async Task Set_Existing_ReplacesEffect()
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "llama-3", PolicyEffect.Allow));
        var replaced = NewPolicy(PolicySubjectType.Plan, "plan_free", "llama-3", PolicyEffect.Deny) with { CreatedAt = BaseTime.AddDays(1) };

        await store.Policies.SetAsync(replaced);

        AssertSamePolicy(replaced, Assert.Single(await store.Policies.ListAsync(PolicySubjectType.Plan, "plan_free")));
    }

    [Fact]
    public async Task Remove_ReturnsWhetherRemoved()
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "llama-3", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "mistral", PolicyEffect.Deny));

        Assert.True(await store.Policies.RemoveAsync(PolicySubjectType.Key, "key_1", "llama-3"));
        Assert.False(await store.Policies.RemoveAsync(PolicySubjectType.Key, "key_1", "llama-3"));
        Assert.False(await store.Policies.RemoveAsync(PolicySubjectType.Org, "key_1", "mistral"));
        Assert.False(await store.Policies.RemoveAsync(PolicySubjectType.Key, "key_2", "mistral"));

        Assert.Equal(["mistral"], (await store.Policies.ListAsync(PolicySubjectType.Key, "key_1")).Select(p => p.ModelAlias));
    }

    [Fact]
    public async Task List_UnknownSubject_IsEmpty()
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_a", "llama-3", PolicyEffect.Deny));

        Assert.Empty(await store.Policies.ListAsync(PolicySubjectType.Org, "org_b"));
        Assert.Empty(await store.Policies.ListAsync(PolicySubjectType.Plan, "org_a"));
    }

    [Fact]
    public async Task ListApplicable_KeyOrgAndPlanOnly()
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "mistral", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_pro", "gemma", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_a", "llama-3", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_b", "llama-3", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "llama-3", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "alpha", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_2", "mistral", PolicyEffect.Allow));
        // Ids that match another subject type must not leak in.
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "key_1", "qwen", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "org_a", "qwen", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "org_a", "qwen", PolicyEffect.Deny));

        var applicable = await store.Policies.ListApplicableAsync("plan_free", "org_a", "key_1");

        Assert.Equal(
            [
                (PolicySubjectType.Key, "key_1", "alpha"),
                (PolicySubjectType.Key, "key_1", "llama-3"),
                (PolicySubjectType.Org, "org_a", "llama-3"),
                (PolicySubjectType.Plan, "plan_free", "mistral"),
            ],
            applicable.Select(p => (p.SubjectType, p.SubjectId, p.ModelAlias)));
        Assert.Equal([PolicyEffect.Allow, PolicyEffect.Deny, PolicyEffect.Allow, PolicyEffect.Deny], applicable.Select(p => p.Effect));
    }

    [Fact]
    public async Task ListApplicable_WithoutPlan_LeavesPlanPoliciesOut()
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "mistral", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_a", "llama-3", PolicyEffect.Deny));

        var applicable = await store.Policies.ListApplicableAsync(null, "org_a", "key_1");

        var only = Assert.Single(applicable);
        Assert.Equal(PolicySubjectType.Org, only.SubjectType);
        Assert.Empty(await store.Policies.ListApplicableAsync(null, "org_b", "key_9"));
    }

    [Fact]
    public async Task Decision_KeyBeatsOrgBeatsPlan_NoPolicyAllows()
    {
        await using var store = await CreateAsync();
        // plan denies everything listed; the org re-allows two; the key denies one of those again.
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "llama-3", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "mistral", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "gemma", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_a", "llama-3", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_a", "mistral", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "mistral", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "gemma", PolicyEffect.Allow));

        var applicable = await store.Policies.ListApplicableAsync("plan_free", "org_a", "key_1");

        Assert.True(ModelAccessDecision.IsAllowed(applicable, "llama-3"));  // org allow beats plan deny
        Assert.False(ModelAccessDecision.IsAllowed(applicable, "mistral")); // key deny beats org allow
        Assert.True(ModelAccessDecision.IsAllowed(applicable, "gemma"));    // key allow beats plan deny
        Assert.True(ModelAccessDecision.IsAllowed(applicable, "qwen"));     // no policy
        Assert.False(ModelAccessDecision.IsAllowed(applicable, "MISTRAL")); // aliases compare case-insensitively

        var otherKey = await store.Policies.ListApplicableAsync("plan_free", "org_a", "key_2");
        Assert.True(ModelAccessDecision.IsAllowed(otherKey, "mistral"));
        Assert.False(ModelAccessDecision.IsAllowed(otherKey, "gemma"));

        var noPlan = await store.Policies.ListApplicableAsync(null, "org_b", "key_2");
        Assert.True(ModelAccessDecision.IsAllowed(noPlan, "gemma"));
    }

    // ---------------------------------------------------------------- global (kill switch)

    [Fact]
    public async Task Global_SetListRemove_RoundTrips()
    {
        await using var store = await CreateAsync();
        var deny = NewGlobal("mistral", PolicyEffect.Deny) with { CreatedAt = BaseTime.AddTicks(1234560) };
        var allow = NewGlobal("llama-3", PolicyEffect.Allow);
        await store.Policies.SetAsync(deny);
        await store.Policies.SetAsync(allow);
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "*", "gemma", PolicyEffect.Deny)); // '*' of another subject type

        var listed = await store.Policies.ListAsync(PolicySubjectType.Global, ModelAccessPolicy.GlobalSubjectId);

        Assert.Equal(2, listed.Count);
        AssertSamePolicy(allow, listed[0]);
        AssertSamePolicy(deny, listed[1]);

        var replaced = NewGlobal("mistral", PolicyEffect.Allow) with { CreatedAt = BaseTime.AddDays(1) };
        await store.Policies.SetAsync(replaced);
        AssertSamePolicy(replaced, (await store.Policies.ListAsync(PolicySubjectType.Global, "*"))[1]);

        Assert.True(await store.Policies.RemoveAsync(PolicySubjectType.Global, "*", "llama-3"));
        Assert.False(await store.Policies.RemoveAsync(PolicySubjectType.Global, "*", "llama-3"));
        Assert.Equal(["mistral"], (await store.Policies.ListAsync(PolicySubjectType.Global, "*")).Select(p => p.ModelAlias));
        Assert.Equal(["gemma"], (await store.Policies.ListAsync(PolicySubjectType.Key, "*")).Select(p => p.ModelAlias));
    }

    [Theory]
    [InlineData("org_a")]
    [InlineData("")]
    [InlineData("all")]
    [InlineData(" *")]
    public async Task Global_OtherSubjectId_ThrowsArgumentException(string subjectId)
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewGlobal("mistral", PolicyEffect.Deny));

        await Assert.ThrowsAnyAsync<ArgumentException>(() => store.Policies.SetAsync(NewPolicy(PolicySubjectType.Global, subjectId, "llama-3", PolicyEffect.Deny)));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => store.Policies.ListAsync(PolicySubjectType.Global, subjectId));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => store.Policies.RemoveAsync(PolicySubjectType.Global, subjectId, "mistral"));

        Assert.Equal(["mistral"], (await store.Policies.ListAsync(PolicySubjectType.Global, "*")).Select(p => p.ModelAlias));
    }

    [Fact]
    public async Task ListApplicable_IncludesGlobalPoliciesLast()
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewGlobal("mistral", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewGlobal("alpha", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "alpha", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_a", "zeta", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "zeta", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_b", "alpha", PolicyEffect.Deny));

        var applicable = await store.Policies.ListApplicableAsync("plan_free", "org_a", "key_1");

        Assert.Equal(
            [
                (PolicySubjectType.Key, "key_1", "zeta"),
                (PolicySubjectType.Org, "org_a", "zeta"),
                (PolicySubjectType.Plan, "plan_free", "alpha"),
                (PolicySubjectType.Global, "*", "alpha"),
                (PolicySubjectType.Global, "*", "mistral"),
            ],
            applicable.Select(p => (p.SubjectType, p.SubjectId, p.ModelAlias)));

        // Without a plan, and for a key and org with no policies of their own, the global ones still apply.
        Assert.Equal(
            [(PolicySubjectType.Global, "alpha"), (PolicySubjectType.Global, "mistral")],
            (await store.Policies.ListApplicableAsync(null, "org_z", "key_z")).Select(p => (p.SubjectType, p.ModelAlias)));
    }

    [Fact]
    public async Task Decision_GlobalDenyIsAbsolute_GlobalAllowChangesNothing()
    {
        await using var store = await CreateAsync();
        await store.Policies.SetAsync(NewGlobal("mistral", PolicyEffect.Deny));
        await store.Policies.SetAsync(NewGlobal("llama-3", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Key, "key_1", "mistral", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Org, "org_a", "mistral", PolicyEffect.Allow));
        await store.Policies.SetAsync(NewPolicy(PolicySubjectType.Plan, "plan_free", "llama-3", PolicyEffect.Deny));

        var applicable = await store.Policies.ListApplicableAsync("plan_free", "org_a", "key_1");

        Assert.False(ModelAccessDecision.IsAllowed(applicable, "mistral"));        // global deny beats key and org allow
        Assert.True(ModelAccessDecision.IsDisabledGlobally(applicable, "Mistral"));
        Assert.False(ModelAccessDecision.IsAllowed(applicable, "llama-3"));        // global allow does not lift the plan deny
        Assert.False(ModelAccessDecision.IsDisabledGlobally(applicable, "llama-3"));
        Assert.True(ModelAccessDecision.IsAllowed(applicable, "gemma"));

        var otherPlan = await store.Policies.ListApplicableAsync("plan_pro", "org_b", "key_2");
        Assert.True(ModelAccessDecision.IsAllowed(otherPlan, "llama-3"));
        Assert.False(ModelAccessDecision.IsAllowed(otherPlan, "mistral"));

        Assert.True(await store.Policies.RemoveAsync(PolicySubjectType.Global, "*", "mistral"));
        Assert.True(ModelAccessDecision.IsAllowed(await store.Policies.ListApplicableAsync("plan_free", "org_a", "key_1"), "mistral"));
    }

    // ---------------------------------------------------------------- helpers

    protected static ModelAccessPolicy NewGlobal(string alias, PolicyEffect effect) =>
        NewPolicy(PolicySubjectType.Global, ModelAccessPolicy.GlobalSubjectId, alias, effect);

    protected static ModelAccessPolicy NewPolicy(PolicySubjectType type, string subjectId, string alias, PolicyEffect effect) => new()
    {
        SubjectType = type,
        SubjectId = subjectId,
        ModelAlias = alias,
        Effect = effect,
        CreatedAt = BaseTime,
    };

    protected static void AssertSamePolicy(ModelAccessPolicy expected, ModelAccessPolicy actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(expected with { CreatedAt = actual.CreatedAt }, actual);
        AssertUtcInstant(expected.CreatedAt, actual.CreatedAt);
    }
}
