using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Keys.Local;

/// <summary>
/// An <see cref="IApiKeyProvider"/> over an <see cref="IApiKeyStore"/>: keys are generated and checked with
/// <see cref="ApiKeyFormat"/>, stored as SHA-256 and looked up by hash. Malformed keys are rejected before the store
/// is touched. Logs carry only key ids and display prefixes, never secrets.
/// </summary>
public sealed partial class LocalApiKeyProvider : IApiKeyProvider
{
    /// <summary>Longest accepted <see cref="IssueApiKeyRequest.Name"/>.</summary>
    public const int MaxNameLength = 100;

    private readonly IApiKeyStore _store;
    private readonly ApiKeyFormat _format;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger<LocalApiKeyProvider> _logger;

    public LocalApiKeyProvider(IApiKeyStore store, ApiKeyFormat format, TimeProvider timeProvider, ILogger<LocalApiKeyProvider> logger)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        _store = store;
        _format = format;
        _timeProvider = timeProvider;
        _logger = logger;
    }

    public async ValueTask<ApiKeyVerification> VerifyAsync(string presentedKey, CancellationToken cancellationToken = default)
    {
        // Format and checksum first: garbage never reaches the store.
        if (!_format.TryParse(presentedKey, out var parsed))
        {
            Log.MalformedKeyRejected(_logger);
            return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Malformed);
        }

        var hash = ApiKeyHasher.Hash(presentedKey);
        var record = await _store.FindByHashAsync(hash, cancellationToken).ConfigureAwait(false);

        // The store finds by hash; compare again in constant time in case it matched on less than the full digest.
        if (record is null
            || !ApiKeyHasher.FixedTimeEquals(record.Hash, hash)
            || record.Environment != parsed.Environment)
        {
            Log.KeyNotFound(_logger, parsed.DisplayPrefix);
            return ApiKeyVerification.Failed(ApiKeyVerificationStatus.NotFound);
        }

        if (record.RevokedAt is not null)
        {
            Log.RevokedKeyRejected(_logger, record.KeyId, record.DisplayPrefix);
            return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Revoked);
        }

        if (record.ExpiresAt is { } expiresAt && expiresAt <= _timeProvider.GetUtcNow())
        {
            Log.ExpiredKeyRejected(_logger, record.KeyId, record.DisplayPrefix);
            return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Expired);
        }

        return ApiKeyVerification.Valid(ApiKeyPrincipal.FromRecord(record));
    }

    /// <exception cref="ArgumentException">
    /// The org id is empty, the name is longer than <see cref="MaxNameLength"/>, the environment is unknown,
    /// or the expiry is not in the future.
    /// </exception>
    public async Task<IssuedApiKey> IssueAsync(IssueApiKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var now = _timeProvider.GetUtcNow();
        Validate(request, now);

        var secret = _format.Generate(request.Environment);
        if (!_format.TryParse(secret, out var parsed))
        {
            throw new InvalidOperationException("The generated key failed its own format check.");
        }

        var record = new ApiKeyRecord
        {
            KeyId = ApiKeyIds.NewKeyId(),
            OrgId = request.OrgId,
            Name = request.Name ?? "",
            Environment = request.Environment,
            Hash = ApiKeyHasher.Hash(secret),
            DisplayPrefix = parsed.DisplayPrefix,
            Scopes = [.. request.Scopes ?? []],
            AllowedModels = request.AllowedModels is null ? null : [.. request.AllowedModels],
            CreatedAt = now,
            ExpiresAt = request.ExpiresAt,
        };

        await _store.AddAsync(record, cancellationToken).ConfigureAwait(false);
        Log.KeyIssued(_logger, record.KeyId, record.OrgId, record.DisplayPrefix, record.Environment);
        return new IssuedApiKey(secret, record);
    }

    public async Task<bool> RevokeAsync(string orgId, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orgId);
        ArgumentNullException.ThrowIfNull(keyId);

        var revoked = await _store.RevokeAsync(orgId, keyId, _timeProvider.GetUtcNow(), cancellationToken).ConfigureAwait(false);
        if (revoked)
        {
            Log.KeyRevoked(_logger, keyId, orgId);
        }
        else
        {
            Log.RevokeFoundNoKey(_logger, keyId, orgId);
        }

        return revoked;
    }

    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orgId);
        return _store.ListAsync(orgId, cancellationToken);
    }

    private static void Validate(IssueApiKeyRequest request, DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(request.OrgId))
        {
            throw new ArgumentException("OrgId is required.", nameof(request));
        }

        if (request.Name is { Length: > MaxNameLength })
        {
            throw new ArgumentException($"Name must be at most {MaxNameLength} characters.", nameof(request));
        }

        if (!Enum.IsDefined(request.Environment))
        {
            throw new ArgumentException($"Unknown key environment '{request.Environment}'.", nameof(request));
        }

        if (request.ExpiresAt is { } expiresAt && expiresAt <= now)
        {
            throw new ArgumentException("ExpiresAt must be in the future.", nameof(request));
        }
    }
}
