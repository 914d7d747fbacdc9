using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Gateway.Errors;

/// <summary>
/// A failure the gateway reports to the client, in OpenAI's error shape
/// (<c>{"error":{"message","type","param","code","request_id"}}</c>) with the status code OpenAI clients expect.
/// </summary>
public sealed class GatewayError
{
    private GatewayError(int statusCode, string type, string? code, string? param, string message)
    {
        StatusCode = statusCode;
        Type = type;
        Code = code;
        Param = param;
        Message = message;
    }

    public int StatusCode { get; }

    public string Type { get; }

    public string? Code { get; }

    public string? Param { get; }

    public string Message { get; }

    /// <summary>Seconds for <c>Retry-After</c> (also sent as <c>retry-after-ms</c>), when the client should come back.</summary>
    public int? RetryAfterSeconds { get; private init; }

    /// <summary>Precise <c>retry-after-ms</c> when known (else RetryAfterSeconds × 1000).</summary>
    public long? RetryAfterMilliseconds { get; private init; }

    /// <summary>Sent as <c>x-should-retry</c> when set (false for a request that can never pass as it is).</summary>
    public bool? ShouldRetry { get; private init; }

    public static GatewayError MissingApiKey() => new(
        StatusCodes.Status401Unauthorized, "invalid_request_error", null, null,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");

    public static GatewayError NotBearer() => new(
        StatusCodes.Status401Unauthorized, "invalid_request_error", null, null,
        "Missing bearer authentication in header. Use Authorization: Bearer YOUR_KEY.");

    public static GatewayError InvalidApiKey(string maskedKey) => new(
        StatusCodes.Status401Unauthorized, "invalid_request_error", "invalid_api_key", null,
        $"Incorrect API key provided: {maskedKey}. You can find your API keys in the Portal.");

    public static GatewayError RevokedApiKey(string displayPrefix) => new(
        StatusCodes.Status401Unauthorized, "invalid_request_error", "api_key_revoked", null,
        $"The API key {displayPrefix}… has been revoked. Create a new key in the Portal.");

    public static GatewayError ExpiredApiKey(string displayPrefix) => new(
        StatusCodes.Status401Unauthorized, "invalid_request_error", "api_key_expired", null,
        $"The API key {displayPrefix}… has expired. Create a new key in the Portal.");

    /// <summary>401 for a key its provider reports disabled (suspended, may be enabled again).</summary>
    public static GatewayError DisabledApiKey(string displayPrefix) => new(
        StatusCodes.Status401Unauthorized, "invalid_request_error", "api_key_disabled", null,
        $"The API key {displayPrefix}… is disabled. Enable it or create a new key in the Portal.");

    /// <summary>
    /// 403 for a valid key the provider does not let through here (an IP allow-list, a disabled workspace, or a
    /// missing permission). <paramref name="code"/> is <c>api_key_forbidden</c> or <c>insufficient_permissions</c>.
    /// </summary>
    public static GatewayError ApiKeyForbidden(string code, string message) => new(
        StatusCodes.Status403Forbidden, "invalid_request_error", code, null, message);

    /// <summary>
    /// 429 <c>insufficient_quota</c> (OpenAI's shape for a spent quota) with <c>x-should-retry: false</c> and no
    /// <c>Retry-After</c>: the request cannot pass until the key's allowance is topped up.
    /// </summary>
    public static GatewayError InsufficientQuota() => new(
        StatusCodes.Status429TooManyRequests, "insufficient_quota", "insufficient_quota", null,
        "You exceeded your current quota, please check your plan and billing details.")
    {
        ShouldRetry = false,
    };

    /// <summary>503 when the key provider cannot be reached and the key was not verified recently enough to be trusted from memory.</summary>
    public static GatewayError KeyVerificationUnavailable(TimeSpan retryAfter) => new(
        StatusCodes.Status503ServiceUnavailable, "service_unavailable_error", "key_verification_unavailable", null,
        "Your API key cannot be verified right now. Please retry shortly.")
    {
        RetryAfterSeconds = (int)Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds)),
        RetryAfterMilliseconds = (long)Math.Max(1, Math.Ceiling(retryAfter.TotalMilliseconds)),
    };

    public static GatewayError ModelNotFound(string model) => new(
        StatusCodes.Status404NotFound, "invalid_request_error", "model_not_found", "model",
        $"The model `{Echo(model)}` does not exist or you do not have access to it.");

    public static GatewayError ModelNotAllowed(string model) => new(
        StatusCodes.Status403Forbidden, "invalid_request_error", "model_not_allowed", "model",
        $"This API key is not allowed to use the model `{Echo(model)}`.");

    public static GatewayError InvalidJson(string? param, string detail) => new(
        StatusCodes.Status400BadRequest, "invalid_request_error", "invalid_json", param is null ? null : Echo(param),
        $"We could not parse the JSON body of your request. ({detail})");

    /// <summary>400 for a string that is not Unicode text (bytes that are not UTF-8, or an unpaired surrogate escape such as <c>\ud800</c>).</summary>
    public static GatewayError InvalidText(string? param) => InvalidJson(param, param is null
        ? "The body contains a string that is not valid UTF-8 text (invalid bytes or an unpaired surrogate escape)."
        : $"The value of '{Echo(param)}' is not valid UTF-8 text (invalid bytes or an unpaired surrogate escape).");

    /// <summary>415 when the body is not declared as UTF-8 JSON (<c>application/json</c> or <c>application/*+json</c>, charset absent or utf-8).</summary>
    public static GatewayError UnsupportedMediaType(string? contentType) => new(
        StatusCodes.Status415UnsupportedMediaType, "invalid_request_error", "unsupported_media_type", null,
        string.IsNullOrEmpty(contentType)
            ? "The request has no Content-Type. Send the body as JSON with 'Content-Type: application/json'."
            : $"Unsupported Content-Type '{Echo(contentType)}'. Send the body as UTF-8 JSON with 'Content-Type: application/json'.");

    /// <summary>408 when the client sent the body slower than the server's minimum data rate: its fault, not ours.</summary>
    public static GatewayError RequestBodyTimeout() => new(
        StatusCodes.Status408RequestTimeout, "invalid_request_error", "request_timeout", null,
        "The request body arrived too slowly. Send the whole body promptly and retry.");

    /// <summary>The server refused the body while it was read (cut short, bad chunked framing, …), with the server's 4xx status.</summary>
    public static GatewayError UnreadableBody(int statusCode) => new(
        statusCode is >= 400 and < 500 ? statusCode : StatusCodes.Status400BadRequest, "invalid_request_error", "invalid_request_body", null,
        "The request body could not be read: it ended early or its framing was malformed.");

    public static GatewayError InvalidParameter(string param, string message, string code = "invalid_value") => new(
        StatusCodes.Status400BadRequest, "invalid_request_error", code, param, message);

    public static GatewayError MissingParameter(string param) => new(
        StatusCodes.Status400BadRequest, "invalid_request_error", "missing_required_parameter", param,
        $"Missing required parameter: '{param}'.");

    public static GatewayError Unsupported(string param, string message) => new(
        StatusCodes.Status400BadRequest, "invalid_request_error", "unsupported_parameter", param, message);

    public static GatewayError ContextLengthExceeded(int limit, int estimated) => new(
        StatusCodes.Status400BadRequest, "invalid_request_error", "context_length_exceeded", "messages",
        $"This model's maximum context length is {limit} tokens. However, your messages resulted in about {estimated} tokens. Please reduce the length of the messages.");

    public static GatewayError BodyTooLarge(long limitBytes) => new(
        StatusCodes.Status413PayloadTooLarge, "invalid_request_error", "request_too_large", null,
        $"The request body is larger than the limit of {limitBytes} bytes.");

    public static GatewayError NotFoundRoute(string path) => new(
        StatusCodes.Status404NotFound, "invalid_request_error", "unknown_url", null,
        $"Unknown request URL: {Echo(path)}. Please check the URL for typos, and that the base URL ends in /v1.");

    public static GatewayError RouterUnavailable(int retryAfterSeconds) => new(
        StatusCodes.Status503ServiceUnavailable, "service_unavailable_error", "model_unavailable", null,
        "The model is temporarily unavailable. Please retry shortly.")
    { RetryAfterSeconds = retryAfterSeconds };

    /// <summary>503: every (router, session) of the model's pool is carrying another stream and none came free in time.</summary>
    public static GatewayError StreamsBusy(int retryAfterSeconds) => new(
        StatusCodes.Status503ServiceUnavailable, "service_unavailable_error", "model_busy", null,
        "The model is serving as many streams as it can. Please retry shortly, or send the request without streaming.")
    { RetryAfterSeconds = retryAfterSeconds };

    /// <summary>429 from a request or token rate limit (OpenAI's shape: type <c>requests</c> or <c>tokens</c>, code <c>rate_limit_exceeded</c>).</summary>
    public static GatewayError RateLimited(string type, string message, TimeSpan retryAfter, bool canEverPass = true) => new(
        StatusCodes.Status429TooManyRequests, type, "rate_limit_exceeded", null, message)
    {
        RetryAfterSeconds = (int)Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds)),
        RetryAfterMilliseconds = (long)Math.Max(1, Math.Ceiling(retryAfter.TotalMilliseconds)),
        ShouldRetry = canEverPass ? null : false,
    };

    /// <summary>503 when the shared limiter is unreachable and the limit is configured to fail closed.</summary>
    public static GatewayError RateLimiterUnavailable(TimeSpan retryAfter) => new(
        StatusCodes.Status503ServiceUnavailable, "service_unavailable_error", "rate_limiter_unavailable", null,
        "Rate limits cannot be checked right now, so the request was not admitted. Please retry shortly.")
    {
        RetryAfterSeconds = (int)Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds)),
    };

    /// <summary>503 when the model access policies cannot be read and none are cached.</summary>
    public static GatewayError EntitlementsUnavailable() => new(
        StatusCodes.Status503ServiceUnavailable, "service_unavailable_error", "entitlements_unavailable", null,
        "Your access to this model cannot be checked right now. Please retry shortly.")
    {
        RetryAfterSeconds = 1,
    };

    public static GatewayError ModelNotAllowedByPolicy(string model) => new(
        StatusCodes.Status403Forbidden, "invalid_request_error", "model_not_allowed", "model",
        $"Your organization or API key is not allowed to use the model `{Echo(model)}`.");

    public static GatewayError RouterTimeout() => new(
        StatusCodes.Status504GatewayTimeout, "server_error", "upstream_timeout", null,
        "The model did not answer in time. Please retry, or ask for fewer tokens.");

    public static GatewayError RouterFailed() => new(
        StatusCodes.Status502BadGateway, "server_error", "upstream_error", null,
        "The model service returned an error. Please retry.");

    /// <summary>The router answered nothing (no text, no finish reason): a router failure, never an empty success.</summary>
    public static GatewayError RouterEmptyAnswer() => new(
        StatusCodes.Status502BadGateway, "server_error", "upstream_error", null,
        "The model service returned an empty answer. Please retry.");

    /// <summary>The most of a client's text an error message repeats, so a huge value is not reflected whole.</summary>
    internal const int MaxEchoLength = 256;

    /// <summary>Client text for an error message: at most <see cref="MaxEchoLength"/> characters, then "…".</summary>
    internal static string Echo(string value)
    {
        if (value.Length <= MaxEchoLength)
        {
            return value;
        }

        var keep = char.IsHighSurrogate(value[MaxEchoLength - 1]) ? MaxEchoLength - 1 : MaxEchoLength; // never half a pair
        return string.Concat(value.AsSpan(0, keep), "…");
    }

    public static GatewayError Internal() => new(
        StatusCodes.Status500InternalServerError, "server_error", null, null,
        "The server had an error while processing your request. Sorry about that!");
}

/// <summary>Thrown inside the pipeline to stop a request with a <see cref="GatewayError"/>.</summary>
public sealed class GatewayException : Exception
{
    public GatewayException()
        : this(GatewayError.Internal())
    {
    }

    public GatewayException(string message)
        : this(GatewayError.Internal(), message)
    {
    }

    public GatewayException(string message, Exception innerException)
        : base(message, innerException)
    {
        Error = GatewayError.Internal();
    }

    public GatewayException(GatewayError error, string? message = null)
        : base(message ?? error?.Message)
    {
        ArgumentNullException.ThrowIfNull(error);
        Error = error;
    }

    public GatewayError Error { get; }
}
