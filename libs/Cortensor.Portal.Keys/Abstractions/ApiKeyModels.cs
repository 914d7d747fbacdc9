namespace Cortensor.Portal.Keys;

/// <summary>Which family a key belongs to: live keys bill, test keys are for development.</summary>
public enum ApiKeyEnvironment
{
    Live,
    Test,
}

/// <summary>The stored form of an API key. The secret itself is never stored, only its SHA-256.</summary>
public sealed record ApiKeyRecord
{
    /// <summary>Stable public identifier (for example <c>key_…</c>), safe to show and log; not derived from the secret.</summary>
    public required string KeyId { get; init; }

    public required string OrgId { get; init; }

    public string Name { get; init; } = "";

    public required ApiKeyEnvironment Environment { get; init; }

    /// <summary>SHA-256 of the full key string (32 bytes).</summary>
    public required byte[] Hash { get; init; }

    /// <summary>Short prefix shown in lists, for example <c>pk_test_AbCd1234</c>. Never enough to use the key.</summary>
    public required string DisplayPrefix { get; init; }

    public IReadOnlyList<string> Scopes { get; init; } = [];

    /// <summary>Model aliases this key may call; <see langword="null"/> means every enabled model.</summary>
    public IReadOnlyList<string>? AllowedModels { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    public DateTimeOffset? RevokedAt { get; init; }
}

/// <summary>Who is calling: what the rest of the pipeline knows about a verified key.</summary>
public sealed record ApiKeyPrincipal
{
    public required string KeyId { get; init; }

    public required string OrgId { get; init; }

    public required ApiKeyEnvironment Environment { get; init; }

    public required string DisplayPrefix { get; init; }

    public IReadOnlyList<string> Scopes { get; init; } = [];

    /// <summary>Model aliases this key may call; <see langword="null"/> means every enabled model.</summary>
    public IReadOnlyList<string>? AllowedModels { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>
    /// The plan the key provider reports for this key (for example Unkey's <c>meta.plan</c>), or
    /// <see langword="null"/> when the provider does not know it (the local providers: the plan comes from the org's
    /// subscription).
    /// </summary>
    public string? PlanId { get; init; }

    /// <summary>Whether the key's policy lets it call <paramref name="modelAlias"/> (case-insensitive).</summary>
    public bool IsModelAllowed(string modelAlias)
    {
        if (AllowedModels is null)
        {
            return true;
        }

        foreach (var allowed in AllowedModels)
        {
            if (string.Equals(allowed, modelAlias, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    public static ApiKeyPrincipal FromRecord(ApiKeyRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return new ApiKeyPrincipal
        {
            KeyId = record.KeyId,
            OrgId = record.OrgId,
            Environment = record.Environment,
            DisplayPrefix = record.DisplayPrefix,
            Scopes = record.Scopes,
            AllowedModels = record.AllowedModels,
            ExpiresAt = record.ExpiresAt,
        };
    }
}

/// <summary>Outcome of presenting a key.</summary>
public enum ApiKeyVerificationStatus
{
    Valid,

    /// <summary>Wrong prefix, length, alphabet or checksum. Decided with no I/O.</summary>
    Malformed,

    /// <summary>Well-formed but no such key.</summary>
    NotFound,

    Revoked,

    Expired,

    /// <summary>The key exists but is disabled (suspended) at the provider; it may be enabled again. Answered as 401.</summary>
    Disabled,

    /// <summary>
    /// The key is valid but may not be used here (for example an IP allow-list or a missing permission at the
    /// provider). Answered as 403. <see cref="ApiKeyVerification.ProviderCode"/> says which.
    /// </summary>
    Forbidden,

    /// <summary>
    /// A rate limit the provider checks while verifying refused the request. Answered as 429 with
    /// <see cref="ApiKeyVerification.RetryAfter"/>.
    /// </summary>
    RateLimited,

    /// <summary>The key's usage allowance (credits) is spent. Answered as 429 <c>insufficient_quota</c>, not retryable.</summary>
    UsageExceeded,

    /// <summary>
    /// The provider could not be reached (or was too slow) and the key was not verified recently enough to be served
    /// from memory. Answered as 503 with <see cref="ApiKeyVerification.RetryAfter"/>.
    /// </summary>
    Unavailable,
}

/// <summary>
/// A rate limit that the key provider checked while verifying a key (for example a named Unkey rate limit), so the
/// gateway can report it in its <c>RateLimit</c> / <c>RateLimit-Policy</c> headers next to its own limits.
/// </summary>
/// <param name="Name">Policy name as it appears in the headers, for example <c>unkey-requests</c>.</param>
/// <param name="Limit">Units allowed per <paramref name="Window"/>.</param>
/// <param name="Remaining">Units left after this request (0 when it refused).</param>
/// <param name="Window">The limit's window.</param>
/// <param name="Reset">Time from the verification until the window resets.</param>
/// <param name="Exceeded">Whether this limit refused the request.</param>
public sealed record ApiKeyRateLimit(string Name, long Limit, long Remaining, TimeSpan Window, TimeSpan Reset, bool Exceeded);

/// <summary>Result of <see cref="IApiKeyProvider.VerifyAsync"/>. <see cref="Principal"/> is set only when valid.</summary>
public readonly record struct ApiKeyVerification(ApiKeyVerificationStatus Status, ApiKeyPrincipal? Principal)
{
    private readonly IReadOnlyList<ApiKeyRateLimit>? _rateLimits;

    public bool IsValid => Status == ApiKeyVerificationStatus.Valid && Principal is not null;

    /// <summary>
    /// When the caller may try again, for <see cref="ApiKeyVerificationStatus.RateLimited"/> (from the limit's reset
    /// time) and <see cref="ApiKeyVerificationStatus.Unavailable"/>; <see langword="null"/> otherwise.
    /// </summary>
    public TimeSpan? RetryAfter { get; init; }

    /// <summary>Rate limits the provider checked while verifying (empty for providers that check none).</summary>
    public IReadOnlyList<ApiKeyRateLimit> RateLimits
    {
        get => _rateLimits ?? [];
        init => _rateLimits = value;
    }

    /// <summary>The provider's own outcome code (for example Unkey's <c>INSUFFICIENT_PERMISSIONS</c>), for logs and messages.</summary>
    public string? ProviderCode { get; init; }

    /// <summary>The provider's id of the verification call (for example Unkey's <c>req_…</c>), kept in logs for support.</summary>
    public string? ProviderRequestId { get; init; }

    /// <summary>
    /// True when the provider could not be reached and the principal was served from a recent successful
    /// verification instead (serve-stale).
    /// </summary>
    public bool IsStale { get; init; }

    public static ApiKeyVerification Valid(ApiKeyPrincipal principal) => new(ApiKeyVerificationStatus.Valid, principal);

    public static ApiKeyVerification Failed(ApiKeyVerificationStatus status) => new(status, null);
}

/// <summary>What to issue.</summary>
public sealed record IssueApiKeyRequest
{
    public required string OrgId { get; init; }

    public string Name { get; init; } = "";

    public ApiKeyEnvironment Environment { get; init; } = ApiKeyEnvironment.Test;

    public IReadOnlyList<string> Scopes { get; init; } = [];

    public IReadOnlyList<string>? AllowedModels { get; init; }

    public DateTimeOffset? ExpiresAt { get; init; }
}

/// <summary>A newly issued key. <see cref="Secret"/> is shown once and never again.</summary>
public sealed record IssuedApiKey(string Secret, ApiKeyRecord Record);
