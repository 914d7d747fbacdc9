namespace Cortensor.Portal.Keys;

/// <summary>
/// Issues, verifies, lists and revokes Portal API keys. Implementations: local (store-backed), Redis (a shared
/// verification cache over the store) and Unkey (package <c>Cortensor.Portal.Unkey</c>), all behind the same contract
/// and the same contract tests.
/// </summary>
public interface IApiKeyProvider
{
    /// <summary>
    /// Verifies a presented key. A key that fails the provider's format check returns
    /// <see cref="ApiKeyVerificationStatus.Malformed"/> without any I/O (the local and Redis providers check prefix,
    /// length, alphabet and checksum; the Unkey provider checks prefix, length and alphabet, as Unkey keys carry no
    /// checksum of ours). Remote providers may also answer <see cref="ApiKeyVerificationStatus.Forbidden"/>,
    /// <see cref="ApiKeyVerificationStatus.RateLimited"/>, <see cref="ApiKeyVerificationStatus.UsageExceeded"/> or
    /// <see cref="ApiKeyVerificationStatus.Unavailable"/>.
    /// </summary>
    ValueTask<ApiKeyVerification> VerifyAsync(string presentedKey, CancellationToken cancellationToken = default);

    Task<IssuedApiKey> IssueAsync(IssueApiKeyRequest request, CancellationToken cancellationToken = default);

    /// <summary>Revokes a key of <paramref name="orgId"/>. Returns false when the org has no such key (cross-org ids are "not found").</summary>
    Task<bool> RevokeAsync(string orgId, string keyId, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default);
}

/// <summary>Durable home of key records; the local provider sits on top of it.</summary>
public interface IApiKeyStore
{
    ValueTask<ApiKeyRecord?> FindByHashAsync(ReadOnlyMemory<byte> hash, CancellationToken cancellationToken = default);

    Task AddAsync(ApiKeyRecord record, CancellationToken cancellationToken = default);

    /// <summary>Sets RevokedAt if the key exists in <paramref name="orgId"/> and is not revoked yet. Returns false when not found.</summary>
    Task<bool> RevokeAsync(string orgId, string keyId, DateTimeOffset revokedAt, CancellationToken cancellationToken = default);

    Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default);
}
