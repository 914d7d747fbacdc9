using System.Diagnostics.Metrics;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.Changes;
using Cortensor.Portal.Redis.Configuration;
using Cortensor.Portal.Redis.Health;
using Cortensor.Portal.Redis.Keys;
using Cortensor.Portal.Redis.RateLimiting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

#pragma warning disable IDE0130 // Extension methods live where IServiceCollection does, by .NET convention.
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Moves the Portal's hot-path state to Redis, shared by every replica.</summary>
public static class CortensorRedisServiceCollectionExtensions
{
    /// <summary>
    /// Registers Redis as the hot-path store. On top of <c>AddCortensorApiKeys()</c> and
    /// <c>AddCortensorRateLimiting()</c> (both called here; safe to call again):
    /// <list type="bullet">
    /// <item>one <see cref="IConnectionMultiplexer"/> (unless one is registered), created on first use with
    /// <see cref="CortensorRedisConnection.CreateConfiguration"/> (abortConnect off, fail-fast backlog) so the app starts
    /// while Redis is down; a hosted service starts connecting at host start; the container disposes it;</item>
    /// <item><see cref="IHotPathChangeFeed"/> = <see cref="RedisHotPathChangeFeed"/> (pub/sub);</item>
    /// <item><see cref="IRateLimiter"/> = <see cref="FallbackRateLimiter"/> over <see cref="RedisRateLimiter"/>, with the
    /// in-process limiter while Redis is unreachable;</item>
    /// <item><see cref="IApiKeyProvider"/> = <see cref="CachingApiKeyProvider"/> (in-process L1) over
    /// <see cref="RedisApiKeyProvider"/> (shared L2) over <see cref="LocalApiKeyProvider"/> (the store);</item>
    /// <item>the <c>redis</c> readiness check (<see cref="RedisHealthCheck"/>: PING through the multiplexer).</item>
    /// </list>
    /// <see cref="RedisOptions"/> are validated at startup. Safe to call more than once.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the connection string and the other <see cref="RedisOptions"/>.</param>
    /// <returns>A builder for chaining.</returns>
    public static ICortensorRedisBuilder AddCortensorRedis(this IServiceCollection services, Action<RedisOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.Configure(configure);
        return builder;
    }

    /// <inheritdoc cref="AddCortensorRedis(IServiceCollection, Action{RedisOptions})"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the <see cref="RedisOptions"/>, with access to other services.</param>
    public static ICortensorRedisBuilder AddCortensorRedis(this IServiceCollection services, Action<RedisOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.AddOptions<RedisOptions>().Configure<IServiceProvider>(configure);
        return builder;
    }

    private static RedisBuilder AddCore(IServiceCollection services)
    {
        services.AddCortensorApiKeys();
        var rateLimiting = services.AddCortensorRateLimiting();

        // ValidateOnStart and the replacements below add registrations on every call, so do them once.
        if (services.Any(static d => d.ServiceType == typeof(RedisMarker)))
        {
            return new RedisBuilder(services);
        }

        services.AddSingleton<RedisMarker>();
        services.AddOptions<RedisOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisOptions>, RedisOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RedisOptions>, RedisOptionsCustomValidator>());
        services.TryAddSingleton(TimeProvider.System);

        services.TryAddSingleton<IConnectionMultiplexer>(static sp =>
            ConnectionMultiplexer.Connect(CortensorRedisConnection.CreateConfiguration(sp.GetRequiredService<IOptions<RedisOptions>>().Value)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RedisConnectionStarter>());

        // Readiness: PING through the same multiplexer, bounded (RedisHealthCheck).
        // Only the check: the health check service that runs it comes with AddHealthChecks() (AddCortensorGateway calls it).
        services.Configure<HealthCheckServiceOptions>(static o => o.Registrations.Add(new HealthCheckRegistration(
            RedisHealthCheck.Name,
            static sp => new RedisHealthCheck(sp.GetRequiredService<IConnectionMultiplexer>, sp.GetRequiredService<TimeProvider>()),
            failureStatus: null,
            tags: null)));

        services.TryAddSingleton(static sp => new RedisHotPathChangeFeed(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOptions>>(),
            Logger<RedisHotPathChangeFeed>(sp)));
        services.Replace(ServiceDescriptor.Singleton<IHotPathChangeFeed>(static sp => sp.GetRequiredService<RedisHotPathChangeFeed>()));

        services.TryAddSingleton(static sp => new RedisRateLimiter(
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IOptions<RedisOptions>>(),
            sp.GetRequiredService<IOptionsMonitor<RateLimitingOptions>>(),
            Logger<RedisRateLimiter>(sp),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<IMeterFactory>()));
        rateLimiting.UseSharedStore(static sp => sp.GetRequiredService<RedisRateLimiter>());

        services.TryAddSingleton(static sp => new RedisApiKeyProvider(
            sp.GetRequiredService<LocalApiKeyProvider>(),
            sp.GetRequiredService<IConnectionMultiplexer>(),
            sp.GetRequiredService<IHotPathChangeFeed>(),
            sp.GetRequiredService<ApiKeyFormat>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<RedisOptions>>(),
            Logger<RedisApiKeyProvider>(sp)));
        services.Replace(ServiceDescriptor.Singleton<IApiKeyProvider>(static sp => new CachingApiKeyProvider(
            sp.GetRequiredService<RedisApiKeyProvider>(),
            sp.GetRequiredService<ApiKeyFormat>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<ApiKeyCacheOptions>>(),
            sp.GetRequiredService<IHotPathChangeFeed>())));
        return new RedisBuilder(services);
    }

    private static ILogger<T> Logger<T>(IServiceProvider sp) => sp.GetService<ILogger<T>>() ?? NullLogger<T>.Instance;

    private sealed record RedisBuilder(IServiceCollection Services) : ICortensorRedisBuilder;

    /// <summary>Marks a collection that <see cref="AddCortensorRedis(IServiceCollection, Action{RedisOptions})"/> has already set up.</summary>
    private sealed class RedisMarker;

    /// <summary>
    /// Creates the connection in the background when the host starts, so the first request does not wait for the
    /// first connect; the host does not wait for it either (it starts while Redis is down or slow).
    /// </summary>
    private sealed class RedisConnectionStarter(IServiceProvider services) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            _ = Task.Run(() =>
            {
                try
                {
                    // The feed subscribes as soon as it exists, so replicas hear each other from the start.
                    services.GetRequiredService<IHotPathChangeFeed>();
                }
                catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
                {
                    // The connection retries by itself; nothing to do here.
                }
            }, CancellationToken.None);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
