using System.Text.Json;
using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Keys.Changes;

namespace Cortensor.Portal.Gateway.Entitlements;

/// <summary>
/// Changes who may call which model, and tells every replica at once: each change is written to the durable
/// store, then a change notice drops the affected cached entitlements everywhere (so it holds within a second on
/// every replica sharing the change feed). Each change is also written to the audit log when one is registered.
/// </summary>
public sealed class ModelAccessAdministration
{
    private readonly IModelAccessPolicyStore _store;
    private readonly IHotPathChangeFeed _changes;
    private readonly TimeProvider _time;
    private readonly IAuditLog? _audit;

    public ModelAccessAdministration(IModelAccessPolicyStore store, IHotPathChangeFeed changes, TimeProvider time, IEnumerable<IAuditLog> audit)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(audit);
        _store = store;
        _changes = changes;
        _time = time;
        _audit = audit.LastOrDefault();
    }

    /// <summary>Allows or denies <paramref name="modelAlias"/> to a plan, an org or a key.</summary>
    public async Task SetPolicyAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, PolicyEffect effect, string actorId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(subjectId);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelAlias);
        await _store.SetAsync(
            new ModelAccessPolicy { SubjectType = subjectType, SubjectId = subjectId, ModelAlias = modelAlias, Effect = effect, CreatedAt = _time.GetUtcNow() },
            cancellationToken).ConfigureAwait(false);
        await ChangedAsync(subjectType, subjectId, modelAlias, effect == PolicyEffect.Allow ? "policy.allowed" : "policy.denied", actorId, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes a policy; false when there was none.</summary>
    public async Task<bool> RemovePolicyAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, string actorId, CancellationToken cancellationToken = default)
    {
        var removed = await _store.RemoveAsync(subjectType, subjectId, modelAlias, cancellationToken).ConfigureAwait(false);
        if (removed)
        {
            await ChangedAsync(subjectType, subjectId, modelAlias, "policy.removed", actorId, cancellationToken).ConfigureAwait(false);
        }

        return removed;
    }

    /// <summary>Disables a model alias for everyone (a global deny): requests get 404 and it leaves <c>/v1/models</c>.</summary>
    public Task DisableModelAsync(string modelAlias, string actorId, CancellationToken cancellationToken = default)
        => SetPolicyAsync(PolicySubjectType.Global, "*", modelAlias, PolicyEffect.Deny, actorId, cancellationToken);

    /// <summary>Lifts a global disable; false when the alias was not disabled.</summary>
    public Task<bool> EnableModelAsync(string modelAlias, string actorId, CancellationToken cancellationToken = default)
        => RemovePolicyAsync(PolicySubjectType.Global, "*", modelAlias, actorId, cancellationToken);

    /// <summary>Tells every replica that an org's plan or subscription changed (after writing it to the plan store).</summary>
    public async Task PlanChangedAsync(string orgId, CancellationToken cancellationToken = default)
        => await _changes.PublishAsync(new HotPathChange(HotPathChangeKind.Plan, orgId), cancellationToken).ConfigureAwait(false);

    private async Task ChangedAsync(PolicySubjectType subjectType, string subjectId, string modelAlias, string action, string actorId, CancellationToken cancellationToken)
    {
        var subject = subjectType switch
        {
            PolicySubjectType.Plan => "plan:" + subjectId,
            PolicySubjectType.Org => "org:" + subjectId,
            PolicySubjectType.Key => "key:" + subjectId,
            _ => "global:*",
        };
        await _changes.PublishAsync(new HotPathChange(HotPathChangeKind.Policy, subject), cancellationToken).ConfigureAwait(false);
        if (_audit is not null)
        {
            var details = new Dictionary<string, string> { ["subject"] = subject, ["model"] = modelAlias };
            await _audit.AppendAsync(
                new AuditEntry
                {
                    Id = "aud_" + Guid.CreateVersion7().ToString("N"),
                    OccurredAt = _time.GetUtcNow(),
                    ActorType = AuditActorType.Admin,
                    ActorId = actorId,
                    Action = subjectType == PolicySubjectType.Global ? (action == "policy.denied" ? "model.disabled" : "model.enabled") : action,
                    OrgId = subjectType == PolicySubjectType.Org ? subjectId : null,
                    TargetId = modelAlias,
                    DetailsJson = JsonSerializer.Serialize(details, EntitlementJson.Default.DictionaryStringString),
                },
                cancellationToken).ConfigureAwait(false);
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
internal sealed partial class EntitlementJson : System.Text.Json.Serialization.JsonSerializerContext;
