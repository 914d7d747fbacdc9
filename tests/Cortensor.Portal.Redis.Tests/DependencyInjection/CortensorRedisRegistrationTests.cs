using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Stores;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.Changes;
using Cortensor.Portal.Redis.Configuration;
using Cortensor.Portal.Redis.Keys;
using Cortensor.Portal.Redis.RateLimiting;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.DependencyInjection;

public sealed class CortensorRedisRegistrationTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    [Fact]
    public async Task AddCortensorRedis_ComposesTheRedisHotPath()
    {
        var prefix = "t" + Guid.NewGuid().ToString("N")[..12] + ":";
        using var host = BuildHost(o => { o.ConnectionString = LocalRedisServer.ConnectionString; o.KeyPrefix = prefix; });
        await host.StartAsync();
        var services = host.Services;

        Assert.IsType<CachingApiKeyProvider>(services.GetRequiredService<IApiKeyProvider>());
        Assert.Same(services.GetRequiredService<RedisHotPathChangeFeed>(), services.GetRequiredService<IHotPathChangeFeed>());
        Assert.Same(services.GetRequiredService<FallbackRateLimiter>(), services.GetRequiredService<IRateLimiter>());
        Assert.NotNull(services.GetRequiredService<RedisApiKeyProvider>());
        Assert.NotNull(services.GetRequiredService<RedisRateLimiter>());
        Assert.NotNull(services.GetRequiredService<RateLimitPlanner>());

        var limiter = services.GetRequiredService<IRateLimiter>();
        var decision = await limiter.AcquireAsync(new RateLimitRequest
        {
            RequestId = "req_1",
            HashTag = "org_1",
            Partitions = [new RateLimitPartition("key", "key_1", [new RateLimitRule("rpm", RateLimitClass.Requests, 5, Minute)])],
        });
        Assert.True(decision.IsAllowed);
        Assert.False(decision.Degraded);
        Assert.Same(services.GetRequiredService<RedisRateLimiter>(), decision.Lease!.Backend);

        var keys = services.GetRequiredService<IApiKeyProvider>();
        var issued = await keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });
        Assert.True((await keys.VerifyAsync(issued.Secret)).IsValid);

        var db = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        await Poll.UntilAsync(async () => await db.KeyExistsAsync(prefix + "key:" + Convert.ToHexStringLower(issued.Record.Hash)), TimeSpan.FromSeconds(1));
        Assert.True(await db.KeyExistsAsync(prefix + "rl:{org_1}:key:key_1:rpm"));
        await host.StopAsync();
    }

    [Fact]
    public async Task AddCortensorRedis_TwoHostsSharingAStore_RevocationReachesTheOtherAtOnce()
    {
        var prefix = "t" + Guid.NewGuid().ToString("N")[..12] + ":";
        var store = new InMemoryApiKeyStore();
        void Configure(RedisOptions o)
        {
            o.ConnectionString = LocalRedisServer.ConnectionString;
            o.KeyPrefix = prefix;
        }

        using var a = BuildHost(Configure, store);
        using var b = BuildHost(Configure, store);
        await a.StartAsync();
        await b.StartAsync();
        await a.Services.GetRequiredService<RedisHotPathChangeFeed>().Subscription;
        await b.Services.GetRequiredService<RedisHotPathChangeFeed>().Subscription;
        var keysA = a.Services.GetRequiredService<IApiKeyProvider>();
        var keysB = b.Services.GetRequiredService<IApiKeyProvider>();

        var issued = await keysA.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });
        Assert.True((await keysB.VerifyAsync(issued.Secret)).IsValid);
        Assert.True(await keysA.RevokeAsync("org_1", issued.Record.KeyId));

        await Poll.UntilAsync(async () => (await keysB.VerifyAsync(issued.Secret)).Status == ApiKeyVerificationStatus.Revoked, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task AddCortensorRedis_RedisUnreachable_HostStartsAndServesFromFallbacks()
    {
        using var host = BuildHost(o => o.ConnectionString = $"127.0.0.1:{ClosedPort()},connectTimeout=1000");

        var stopwatch = Stopwatch.StartNew();
        await host.StartAsync();
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"start took {stopwatch.Elapsed}");

        var decision = await host.Services.GetRequiredService<IRateLimiter>().AcquireAsync(new RateLimitRequest
        {
            RequestId = "req_1",
            HashTag = "org_1",
            Partitions = [new RateLimitPartition("key", "key_1", [new RateLimitRule("rpm", RateLimitClass.Requests, 5, Minute)])],
        });
        Assert.True(decision.IsAllowed);
        Assert.True(decision.Degraded);

        var keys = host.Services.GetRequiredService<IApiKeyProvider>();
        var issued = await keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_1" });
        Assert.True((await keys.VerifyAsync(issued.Secret)).IsValid);
        await keys.RevokeAsync("org_1", issued.Record.KeyId);
        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await keys.VerifyAsync(issued.Secret)).Status);
        await host.StopAsync();
    }

    [Fact]
    public async Task AddCortensorRedis_CalledTwice_RegistersOnce()
    {
        var services = new ServiceCollection();
        services.AddCortensorRedis(o => o.ConnectionString = "127.0.0.1:1");
        var count = services.Count;

        services.AddCortensorRedis(o => o.KeyPrefix = "other:");

        Assert.Equal(count + 1, services.Count); // only the second Configure
        Assert.Single(services, d => d.ServiceType == typeof(IConnectionMultiplexer));
        Assert.Single(services, d => d.ServiceType == typeof(IApiKeyProvider));
        Assert.Single(services, d => d.ServiceType == typeof(IRateLimiter));
        Assert.Single(services, d => d.ServiceType == typeof(IHotPathChangeFeed));
        Assert.Equal(2, services.Count(d => d.ServiceType == typeof(IValidateOptions<RedisOptions>)));
        await using var provider = services.BuildServiceProvider();
        Assert.Equal("other:", provider.GetRequiredService<IOptions<RedisOptions>>().Value.KeyPrefix);
    }

    [Theory]
    [InlineData("", "cortensor:", "ConnectionString")]
    [InlineData("127.0.0.1:6379,nonsense=1", "cortensor:", "ConnectionString")]
    [InlineData("127.0.0.1:6379", "a{b}:", "KeyPrefix")]
    public async Task AddCortensorRedis_InvalidOptions_FailAtStart(string connectionString, string prefix, string member)
    {
        using var host = BuildHost(o => { o.ConnectionString = connectionString; o.KeyPrefix = prefix; });

        var failure = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(member, failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validator_Timeouts_OutOfRange_Refused()
    {
        var result = new RedisOptionsCustomValidator().Validate(null, new RedisOptions
        {
            ConnectionString = "127.0.0.1:6379",
            OperationTimeout = TimeSpan.Zero,
            KeyCacheTtl = TimeSpan.Zero,
            UnknownKeyTtl = TimeSpan.FromSeconds(-1),
        });

        Assert.True(result.Failed);
        Assert.Contains("OperationTimeout", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("KeyCacheTtl", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("UnknownKeyTtl", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(1001)]
    public void Validator_ReleaseDelay_OutOfRange_Refused(int milliseconds)
    {
        var result = new RedisOptionsCustomValidator().Validate(null, new RedisOptions
        {
            ConnectionString = "127.0.0.1:6379",
            ReleaseDelay = TimeSpan.FromMilliseconds(milliseconds),
        });

        Assert.True(result.Failed);
        Assert.Contains("ReleaseDelay", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1000)]
    public void Validator_ReleaseDelay_ZeroToOneSecond_Accepted(int milliseconds)
    {
        var result = new RedisOptionsCustomValidator().Validate(null, new RedisOptions
        {
            ConnectionString = "127.0.0.1:6379",
            ReleaseDelay = TimeSpan.FromMilliseconds(milliseconds),
        });

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Fact]
    public void Validator_LeaseDefaults_Accepted_AndMatchTheDocumentedNumbers()
    {
        var options = new RedisOptions { ConnectionString = "127.0.0.1:6379" };

        Assert.True(new RedisOptionsCustomValidator().Validate(null, options).Succeeded);
        Assert.Equal(TimeSpan.FromSeconds(30), options.ConcurrencyLeaseTtl);
        Assert.Equal(TimeSpan.FromSeconds(10), options.ConcurrencyLeaseRenewInterval);
    }

    [Theory]
    // One lost renewal must not cost a live request its slot: TTL >= 2 x interval + operation timeout.
    [InlineData(20_000, 10_000, 250)]
    [InlineData(20_249, 10_000, 250)]
    [InlineData(2_000, 1_000, 1)]
    // Out of range on their own.
    [InlineData(3_600_001, 10_000, 250)]
    public void Validator_LeaseTtl_TooShortForItsRenewals_Refused(int ttlMs, int renewMs, int operationTimeoutMs)
    {
        var result = new RedisOptionsCustomValidator().Validate(null, new RedisOptions
        {
            ConnectionString = "127.0.0.1:6379",
            ConcurrencyLeaseTtl = TimeSpan.FromMilliseconds(ttlMs),
            ConcurrencyLeaseRenewInterval = TimeSpan.FromMilliseconds(renewMs),
            OperationTimeout = TimeSpan.FromMilliseconds(operationTimeoutMs),
        });

        Assert.True(result.Failed);
        Assert.Contains("ConcurrencyLeaseTtl", result.FailureMessage, StringComparison.Ordinal);
        // Only the TTL is at fault, not the interval on its own.
        Assert.DoesNotContain("at least 100 ms", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(20_250, 10_000, 250)]
    [InlineData(1_000, 300, 250)]
    [InlineData(3_600_000, 300_000, 250)]
    public void Validator_LeaseTtl_CoversOneLostRenewal_Accepted(int ttlMs, int renewMs, int operationTimeoutMs)
    {
        var result = new RedisOptionsCustomValidator().Validate(null, new RedisOptions
        {
            ConnectionString = "127.0.0.1:6379",
            ConcurrencyLeaseTtl = TimeSpan.FromMilliseconds(ttlMs),
            ConcurrencyLeaseRenewInterval = TimeSpan.FromMilliseconds(renewMs),
            OperationTimeout = TimeSpan.FromMilliseconds(operationTimeoutMs),
        });

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(99)]
    [InlineData(300_001)]
    public void Validator_LeaseRenewInterval_OutOfRange_Refused(int renewMs)
    {
        var result = new RedisOptionsCustomValidator().Validate(null, new RedisOptions
        {
            ConnectionString = "127.0.0.1:6379",
            ConcurrencyLeaseRenewInterval = TimeSpan.FromMilliseconds(renewMs),
            ConcurrencyLeaseTtl = TimeSpan.FromHours(1),
        });

        Assert.True(result.Failed);
        Assert.Contains("ConcurrencyLeaseRenewInterval", result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateConfiguration_ForcesFailFastAndNoAbort()
    {
        var configuration = CortensorRedisConnection.CreateConfiguration(new RedisOptions { ConnectionString = "127.0.0.1:6379,abortConnect=true,allowAdmin=true" });

        Assert.False(configuration.AbortOnConnectFail);
        Assert.Same(BacklogPolicy.FailFast, configuration.BacklogPolicy);
        Assert.True(configuration.AllowAdmin);
    }

    [Fact]
    public async Task DisposingTheContainer_DisposesTheConnection()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorRedis(o => o.ConnectionString = LocalRedisServer.ConnectionString);
        var provider = services.BuildServiceProvider();
        var connection = provider.GetRequiredService<IConnectionMultiplexer>();
        provider.GetRequiredService<IHotPathChangeFeed>();
        Assert.True(connection.IsConnected);

        await provider.DisposeAsync();

        Assert.False(connection.IsConnected);
    }

    private static IHost BuildHost(Action<RedisOptions> configure, IApiKeyStore? store = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging();
        if (store is not null)
        {
            builder.Services.AddCortensorApiKeys().UseStore(_ => store);
        }

        builder.Services.AddCortensorRedis(configure);
        builder.Services.AddCortensorRateLimiting(o => o.StoreRetryInterval = TimeSpan.FromMilliseconds(200));
        return builder.Build();
    }

    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
