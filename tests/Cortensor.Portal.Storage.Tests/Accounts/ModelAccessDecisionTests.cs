using Cortensor.Portal.Accounts.Policies;

namespace Cortensor.Portal.Storage.Tests.Accounts;

/// <summary><see cref="ModelAccessDecision"/> on hand-built policy lists (no store).</summary>
public sealed class ModelAccessDecisionTests
{
    private static readonly DateTimeOffset At = new(2026, 1, 15, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void NoPolicies_Allowed_NotDisabled()
    {
        Assert.True(ModelAccessDecision.IsAllowed([], "llama-3"));
        Assert.False(ModelAccessDecision.IsDisabledGlobally([], "llama-3"));
    }

    [Theory]
    [InlineData(PolicySubjectType.Key)]
    [InlineData(PolicySubjectType.Org)]
    [InlineData(PolicySubjectType.Plan)]
    public void GlobalDeny_BeatsAnAllowOfEverySubject(PolicySubjectType subject)
    {
        ModelAccessPolicy[] applicable = [Policy(subject, "llama-3", PolicyEffect.Allow), Global("llama-3", PolicyEffect.Deny)];

        Assert.False(ModelAccessDecision.IsAllowed(applicable, "llama-3"));
        Assert.True(ModelAccessDecision.IsDisabledGlobally(applicable, "llama-3"));
    }

    [Fact]
    public void GlobalDeny_DoesNotDependOnListOrder_AndMatchesCaseInsensitively()
    {
        ModelAccessPolicy[] applicable =
        [
            Global("Llama-3", PolicyEffect.Deny),
            Policy(PolicySubjectType.Key, "llama-3", PolicyEffect.Allow),
            Policy(PolicySubjectType.Org, "llama-3", PolicyEffect.Allow),
        ];

        Assert.False(ModelAccessDecision.IsAllowed(applicable, "LLAMA-3"));
        Assert.True(ModelAccessDecision.IsDisabledGlobally(applicable, "llama-3"));
    }

    [Fact]
    public void GlobalDeny_OfAnotherAlias_ChangesNothing()
    {
        ModelAccessPolicy[] applicable = [Global("mistral", PolicyEffect.Deny), Policy(PolicySubjectType.Plan, "gemma", PolicyEffect.Deny)];

        Assert.True(ModelAccessDecision.IsAllowed(applicable, "llama-3"));
        Assert.False(ModelAccessDecision.IsDisabledGlobally(applicable, "llama-3"));
        Assert.False(ModelAccessDecision.IsAllowed(applicable, "gemma"));
        Assert.False(ModelAccessDecision.IsDisabledGlobally(applicable, "gemma"));
    }

    [Theory]
    [InlineData(PolicySubjectType.Key)]
    [InlineData(PolicySubjectType.Org)]
    [InlineData(PolicySubjectType.Plan)]
    public void GlobalAllow_DoesNotLiftADenyOfAnySubject(PolicySubjectType subject)
    {
        ModelAccessPolicy[] applicable = [Global("llama-3", PolicyEffect.Allow), Policy(subject, "llama-3", PolicyEffect.Deny)];

        Assert.False(ModelAccessDecision.IsAllowed(applicable, "llama-3"));
        Assert.False(ModelAccessDecision.IsDisabledGlobally(applicable, "llama-3")); // refused to this caller (403), not disabled (404)
    }

    [Fact]
    public void GlobalAllow_Alone_Allows()
    {
        ModelAccessPolicy[] applicable = [Global("llama-3", PolicyEffect.Allow)];

        Assert.True(ModelAccessDecision.IsAllowed(applicable, "llama-3"));
        Assert.False(ModelAccessDecision.IsDisabledGlobally(applicable, "llama-3"));
    }

    [Fact]
    public void WithoutGlobalDeny_KeyBeatsOrgBeatsPlan()
    {
        ModelAccessPolicy[] applicable =
        [
            Global("a", PolicyEffect.Allow),
            Policy(PolicySubjectType.Plan, "a", PolicyEffect.Deny),
            Policy(PolicySubjectType.Org, "a", PolicyEffect.Allow),
            Policy(PolicySubjectType.Key, "a", PolicyEffect.Deny),
            Policy(PolicySubjectType.Plan, "b", PolicyEffect.Deny),
            Policy(PolicySubjectType.Org, "b", PolicyEffect.Allow),
            Policy(PolicySubjectType.Plan, "c", PolicyEffect.Allow),
            Policy(PolicySubjectType.Org, "c", PolicyEffect.Deny),
        ];

        Assert.False(ModelAccessDecision.IsAllowed(applicable, "a"));
        Assert.True(ModelAccessDecision.IsAllowed(applicable, "b"));
        Assert.False(ModelAccessDecision.IsAllowed(applicable, "c"));
    }

    [Fact]
    public void NullList_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => ModelAccessDecision.IsAllowed(null!, "a"));
        Assert.Throws<ArgumentNullException>(() => ModelAccessDecision.IsDisabledGlobally(null!, "a"));
    }

    [Fact]
    public void Global_IsTheLastSubjectType()
    {
        Assert.Equal(PolicySubjectType.Global, Enum.GetValues<PolicySubjectType>()[^1]);
        Assert.Equal(3, (int)PolicySubjectType.Global);
        Assert.Equal("*", ModelAccessPolicy.GlobalSubjectId);
    }

    private static ModelAccessPolicy Global(string alias, PolicyEffect effect) =>
        Policy(PolicySubjectType.Global, alias, effect) with { SubjectId = ModelAccessPolicy.GlobalSubjectId };

    private static ModelAccessPolicy Policy(PolicySubjectType subject, string alias, PolicyEffect effect) => new()
    {
        SubjectType = subject,
        SubjectId = "id_1",
        ModelAlias = alias,
        Effect = effect,
        CreatedAt = At,
    };
}
