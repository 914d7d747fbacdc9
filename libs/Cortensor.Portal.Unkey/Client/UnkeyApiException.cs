using System.Globalization;
using System.Net;

namespace Cortensor.Portal.Unkey.Client;

/// <summary>
/// Unkey answered a call with an error status (or with a body that is not its v2 envelope). The message carries the
/// status, Unkey's title, detail and error type, and its request id; never the root key or a customer key.
/// </summary>
public sealed class UnkeyApiException : Exception
{
    public UnkeyApiException()
        : this("Unkey call failed.")
    {
    }

    public UnkeyApiException(string message)
        : base(message)
    {
    }

    public UnkeyApiException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <param name="statusCode">The HTTP status.</param>
    /// <param name="error">The parsed <c>error</c> object, when the body had one.</param>
    /// <param name="requestId">Unkey's <c>meta.requestId</c>, when the body had one.</param>
    /// <param name="retryAfter">The <c>Retry-After</c> of a 429, when sent.</param>
    /// <param name="innerException">A parse failure, when the body was not an Unkey envelope.</param>
    public UnkeyApiException(HttpStatusCode statusCode, UnkeyError? error, string? requestId, TimeSpan? retryAfter = null, Exception? innerException = null)
        : base(Describe(statusCode, error, requestId), innerException)
    {
        StatusCode = statusCode;
        Title = error?.Title;
        Detail = error?.Detail;
        Type = error?.Type;
        RequestId = requestId;
        RetryAfter = retryAfter;
        ValidationErrors = error?.Errors ?? [];
    }

    /// <summary>The HTTP status Unkey answered with.</summary>
    public HttpStatusCode StatusCode { get; }

    public string? Title { get; }

    public string? Detail { get; }

    /// <summary>Unkey's error type URL, for example <c>https://unkey.com/docs/errors/unkey/authentication/key_not_found</c>.</summary>
    public string? Type { get; }

    /// <summary>The last two path segments of <see cref="Type"/> (<c>authentication/key_not_found</c>): match on this, not on the URL, whose prefix has changed before.</summary>
    public string? ErrorCode => Type is null ? null : LastSegments(Type, 2);

    /// <summary>Unkey's <c>meta.requestId</c> (<c>req_…</c>), for Unkey support.</summary>
    public string? RequestId { get; }

    /// <summary>The <c>Retry-After</c> of a 429 (Unkey's workspace rate limit), when sent.</summary>
    public TimeSpan? RetryAfter { get; }

    /// <summary>Schema validation failures of a 400.</summary>
    public IReadOnlyList<UnkeyValidationError> ValidationErrors { get; } = [];

    /// <summary>Whether the failure is Unkey's (5xx) rather than the request's.</summary>
    public bool IsServerError => (int)StatusCode >= 500;

    private static string Describe(HttpStatusCode statusCode, UnkeyError? error, string? requestId)
        => string.Create(
            CultureInfo.InvariantCulture,
            $"Unkey answered {(int)statusCode} {error?.Title ?? statusCode.ToString()}: {error?.Detail ?? "(no error body)"} (type {(error?.Type is { } type ? LastSegments(type, 2) : "none")}, request {requestId ?? "unknown"}).");

    private static string LastSegments(string type, int count)
    {
        var path = Uri.TryCreate(type, UriKind.Absolute, out var uri) ? uri.AbsolutePath : type;
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length <= count ? string.Join('/', parts) : string.Join('/', parts[^count..]);
    }
}
