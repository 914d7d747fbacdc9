using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Redis.Changes;
using Cortensor.Portal.Redis.Keys;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.Keys;

/// <summary>Counts calls to the source of truth; can hand out a chosen secret on issue.</summary>
internal sealed class CountingApiKeyProvider(IApiKeyProvider inner) : IApiKeyProvider
{
    private int _verifications;

    public int Verifications => Volatile.Read(ref _verifications);

    public Func<IssueApiKeyRequest, Task<IssuedApiKey>>? IssueOverride { get; set; }

    public ValueTask<ApiKeyVerification> VerifyAsync(string presentedKey, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _verifications);
        return inner.VerifyAsync(presentedKey, cancellationToken);
    }

    public Task<IssuedApiKey> IssueAsync(IssueApiKeyRequest request, CancellationToken cancellationToken = default)
        => IssueOverride?.Invoke(request) ?? inner.IssueAsync(request, cancellationToken);

    public Task<bool> RevokeAsync(string orgId, string keyId, CancellationToken cancellationToken = default)
        => inner.RevokeAsync(orgId, keyId, cancellationToken);

    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
        => inner.ListAsync(orgId, cancellationToken);
}

/// <summary>
/// One gateway replica's key stack over a shared store: in-process L1 (<see cref="CachingApiKeyProvider"/>) →
/// <see cref="RedisApiKeyProvider"/> (its own multiplexer) → a counting local provider.
/// </summary>
internal sealed class KeyReplica : IDisposable
{
    public KeyReplica(RedisTestScope scope, IApiKeyStore store, TimeProvider time, TimeSpan? l1Ttl = null)
    {
        Connection = scope.Connect();
        Feed = new RedisHotPathChangeFeed(Connection, scope.OptionsWrapper, NullLogger<RedisHotPathChangeFeed>.Instance);
        Inner = new CountingApiKeyProvider(new LocalApiKeyProvider(store, ApiKeyFormat.Default, time, NullLogger<LocalApiKeyProvider>.Instance));
        Redis = new RedisApiKeyProvider(Inner, Connection, Feed, ApiKeyFormat.Default, time, scope.OptionsWrapper, NullLogger<RedisApiKeyProvider>.Instance);
        var ttl = l1Ttl ?? TimeSpan.FromMinutes(5); // long, so only a pushed notice can evict
        L1 = new CachingApiKeyProvider(Redis, ApiKeyFormat.Default, time, Options.Create(new ApiKeyCacheOptions { ValidTtl = ttl, UnknownTtl = ttl }), Feed);
    }

    public ConnectionMultiplexer Connection { get; }

    public RedisHotPathChangeFeed Feed { get; }

    public CountingApiKeyProvider Inner { get; }

    public RedisApiKeyProvider Redis { get; }

    public CachingApiKeyProvider L1 { get; }

    public Task Ready => Feed.Subscription;

    public void Dispose()
    {
        L1.Dispose();
        Redis.Dispose();
        Feed.Dispose();
    }
}
