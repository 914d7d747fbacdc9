using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>One concrete place to send a completion: a router (and for Cortensor routers, a session on it).</summary>
public sealed record RouterTarget
{
    public required string RouterId { get; init; }

    public required Uri BaseUrl { get; init; }

    /// <summary>Router bearer key; never leaves the gateway towards customers and is never logged.</summary>
    public string? ApiKey { get; init; }

    public RouterProtocol Protocol { get; init; } = RouterProtocol.Cortensor;

    public string ApiVersion { get; init; } = "v1";

    public long? SessionId { get; init; }

    /// <summary>The completion URL form a Cortensor router is called with (exactly one; a 404 is not retried on the other).</summary>
    public CortensorUrlForm UrlForm { get; init; } = CortensorUrlForm.Path;

    /// <summary>Model name for OpenAI-compatible upstreams.</summary>
    public string? UpstreamModel { get; init; }

    /// <summary>A readable name for logs, without secrets: <c>router-id/session</c>.</summary>
    public override string ToString() => SessionId is { } sid ? $"{RouterId}/{sid}" : RouterId;
}

/// <summary>A completion as the gateway asks a router for it.</summary>
public sealed record RouterCompletionRequest
{
    /// <summary>The flattened prompt (Cortensor routers, and <c>/v1/completions</c> on OpenAI-compatible upstreams).</summary>
    public required string Prompt { get; init; }

    /// <summary>The chat messages; OpenAI-compatible upstreams get these as they are instead of <see cref="Prompt"/>.</summary>
    public IReadOnlyList<PromptMessage>? Messages { get; init; }

    public PromptFormat PromptFormat { get; init; } = PromptFormat.Plain;

    /// <summary>Router <c>prompt_type</c> (1 = raw, the caller built the template).</summary>
    public int PromptType { get; init; }

    public required int MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? TopK { get; init; }

    public double? PresencePenalty { get; init; }

    public double? FrequencyPenalty { get; init; }

    public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>Our request id; sent to Cortensor routers as <c>client_reference</c>.</summary>
    public required string ClientReference { get; init; }

    /// <summary>Router-side task timeout (<c>timeout</c>); the router ends the task (and should answer) after it.</summary>
    public int TaskTimeoutSeconds { get; init; } = 120;

    /// <summary>Router <c>precommit_timeout</c> (the miners' precommit phase); sent only when set.</summary>
    public int? PrecommitTimeoutSeconds { get; init; }

    /// <summary>
    /// HTTP timeout for the whole call = task timeout + precommit timeout + this slack, so the router's own timeout
    /// fires (and its answer arrives) first. Hitting it aborts the call but not the router's on-chain task.
    /// </summary>
    public int HttpTimeoutSlackSeconds { get; init; } = 30;

    public TimeSpan HttpTimeout => TimeSpan.FromSeconds(TaskTimeoutSeconds + (PrecommitTimeoutSeconds ?? 0) + HttpTimeoutSlackSeconds);
}

/// <summary>Token counts reported by a router. Routers may leave usage out; then this is null upstream.</summary>
public sealed record RouterUsage(int PromptTokens, int CompletionTokens);

/// <summary>A finished non-stream completion.</summary>
public sealed record RouterCompletion
{
    public required string Text { get; init; }

    /// <summary>The router's finish reason as it sent it (may be null or non-OpenAI).</summary>
    public string? FinishReason { get; init; }

    public RouterUsage? Usage { get; init; }

    public string? TaskId { get; init; }
}

/// <summary>One increment of a streamed completion.</summary>
public readonly record struct RouterStreamChunk(string Text, string? FinishReason = null, RouterUsage? Usage = null);

/// <summary>What went wrong talking to a router; the gateway maps it to a status code.</summary>
public enum RouterFailureKind
{
    /// <summary>Could not connect, or the router said it is busy (429/503): 503 with Retry-After.</summary>
    Unavailable,

    /// <summary>No answer within the HTTP timeout (or a 408/504 from the router): 504.</summary>
    Timeout,

    /// <summary>The router rejected our credentials (401/403): a configuration problem, 502.</summary>
    Unauthorized,

    /// <summary>
    /// The session or route is unknown to the router (404; the URL form is not retried): 502. The gateway takes the
    /// (router, session) member out of selection for a while and fails over.
    /// </summary>
    NotFound,

    /// <summary>Any other error status or an unreadable answer: 502.</summary>
    BadResponse,

    /// <summary>
    /// A success status with no answer: an empty body, no text and no finish reason, or a stream of only
    /// <c>[DONE]</c> or only unreadable data lines (routers send their timeouts this way, installer PR #167). Nothing
    /// reached the client: 502, safe to fail over, nothing billed. An empty text with a finish reason is an answer.
    /// </summary>
    EmptyAnswer,
}

/// <summary>
/// A router call failed. <see cref="Exception.Message"/> is safe to log (no keys, no prompt text) but is
/// not shown to customers as is: it may name the router.
/// </summary>
public sealed class RouterException : Exception
{
    public RouterException()
    {
    }

    public RouterException(string message)
        : base(message)
    {
    }

    public RouterException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public RouterException(RouterFailureKind kind, string message, int? statusCode = null, Exception? innerException = null)
        : base(message, innerException)
    {
        Kind = kind;
        StatusCode = statusCode;
    }

    public RouterFailureKind Kind { get; } = RouterFailureKind.BadResponse;

    /// <summary>The router's HTTP status, when there was one.</summary>
    public int? StatusCode { get; }

    /// <summary>The router's error text (JSON message or plain text), trimmed; may be null.</summary>
    public string? RouterMessage { get; init; }
}

/// <summary>Speaks one router protocol. Registered once per <see cref="RouterProtocol"/>.</summary>
public interface IRouterProtocolClient
{
    RouterProtocol Protocol { get; }

    /// <summary>Non-stream completion. Throws <see cref="RouterException"/> on failure.</summary>
    Task<RouterCompletion> CompleteAsync(RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Streamed completion. The HTTP call starts on the first MoveNextAsync; errors before the first chunk throw
    /// <see cref="RouterException"/>. Disposing the enumerator (or cancelling) aborts the router call.
    /// </summary>
    IAsyncEnumerable<RouterStreamChunk> StreamAsync(RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken);
}
