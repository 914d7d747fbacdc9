using Cortensor.Portal.Keys.Stores;

namespace Cortensor.Portal.Keys.Tests.TestDoubles;

/// <summary>An <see cref="InMemoryApiKeyStore"/> that counts every call, to prove when the store is not touched.</summary>
internal sealed class CountingApiKeyStore : IApiKeyStore
{
    private readonly InMemoryApiKeyStore _inner = new();
    private int _findCalls;
    private int _totalCalls;

    public int FindCalls => Volatile.Read(ref _findCalls);

    public int TotalCalls => Volatile.Read(ref _totalCalls);

    public ValueTask<ApiKeyRecord?> FindByHashAsync(ReadOnlyMemory<byte> hash, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _findCalls);
        Interlocked.Increment(ref _totalCalls);
        return _inner.FindByHashAsync(hash, cancellationToken);
    }

    public Task AddAsync(ApiKeyRecord record, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _totalCalls);
        return _inner.AddAsync(record, cancellationToken);
    }

    public Task<bool> RevokeAsync(string orgId, string keyId, DateTimeOffset revokedAt, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _totalCalls);
        return _inner.RevokeAsync(orgId, keyId, revokedAt, cancellationToken);
    }

    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _totalCalls);
        return _inner.ListAsync(orgId, cancellationToken);
    }
}
