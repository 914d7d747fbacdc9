namespace Cortensor.Portal.Accounts.Policies;

public enum PolicySubjectType
{
    Plan,
    Org,
    Key,

    /// <summary>
    /// Every request (an operator's kill switch). The subject id is always <see cref="ModelAccessPolicy.GlobalSubjectId"/>
    /// (<c>*</c>). A global deny refuses the alias whatever the other policies say; a global allow changes nothing.
    /// </summary>
    Global,
}

public enum PolicyEffect
{
    Allow,
    Deny,
}

/// <summary>
/// Allows or denies one model alias to a plan, an org, a key or everyone (<see cref="PolicySubjectType.Global"/>).
/// See <see cref="ModelAccessDecision"/> for how they combine.
/// </summary>
public sealed record ModelAccessPolicy
{
    /// <summary>The only subject id of a <see cref="PolicySubjectType.Global"/> policy.</summary>
    public const string GlobalSubjectId = "*";

    public required PolicySubjectType SubjectType { get; init; }

    /// <summary>The plan, org or key id; <see cref="GlobalSubjectId"/> for a global policy.</summary>
    public required string SubjectId { get; init; }

    public required string ModelAlias { get; init; }

    public required PolicyEffect Effect { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }
}

/// <remarks>
/// For <see cref="PolicySubjectType.Global"/> the subject id must be <see cref="ModelAccessPolicy.GlobalSubjectId"/>;
/// <see cref="SetAsync"/>, <see cref="RemoveAsync"/> and <see cref="ListAsync"/> throw <see cref="ArgumentException"/>
/// for any other id.
/// </remarks>
public interface IModelAccessPolicyStore
{
    /// <summary>Inserts or replaces the policy for (subject, alias).</summary>
    /// <exception cref="ArgumentException">A global policy whose subject id is not <c>*</c>.</exception>
    Task SetAsync(ModelAccessPolicy policy, CancellationToken cancellationToken = default);

    /// <exception cref="ArgumentException">A global subject with an id other than <c>*</c>.</exception>
    Task<bool> RemoveAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, CancellationToken cancellationToken = default);

    /// <summary>Policies of one subject, ordered by alias. <c>ListAsync(Global, "*")</c> lists the global policies.</summary>
    /// <exception cref="ArgumentException">A global subject with an id other than <c>*</c>.</exception>
    Task<IReadOnlyList<ModelAccessPolicy>> ListAsync(PolicySubjectType subjectType, string subjectId, CancellationToken cancellationToken = default);

    /// <summary>
    /// Every policy that applies to a request of this key, org and (optional) plan, in one round trip: the key's, the
    /// org's, the plan's and the global ones, in that order, each ordered by alias.
    /// </summary>
    Task<IReadOnlyList<ModelAccessPolicy>> ListApplicableAsync(string? planId, string orgId, string keyId, CancellationToken cancellationToken = default);
}

/// <summary>
/// Decides a model alias from the applicable policies (aliases compare case-insensitively):
/// <list type="number">
/// <item>a <see cref="PolicySubjectType.Global"/> deny refuses the alias, whatever the other policies say;</item>
/// <item>otherwise the most specific subject with a policy for the alias decides: key beats org beats plan;</item>
/// <item>no policy = allowed.</item>
/// </list>
/// A global allow has no effect beyond "not globally denied": it does not override a key, org or plan deny.
/// </summary>
public static class ModelAccessDecision
{
    public static bool IsAllowed(IReadOnlyList<ModelAccessPolicy> applicable, string modelAlias)
    {
        if (IsDisabledGlobally(applicable, modelAlias))
        {
            return false;
        }

        foreach (var subject in (ReadOnlySpan<PolicySubjectType>)[PolicySubjectType.Key, PolicySubjectType.Org, PolicySubjectType.Plan])
        {
            foreach (var policy in applicable)
            {
                if (policy.SubjectType == subject && Matches(policy, modelAlias))
                {
                    return policy.Effect == PolicyEffect.Allow;
                }
            }
        }

        return true;
    }

    /// <summary>
    /// True when a <see cref="PolicySubjectType.Global"/> deny matches the alias: the model is switched off for everyone
    /// (a gateway answers as if it did not exist), as opposed to refused to this caller by a key, org or plan policy.
    /// </summary>
    public static bool IsDisabledGlobally(IReadOnlyList<ModelAccessPolicy> applicable, string modelAlias)
    {
        ArgumentNullException.ThrowIfNull(applicable);
        foreach (var policy in applicable)
        {
            if (policy.SubjectType == PolicySubjectType.Global && policy.Effect == PolicyEffect.Deny && Matches(policy, modelAlias))
            {
                return true;
            }
        }

        return false;
    }

    private static bool Matches(ModelAccessPolicy policy, string modelAlias) =>
        string.Equals(policy.ModelAlias, modelAlias, StringComparison.OrdinalIgnoreCase);
}
