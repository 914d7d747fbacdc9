namespace Cortensor.Portal.Keys;

/// <summary>
/// Issues, verifies, lists and revokes Portal API keys. Implementations: local (store-backed) now;
/// Redis (milestone 2) and Unkey (milestone 1) behind the same contract.
/// </summary>
public interface IApiKeyProvider
{
    /// <summary>
    /// Verifies a presented key. A key that fails the format or checksum check returns
    /// <see cref="ApiKeyVerificationStatus.Malformed"/> without any I/O.
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
