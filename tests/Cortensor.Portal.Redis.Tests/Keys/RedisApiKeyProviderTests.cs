using System.Diagnostics;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Cortensor.Portal.Keys.Stores;
using Cortensor.Portal.Redis.Keys;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace Cortensor.Portal.Redis.Tests.Keys;

public sealed class RedisApiKeyProviderTests : IDisposable
{
    private readonly List<IDisposable> _disposables = [];
    private readonly InMemoryApiKeyStore _store = new();

    public void Dispose()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
        {
            disposable.Dispose();
        }
    }

    [Fact]
    public async Task Verify_CacheHit_DoesNotAskTheStore_OnAnyReplica()
    {
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var b = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var issued = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1", AllowedModels = ["m1"], Scopes = ["inference"] });

        var first = await a.Redis.VerifyAsync(issued.Secret);
        Assert.True(first.IsValid);
        Assert.Equal(1, a.Inner.Verifications);

        // The write is fire-and-forget: wait until it has landed, then every replica hits Redis.
        await Poll.UntilAsync(async () => await a.Connection.GetDatabase().KeyExistsAsync(a.Redis.GetCacheKey(issued.Record.Hash)), TimeSpan.FromSeconds(1));
        var again = await a.Redis.VerifyAsync(issued.Secret);
        var onB = await b.Redis.VerifyAsync(issued.Secret);

        Assert.Equal(1, a.Inner.Verifications);
        Assert.Equal(0, b.Inner.Verifications);
        Assert.True(again.IsValid);
        Assert.Equal(issued.Record.KeyId, onB.Principal?.KeyId);
        Assert.Equal("org_1", onB.Principal?.OrgId);
        Assert.Equal(["inference"], onB.Principal?.Scopes);
        Assert.Equal(["m1"], onB.Principal?.AllowedModels);
        Assert.Equal(ApiKeyEnvironment.Test, onB.Principal?.Environment);
        Assert.Equal(issued.Record.DisplayPrefix, onB.Principal?.DisplayPrefix);
    }

    [Fact]
    public async Task Verify_CachedEntry_IsTheHashNeverTheKey_WithTheConfiguredTtl()
    {
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var issued = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });

        await a.Redis.VerifyAsync(issued.Secret);

        var db = a.Connection.GetDatabase();
        var cacheKey = scope.Options.KeyPrefix + "key:" + Convert.ToHexStringLower(ApiKeyHasher.Hash(issued.Secret));
        await Poll.UntilAsync(async () => await db.KeyExistsAsync(cacheKey), TimeSpan.FromSeconds(1));
        var value = (string?)await db.StringGetAsync(cacheKey);
        Assert.DoesNotContain(issued.Secret, value, StringComparison.Ordinal);
        Assert.DoesNotContain(issued.Secret[8..20], value, StringComparison.Ordinal);
        Assert.InRange((await db.KeyTimeToLiveAsync(cacheKey))!.Value, TimeSpan.FromSeconds(50), TimeSpan.FromSeconds(60));
    }

    [Fact]
    public async Task Revoke_OnReplicaA_RefusedOnReplicaBWithinOneSecond()
    {
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var b = Track(new KeyReplica(scope, _store, TimeProvider.System));
        await Task.WhenAll(a.Ready, b.Ready);
        var issued = await a.L1.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });
        Assert.True((await b.L1.VerifyAsync(issued.Secret)).IsValid); // now in B's L1 (5 min) and in Redis
        Assert.True((await a.L1.VerifyAsync(issued.Secret)).IsValid);

        Assert.True(await a.L1.RevokeAsync("org_1", issued.Record.KeyId));
        var revokedAt = Stopwatch.StartNew();

        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await a.L1.VerifyAsync(issued.Secret)).Status);
        await Poll.UntilAsync(async () => (await b.L1.VerifyAsync(issued.Secret)).Status == ApiKeyVerificationStatus.Revoked, TimeSpan.FromSeconds(1));
        Assert.True(revokedAt.Elapsed < TimeSpan.FromSeconds(1));

        // The Redis entry is a tombstone: B answers from Redis, not the store.
        var before = b.Inner.Verifications;
        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await b.Redis.VerifyAsync(issued.Secret)).Status);
        Assert.Equal(before, b.Inner.Verifications);
    }

    [Fact]
    public async Task Revoke_RacingVerification_CannotOverwriteTheTombstone()
    {
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var issued = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });
        var cacheKey = a.Redis.GetCacheKey(issued.Record.Hash);
        Assert.True(await a.Redis.RevokeAsync("org_1", issued.Record.KeyId));

        // A verification that read the store before the revocation tries to cache "valid" afterwards.
        await a.Connection.GetDatabase().StringSetAsync(cacheKey, "{}", TimeSpan.FromMinutes(1), When.NotExists);

        Assert.Equal(RedisApiKeyProvider.RevokedMarker, (string?)await a.Connection.GetDatabase().StringGetAsync(cacheKey));
        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await a.Redis.VerifyAsync(issued.Secret)).Status);
    }

    [Fact]
    public async Task Verify_UnknownKey_NegativelyCached_ThenIssueForgetsIt()
    {
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var b = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var secret = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);
        var cacheKey = a.Redis.GetCacheKey(ApiKeyHasher.Hash(secret));

        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await a.Redis.VerifyAsync(secret)).Status);
        await Poll.UntilAsync(async () => await a.Connection.GetDatabase().KeyExistsAsync(cacheKey), TimeSpan.FromSeconds(1));
        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await b.Redis.VerifyAsync(secret)).Status);
        Assert.Equal(1, a.Inner.Verifications + b.Inner.Verifications);
        Assert.Equal(RedisApiKeyProvider.UnknownMarker, (string?)await a.Connection.GetDatabase().StringGetAsync(cacheKey));
        Assert.InRange((await a.Connection.GetDatabase().KeyTimeToLiveAsync(cacheKey))!.Value, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(5));

        // The key now gets issued (with exactly that secret): the "unknown" answer is dropped at once.
        a.Inner.IssueOverride = async request =>
        {
            var record = new ApiKeyRecord
            {
                KeyId = "key_known",
                OrgId = request.OrgId,
                Environment = ApiKeyEnvironment.Test,
                Hash = ApiKeyHasher.Hash(secret),
                DisplayPrefix = secret[..16],
                CreatedAt = DateTimeOffset.UtcNow,
            };
            await _store.AddAsync(record);
            return new IssuedApiKey(secret, record);
        };
        await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });

        Assert.True((await b.Redis.VerifyAsync(secret)).IsValid);
    }

    [Fact]
    public async Task Verify_MalformedKey_NoRedisCommandAndNoStoreCall()
    {
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        await a.Ready;
        var session = new ProfilingSession();
        a.Connection.RegisterProfiler(() => session);
        var valid = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Live);

        foreach (var key in new[] { "", "Bearer x", "pk_test_short", valid[..^1] + (valid[^1] == 'A' ? 'B' : 'A'), " " + valid, "sk-openai-key" })
        {
            Assert.Equal(ApiKeyVerificationStatus.Malformed, (await a.Redis.VerifyAsync(key)).Status);
            Assert.Equal(ApiKeyVerificationStatus.Malformed, (await a.L1.VerifyAsync(key)).Status);
        }

        Assert.Empty(session.FinishProfiling());
        Assert.Equal(0, a.Inner.Verifications);
    }

    [Fact]
    public async Task Verify_CachedPrincipalPastItsExpiry_Expired()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, time));
        var issued = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1", ExpiresAt = time.GetUtcNow().AddMinutes(10) });

        Assert.True((await a.Redis.VerifyAsync(issued.Secret)).IsValid);
        await Poll.UntilAsync(async () => await a.Connection.GetDatabase().KeyExistsAsync(a.Redis.GetCacheKey(issued.Record.Hash)), TimeSpan.FromSeconds(1));
        time.Advance(TimeSpan.FromMinutes(11));

        Assert.Equal(ApiKeyVerificationStatus.Expired, (await a.Redis.VerifyAsync(issued.Secret)).Status);
        Assert.Equal(1, a.Inner.Verifications); // answered from the cached principal
    }

    [Fact]
    public async Task Verify_KeyExpiringSoon_EntryDoesNotOutliveIt()
    {
        var scope = Track(new RedisTestScope());
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var issued = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1", ExpiresAt = DateTimeOffset.UtcNow.AddSeconds(20) });

        Assert.True((await a.Redis.VerifyAsync(issued.Secret)).IsValid);

        var db = a.Connection.GetDatabase();
        var cacheKey = a.Redis.GetCacheKey(issued.Record.Hash);
        await Poll.UntilAsync(async () => await db.KeyExistsAsync(cacheKey), TimeSpan.FromSeconds(1));
        Assert.InRange((await db.KeyTimeToLiveAsync(cacheKey))!.Value, TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Verify_RedisDown_AnswersFromTheStore()
    {
        using var server = RedisServerProcess.StartNew();
        var scope = Track(new RedisTestScope(server.ConnectionString, TimeSpan.FromMilliseconds(250)));
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var issued = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });
        var unknown = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);

        server.Stop();

        var stopwatch = Stopwatch.StartNew();
        Assert.True((await a.Redis.VerifyAsync(issued.Secret)).IsValid);
        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await a.Redis.VerifyAsync(unknown)).Status);
        Assert.True(await a.Redis.RevokeAsync("org_1", issued.Record.KeyId)); // no throw; tombstone deferred
        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await a.Redis.VerifyAsync(issued.Secret)).Status);
        var second = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });
        Assert.True((await a.Redis.VerifyAsync(second.Secret)).IsValid);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(3), $"took {stopwatch.Elapsed}");
        Assert.Equal(4, a.Inner.Verifications);

        // Back up: the deferred tombstone is written, so a stale "valid" entry cannot come back.
        server.Start();
        await Poll.UntilAsync(
            async () =>
            {
                try
                {
                    return (string?)await a.Connection.GetDatabase().StringGetAsync(a.Redis.GetCacheKey(issued.Record.Hash)) == RedisApiKeyProvider.RevokedMarker;
                }
                catch (RedisException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Verify_RedisHung_FallsThroughWithinTheOperationTimeout()
    {
        using var server = RedisServerProcess.StartNew();
        var scope = Track(new RedisTestScope(server.ConnectionString, TimeSpan.FromMilliseconds(250)));
        var a = Track(new KeyReplica(scope, _store, TimeProvider.System));
        var issued = await a.Redis.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });

        server.Pause();
        try
        {
            var stopwatch = Stopwatch.StartNew();
            Assert.True((await a.Redis.VerifyAsync(issued.Secret)).IsValid);
            Assert.InRange(stopwatch.Elapsed, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(2));
        }
        finally
        {
            server.Resume();
        }
    }

    private T Track<T>(T disposable)
        where T : IDisposable
    {
        _disposables.Add(disposable);
        return disposable;
    }
}
