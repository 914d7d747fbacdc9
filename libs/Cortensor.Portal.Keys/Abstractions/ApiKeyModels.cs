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
}

/// <summary>Result of <see cref="IApiKeyProvider.VerifyAsync"/>. <see cref="Principal"/> is set only when valid.</summary>
public readonly record struct ApiKeyVerification(ApiKeyVerificationStatus Status, ApiKeyPrincipal? Principal)
{
    public bool IsValid => Status == ApiKeyVerificationStatus.Valid && Principal is not null;

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
