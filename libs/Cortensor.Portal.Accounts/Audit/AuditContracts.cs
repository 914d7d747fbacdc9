namespace Cortensor.Portal.Accounts.Audit;

public enum AuditActorType
{
    User,
    Admin,
    System,
}

/// <summary>One key or admin action. Append-only.</summary>
public sealed record AuditEntry
{
    /// <summary>Assigned by the caller (for example <c>aud_</c> + a time-ordered id).</summary>
    public required string Id { get; init; }

    public required DateTimeOffset OccurredAt { get; init; }

    public required AuditActorType ActorType { get; init; }

    public required string ActorId { get; init; }

    /// <summary>For example <c>key.created</c>, <c>key.revoked</c>, <c>model.disabled</c>.</summary>
    public required string Action { get; init; }

    public string? OrgId { get; init; }

    public string? TargetId { get; init; }

    /// <summary>A JSON object with details; never secrets.</summary>
    public string? DetailsJson { get; init; }
}

public interface IAuditLog
{
    Task AppendAsync(AuditEntry entry, CancellationToken cancellationToken = default);

    /// <summary>Entries of an org with <c>from &lt;= occurred_at &lt; to</c>, newest first, at most <paramref name="limit"/>.</summary>
    Task<IReadOnlyList<AuditEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, int limit = 100, CancellationToken cancellationToken = default);
}
