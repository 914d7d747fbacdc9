namespace Cortensor.Portal.Accounts.Policies;

public enum PolicySubjectType
{
    Plan,
    Org,
    Key,
}

public enum PolicyEffect
{
    Allow,
    Deny,
}

/// <summary>Allows or denies one model alias to a plan, an org or a key. The most specific subject wins (key, then org, then plan).</summary>
public sealed record ModelAccessPolicy
{
    public required PolicySubjectType SubjectType { get; init; }

    public required string SubjectId { get; init; }

    public required string ModelAlias { get; init; }

    public required PolicyEffect Effect { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

public interface IModelAccessPolicyStore
{
    /// <summary>Inserts or replaces the policy for (subject, alias).</summary>
    Task SetAsync(ModelAccessPolicy policy, CancellationToken cancellationToken = default);

    Task<bool> RemoveAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, CancellationToken cancellationToken = default);

    /// <summary>Policies of one subject, ordered by alias.</summary>
    Task<IReadOnlyList<ModelAccessPolicy>> ListAsync(PolicySubjectType subjectType, string subjectId, CancellationToken cancellationToken = default);

    /// <summary>Every policy that applies to a request of this key, org and (optional) plan, in one round trip.</summary>
    Task<IReadOnlyList<ModelAccessPolicy>> ListApplicableAsync(string? planId, string orgId, string keyId, CancellationToken cancellationToken = default);
}

/// <summary>Decides a model alias from the applicable policies: key beats org beats plan; no policy = allowed.</summary>
public static class ModelAccessDecision
{
    public static bool IsAllowed(IReadOnlyList<ModelAccessPolicy> applicable, string modelAlias)
    {
        ArgumentNullException.ThrowIfNull(applicable);
        foreach (var subject in (ReadOnlySpan<PolicySubjectType>)[PolicySubjectType.Key, PolicySubjectType.Org, PolicySubjectType.Plan])
        {
            foreach (var policy in applicable)
            {
                if (policy.SubjectType == subject && string.Equals(policy.ModelAlias, modelAlias, StringComparison.OrdinalIgnoreCase))
                {
                    return policy.Effect == PolicyEffect.Allow;
                }
            }
        }

        return true;
    }
}
