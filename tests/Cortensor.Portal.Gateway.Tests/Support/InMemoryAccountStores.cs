using System.Collections.Concurrent;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;

namespace Cortensor.Portal.Gateway.Tests.Support;

/// <summary>Policy store double that counts reads (the durable stores have their own contract suite).</summary>
internal sealed class InMemoryPolicyStore : IModelAccessPolicyStore
{
    private readonly ConcurrentDictionary<(PolicySubjectType, string, string), ModelAccessPolicy> _policies = new();
    private int _reads;

    public int Reads => Volatile.Read(ref _reads);

    public bool Broken { get; set; }

    /// <summary>When set, reads wait for it (a slow database).</summary>
    public TaskCompletionSource? Gate { get; set; }

    public Task SetAsync(ModelAccessPolicy policy, CancellationToken cancellationToken = default)
    {
        _policies[(policy.SubjectType, policy.SubjectId, policy.ModelAlias.ToUpperInvariant())] = policy;
        return Task.CompletedTask;
    }

    public Task<bool> RemoveAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, CancellationToken cancellationToken = default)
        => Task.FromResult(_policies.TryRemove((subjectType, subjectId, modelAlias.ToUpperInvariant()), out _));

    public Task<IReadOnlyList<ModelAccessPolicy>> ListAsync(PolicySubjectType subjectType, string subjectId, CancellationToken cancellationToken = default)
        => Task.FromResult<IReadOnlyList<ModelAccessPolicy>>(_policies.Values.Where(p => p.SubjectType == subjectType && p.SubjectId == subjectId).ToList());

    public async Task<IReadOnlyList<ModelAccessPolicy>> ListApplicableAsync(string? planId, string orgId, string keyId, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _reads);
        if (Gate is { } gate)
        {
            await gate.Task;
        }

        if (Broken)
        {
            throw new InvalidOperationException("store down");
        }

        return _policies.Values.Where(p =>
            (p.SubjectType == PolicySubjectType.Key && p.SubjectId == keyId)
            || (p.SubjectType == PolicySubjectType.Org && p.SubjectId == orgId)
            || (p.SubjectType == PolicySubjectType.Plan && p.SubjectId == planId)
            || p.SubjectType == PolicySubjectType.Global).ToList();
    }
}

/// <summary>Plan store double: one subscription per org.</summary>
internal sealed class InMemoryPlanStore : IPlanStore
{
    private readonly ConcurrentDictionary<string, Plan> _plans = new();
    private readonly ConcurrentDictionary<string, PlanSubscription> _subscriptions = new();

    public Task UpsertPlanAsync(Plan plan, CancellationToken cancellationToken = default)
    {
        _plans[plan.Id] = plan;
        return Task.CompletedTask;
    }

    public Task<Plan?> FindPlanAsync(string planId, CancellationToken cancellationToken = default)
        => Task.FromResult(_plans.GetValueOrDefault(planId));

    public Task<IReadOnlyList<Plan>> ListPlansAsync(CancellationToken cancellationToken = default)
        => Task.FromResult<IReadOnlyList<Plan>>(_plans.Values.OrderBy(p => p.Id, StringComparer.Ordinal).ToList());

    public Task AddSubscriptionAsync(PlanSubscription subscription, CancellationToken cancellationToken = default)
    {
        _subscriptions[subscription.OrgId] = subscription;
        return Task.CompletedTask;
    }

    public Task<bool> CancelSubscriptionAsync(string subscriptionId, DateTimeOffset periodEnd, CancellationToken cancellationToken = default)
        => Task.FromResult(false);

    public Task<PlanSubscription?> GetActiveSubscriptionAsync(string orgId, DateTimeOffset at, CancellationToken cancellationToken = default)
        => Task.FromResult(_subscriptions.GetValueOrDefault(orgId));
}
