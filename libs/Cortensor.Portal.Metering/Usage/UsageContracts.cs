namespace Cortensor.Portal.Metering.Usage;

/// <summary>How a request ended, for billing and support.</summary>
public enum UsageOutcome
{
    /// <summary>The router answered; tokens are billable.</summary>
    Succeeded = 0,

    /// <summary>Refused before any router work (bad key, bad input, not allowed, limited).</summary>
    Rejected = 1,

    /// <summary>The router failed, timed out or was unavailable.</summary>
    UpstreamFailed = 2,

    /// <summary>The client went away before the answer was complete.</summary>
    Cancelled = 3,

    /// <summary>
    /// The gateway stopped (crashed, was killed) while the request was in flight: the record was rebuilt on the next
    /// start from the usage journal (prompt tokens estimated, completion tokens as far as the stream was journaled).
    /// </summary>
    Interrupted = 4,
}

/// <summary>
/// One request's usage: exactly one per request id. The durable store ignores a second event with the same
/// <see cref="RequestId"/> (replays after an outage must not double count).
/// </summary>
public sealed record UsageEvent
{
    public required string RequestId { get; init; }

    public required DateTimeOffset OccurredAt { get; init; }

    /// <summary>Null when the key could not be verified.</summary>
    public string? OrgId { get; init; }

    public string? KeyId { get; init; }

    /// <summary>Public model alias; null when the request named none.</summary>
    public string? Model { get; init; }

    /// <summary>Internal pool name (never shown to customers).</summary>
    public string? Pool { get; init; }

    public required UsageOutcome Outcome { get; init; }

    public int PromptTokens { get; init; }

    public int CompletionTokens { get; init; }

    /// <summary>True when the router reported no usage and the counts are estimates.</summary>
    public bool TokensEstimated { get; init; }

    public bool Stream { get; init; }
}

/// <summary>One request's log row (operational, not billing): exactly one per request id, also idempotent.</summary>
public sealed record RequestLogEntry
{
    public required string RequestId { get; init; }

    public required DateTimeOffset OccurredAt { get; init; }

    public string? OrgId { get; init; }

    public string? KeyId { get; init; }

    public required string Method { get; init; }

    public required string Path { get; init; }

    public string? Model { get; init; }

    public required int StatusCode { get; init; }

    /// <summary>The OpenAI error code returned, if any.</summary>
    public string? ErrorCode { get; init; }

    public required int LatencyMs { get; init; }

    /// <summary>Router id and its status, for support (internal only).</summary>
    public string? RouterId { get; init; }

    public int? UpstreamStatus { get; init; }
}

/// <summary>What the gateway hands to metering for each request: its usage event and its log row.</summary>
public sealed record UsageRecord(UsageEvent Usage, RequestLogEntry Log);

/// <summary>
/// The durable end of the metering pipeline (Postgres, SQLite, or a test double). Must be idempotent by
/// request id: writing a batch that was (partly) written before changes nothing for those ids.
/// </summary>
public interface IUsageSink
{
    /// <summary>Writes the whole batch or throws; a throw means "retry this batch later".</summary>
    Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken);
}

/// <summary>Hot-path entry point: never blocks on the database, never loses a record.</summary>
public interface IUsageRecorder
{
    void Record(UsageRecord record);
}

/// <summary>Totals over a time range, for usage pages and tests.</summary>
public sealed record UsageTotals(long Requests, long PromptTokens, long CompletionTokens);

/// <summary>Reads what the sink wrote. Implemented by the durable stores.</summary>
public interface IUsageReader
{
    /// <summary>Usage of an org (optionally one key) with <c>from &lt;= occurred_at &lt; to</c>; cancelled and rejected requests count as requests with their tokens.</summary>
    Task<UsageTotals> GetTotalsAsync(string orgId, DateTimeOffset from, DateTimeOffset to, string? keyId = null, CancellationToken cancellationToken = default);

    Task<UsageEvent?> FindUsageEventAsync(string requestId, CancellationToken cancellationToken = default);

    Task<RequestLogEntry?> FindRequestLogAsync(string requestId, CancellationToken cancellationToken = default);
}
