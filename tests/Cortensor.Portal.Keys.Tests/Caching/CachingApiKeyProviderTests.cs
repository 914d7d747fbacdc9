using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Keys.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Keys.Tests.Caching;

public sealed class CachingApiKeyProviderTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    private readonly CountingApiKeyStore _store = new();
    private readonly LocalApiKeyProvider _local;

    public CachingApiKeyProviderTests()
    {
        _local = new LocalApiKeyProvider(_store, ApiKeyFormat.Default, _time, NullLogger<LocalApiKeyProvider>.Instance);
    }

    private CachingApiKeyProvider Create(ApiKeyCacheOptions? options = null)
        => new(_local, ApiKeyFormat.Default, _time, Options.Create(options ?? new ApiKeyCacheOptions()));

    [Fact]
    public async Task Verify_ValidKeyTwiceWithinTtl_ReadsStoreOnce()
    {
        var cache = Create();
        var issued = await cache.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });

        Assert.True((await cache.VerifyAsync(issued.Secret)).IsValid);
        Assert.True((await cache.VerifyAsync(issued.Secret)).IsValid);

        Assert.Equal(1, _store.FindCalls);
    }

    [Fact]
    public async Task Verify_AfterTtl_ReadsStoreAgain()
    {
        var cache = Create();
        var issued = await cache.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        await cache.VerifyAsync(issued.Secret);

        _time.Advance(TimeSpan.FromSeconds(1.1));
        await cache.VerifyAsync(issued.Secret);

        Assert.Equal(2, _store.FindCalls);
    }

    [Fact]
    public async Task Revoke_ThroughProvider_TakesEffectAtOnce()
    {
        var cache = Create();
        var issued = await cache.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        Assert.True((await cache.VerifyAsync(issued.Secret)).IsValid);

        Assert.True(await cache.RevokeAsync("org_a", issued.Record.KeyId));

        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await cache.VerifyAsync(issued.Secret)).Status);
    }

    [Fact]
    public async Task Revoke_ElsewhereInTheStore_TakesEffectWithinTtl()
    {
        var cache = Create();
        var issued = await cache.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        Assert.True((await cache.VerifyAsync(issued.Secret)).IsValid);

        // Another replica revokes straight in the shared store.
        Assert.True(await _store.RevokeAsync("org_a", issued.Record.KeyId, _time.GetUtcNow()));
        Assert.True((await cache.VerifyAsync(issued.Secret)).IsValid); // still cached
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await cache.VerifyAsync(issued.Secret)).Status);
    }

    [Fact]
    public async Task Verify_KeyExpiresWhileCached_IsExpiredAtOnce()
    {
        var cache = Create(new ApiKeyCacheOptions { ValidTtl = TimeSpan.FromMinutes(10) });
        var issued = await cache.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", ExpiresAt = _time.GetUtcNow().AddSeconds(30) });
        Assert.True((await cache.VerifyAsync(issued.Secret)).IsValid);

        _time.Advance(TimeSpan.FromSeconds(30));

        Assert.Equal(ApiKeyVerificationStatus.Expired, (await cache.VerifyAsync(issued.Secret)).Status);
        Assert.Equal(1, _store.FindCalls);
    }

    [Fact]
    public async Task Verify_UnknownKey_IsRememberedBriefly()
    {
        var cache = Create();
        var stranger = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Live);

        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await cache.VerifyAsync(stranger)).Status);
        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await cache.VerifyAsync(stranger)).Status);

        Assert.Equal(1, _store.FindCalls);
    }

    [Fact]
    public async Task Verify_MalformedKey_NoStoreCallAndNothingCached()
    {
        var cache = Create();

        Assert.Equal(ApiKeyVerificationStatus.Malformed, (await cache.VerifyAsync("pk_test_nope")).Status);

        Assert.Equal(0, _store.TotalCalls);
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public async Task Verify_TtlZero_AlwaysAsksStore()
    {
        var cache = Create(new ApiKeyCacheOptions { ValidTtl = TimeSpan.Zero });
        var issued = await cache.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });

        await cache.VerifyAsync(issued.Secret);
        await cache.VerifyAsync(issued.Secret);

        Assert.Equal(2, _store.FindCalls);
    }

    [Fact]
    public async Task Verify_ManyKeys_CacheStaysWithinMaxEntries()
    {
        var cache = Create(new ApiKeyCacheOptions { MaxEntries = 3 });
        for (var i = 0; i < 10; i++)
        {
            await cache.VerifyAsync(ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test));
        }

        Assert.InRange(cache.Count, 1, 3);
    }

    [Fact]
    public async Task Revoke_OnOneReplica_IsPushedToAnotherReplicaSharingTheFeed()
    {
        var feed = new InProcessHotPathChangeFeed();
        using var replicaA = new CachingApiKeyProvider(_local, ApiKeyFormat.Default, _time, Options.Create(new ApiKeyCacheOptions { ValidTtl = TimeSpan.FromMinutes(5) }), feed);
        using var replicaB = new CachingApiKeyProvider(_local, ApiKeyFormat.Default, _time, Options.Create(new ApiKeyCacheOptions { ValidTtl = TimeSpan.FromMinutes(5) }), feed);
        var issued = await replicaA.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        Assert.True((await replicaB.VerifyAsync(issued.Secret)).IsValid); // cached on B for 5 minutes

        Assert.True(await replicaA.RevokeAsync("org_a", issued.Record.KeyId));

        // No clock movement: B forgot the key because the revocation was pushed, not because a TTL ran out.
        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await replicaB.VerifyAsync(issued.Secret)).Status);
    }

    [Fact]
    public async Task ChangeFeed_Everything_ClearsTheCache_AndDisposeUnsubscribes()
    {
        var feed = new InProcessHotPathChangeFeed();
        var cache = new CachingApiKeyProvider(_local, ApiKeyFormat.Default, _time, Options.Create(new ApiKeyCacheOptions()), feed);
        var issued = await cache.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        await cache.VerifyAsync(issued.Secret);
        Assert.Equal(1, cache.Count);

        await feed.PublishAsync(HotPathChange.Everything);
        Assert.Equal(0, cache.Count);

        await cache.VerifyAsync(issued.Secret);
        cache.Dispose();
        await feed.PublishAsync(HotPathChange.Everything);
        Assert.Equal(1, cache.Count); // no longer subscribed
    }

    [Fact]
    public async Task Revoke_UnknownKey_PublishesNothing()
    {
        var feed = new InProcessHotPathChangeFeed();
        var seen = new List<HotPathChange>();
        using var subscription = feed.Subscribe(seen.Add);
        using var cache = new CachingApiKeyProvider(_local, ApiKeyFormat.Default, _time, Options.Create(new ApiKeyCacheOptions()), feed);

        Assert.False(await cache.RevokeAsync("org_a", "key_missing"));

        Assert.Empty(seen);
    }
}
