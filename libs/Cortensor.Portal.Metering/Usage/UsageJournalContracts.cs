namespace Cortensor.Portal.Metering.Usage;

/// <summary>
/// What is known about a request when it is admitted, before the router is called: enough to bill it as
/// <see cref="UsageOutcome.Interrupted"/> if the gateway dies before the request ends.
/// </summary>
public sealed record UsageStart
{
    public required string RequestId { get; init; }

    /// <summary>
    /// When the request started. The finished <see cref="UsageEvent.OccurredAt"/> of the same request must be this
    /// value, so a rebuilt record and the finished one share their key in every store.
    /// </summary>
    public required DateTimeOffset StartedAt { get; init; }

    public string? OrgId { get; init; }

    public string? KeyId { get; init; }

    /// <summary>Public model alias.</summary>
    public string? Model { get; init; }

    /// <summary>Internal pool name.</summary>
    public string? Pool { get; init; }

    /// <summary>The router the request was sent to (internal, for the request log).</summary>
    public string? RouterId { get; init; }

    /// <summary>The gateway's estimate of the prompt tokens (what an interrupted request is billed).</summary>
    public int EstimatedPromptTokens { get; init; }

    public bool Stream { get; init; }

    public required string Method { get; init; }

    public required string Path { get; init; }
}

/// <summary>
/// The write-ahead side of metering: the gateway notes a request before the router is called, and a stream's
/// progress while it runs, so a crash cannot lose the request's usage. The finished record still goes through
/// <see cref="IUsageRecorder.Record"/>, which completes the entry. Never blocks on a disk flush, never throws.
/// </summary>
public interface IUsageJournal
{
    /// <summary>Notes an admitted request; call before the router is called.</summary>
    void Started(UsageStart start);

    /// <summary>
    /// Notes how many completion tokens a running stream has sent so far (what an interrupted stream is billed).
    /// Cheap to call on every chunk: entries are written at most once per progress interval for a request.
    /// </summary>
    void Streamed(string requestId, int completionTokens);
}

/// <summary>How a request the gateway never finished is recorded when the journal is replayed on the next start.</summary>
public static class InterruptedUsage
{
    /// <summary>
    /// The request-log status of an interrupted request: 500, the gateway failed it (a started stream had already
    /// sent its 200; like 499 for a client that left, only the records carry this status).
    /// </summary>
    public const int StatusCode = 500;

    /// <summary>The request-log error code of an interrupted request.</summary>
    public const string ErrorCode = "interrupted";

    /// <summary>
    /// The record of a request that started and never finished: outcome <see cref="UsageOutcome.Interrupted"/>, the
    /// estimated prompt tokens, <paramref name="completionTokens"/> (what was journaled as streamed, else 0), tokens
    /// estimated, at <see cref="UsageStart.StartedAt"/>. The same input always gives the same record, so a replay
    /// repeated after a second crash is absorbed by the idempotent store.
    /// </summary>
    public static UsageRecord Create(UsageStart start, int completionTokens, int elapsedMs)
    {
        ArgumentNullException.ThrowIfNull(start);
        var usage = new UsageEvent
        {
            RequestId = start.RequestId,
            OccurredAt = start.StartedAt,
            OrgId = start.OrgId,
            KeyId = start.KeyId,
            Model = start.Model,
            Pool = start.Pool,
            Outcome = UsageOutcome.Interrupted,
            PromptTokens = Math.Max(0, start.EstimatedPromptTokens),
            CompletionTokens = Math.Max(0, completionTokens),
            TokensEstimated = true,
            Stream = start.Stream,
        };
        var log = new RequestLogEntry
        {
            RequestId = start.RequestId,
            OccurredAt = start.StartedAt,
            OrgId = start.OrgId,
            KeyId = start.KeyId,
            Method = start.Method,
            Path = start.Path,
            Model = start.Model,
            StatusCode = StatusCode,
            ErrorCode = ErrorCode,
            LatencyMs = Math.Max(0, elapsedMs),
            RouterId = start.RouterId,
        };
        return new UsageRecord(usage, log);
    }
}
