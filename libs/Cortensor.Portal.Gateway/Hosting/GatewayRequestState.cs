using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Usage;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>
/// What the pipeline learned about one request, filled in as it goes, so the endpoint filter can write exactly
/// one usage event and one request-log row at the end however the request ended (success, error, disconnect).
/// </summary>
internal sealed class GatewayRequestState
{
    private const string ItemKey = "Cortensor.Portal.RequestState";

    /// <summary>Inference endpoints are metered; models and health are not.</summary>
    public bool IsInference { get; set; }

    public ApiKeyPrincipal? Principal { get; set; }

    /// <summary>The key was missing or refused (or its address refused): aggregated, not logged or recorded one by one.</summary>
    public bool AuthenticationFailed { get; set; }

    public string? Model { get; set; }

    public string? Pool { get; set; }

    public string? RouterId { get; set; }

    public bool Stream { get; set; }

    public int EstimatedPromptTokens { get; set; }

    /// <summary>Characters sent to the client so far, to estimate usage of a stream that ended early.</summary>
    public int CompletionChars { get; private set; }

    /// <summary>
    /// When the request arrived: the time of its usage record, and of its usage journal entry, so a record rebuilt
    /// after a crash and the finished one are the same row in every store.
    /// </summary>
    public DateTimeOffset ReceivedAt { get; set; }

    /// <summary>The journal the request's start was written to (its stream progress goes there too).</summary>
    private IUsageJournal? _journal;

    private string? _journaledRequestId;

    /// <summary>Final counts once known (router usage or estimate).</summary>
    public (int Prompt, int Completion, bool Estimated)? Tokens { get; set; }

    public string? ErrorCode { get; set; }

    public bool UpstreamFailed { get; set; }

    public int? UpstreamStatus { get; set; }

    /// <summary>The rate limiter's decision, for the RateLimit headers (also on error responses).</summary>
    public RateLimitDecision? RateLimit { get; set; }

    /// <summary>Rate limits the key provider checked while verifying the key (Unkey), merged into the RateLimit headers.</summary>
    public IReadOnlyList<ApiKeyRateLimit>? ProviderRateLimits { get; set; }

    /// <summary>The key provider's id of the verification call (Unkey's <c>req_…</c>), for logs and support.</summary>
    public string? KeyProviderRequestId { get; set; }

    /// <summary>Released when the request ends (frees concurrency slots, settles tokens).</summary>
    public RateLimitLease? RateLimitLease { get; set; }

    /// <summary>Notes where a routed request is going (internal ids, for logs and usage).</summary>
    public void Routed(string pool, string routerId, int estimatedPromptTokens)
    {
        Pool = pool;
        RouterId ??= routerId; // a stream's slot (taken in the call, maybe before a speculative decision) may have moved it
        EstimatedPromptTokens = estimatedPromptTokens;
    }

    /// <summary>Notes that the request's start is in <paramref name="journal"/>.</summary>
    public void Journaled(IUsageJournal journal, string requestId)
    {
        _journal = journal;
        _journaledRequestId = requestId;
    }

    /// <summary>Notes what a stream has sent so far; the journal keeps it (throttled) for a crash.</summary>
    public void Streamed(int completionChars)
    {
        CompletionChars = completionChars;
        if (_journal is not null && _journaledRequestId is not null)
        {
            _journal.Streamed(_journaledRequestId, (completionChars + 3) / 4);
        }
    }

    public static GatewayRequestState Of(HttpContext context)
    {
        if (context.Items.TryGetValue(ItemKey, out var existing) && existing is GatewayRequestState state)
        {
            return state;
        }

        state = new GatewayRequestState();
        context.Items[ItemKey] = state;
        return state;
    }

    public UsageRecord ToRecord(HttpContext context, string requestId, DateTimeOffset at, int statusCode, TimeSpan elapsed)
    {
        var (prompt, completion, estimated) = Tokens
            ?? (Model is null ? (0, 0, false) : (EstimatedPromptTokens, (CompletionChars + 3) / 4, true));
        var outcome = statusCode == StatusCodes.Status499ClientClosedRequest ? UsageOutcome.Cancelled
            : UpstreamFailed ? UsageOutcome.UpstreamFailed
            : statusCode is >= 200 and < 300 && ErrorCode is null ? UsageOutcome.Succeeded
            : UsageOutcome.Rejected;
        if (outcome == UsageOutcome.Rejected)
        {
            (prompt, completion, estimated) = (0, 0, false); // nothing reached a router: nothing to bill
        }

        var usage = new UsageEvent
        {
            RequestId = requestId,
            OccurredAt = at,
            OrgId = Principal?.OrgId,
            KeyId = Principal?.KeyId,
            Model = Model,
            Pool = Pool,
            Outcome = outcome,
            PromptTokens = prompt,
            CompletionTokens = completion,
            TokensEstimated = estimated,
            Stream = Stream,
        };
        var log = new RequestLogEntry
        {
            RequestId = requestId,
            OccurredAt = at,
            OrgId = Principal?.OrgId,
            KeyId = Principal?.KeyId,
            Method = context.Request.Method,
            Path = context.Request.Path.Value ?? "",
            Model = Model,
            StatusCode = statusCode,
            ErrorCode = ErrorCode,
            LatencyMs = (int)Math.Min(int.MaxValue, elapsed.TotalMilliseconds),
            RouterId = RouterId,
            UpstreamStatus = UpstreamStatus,
        };
        return new UsageRecord(usage, log);
    }
}
