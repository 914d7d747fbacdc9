using System.Diagnostics.CodeAnalysis;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Keys.Stores;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Portal API keys: format, in-memory store and the local provider.</summary>
public static class CortensorApiKeysServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="ApiKeyFormat"/>, <see cref="InMemoryApiKeyStore"/> as <see cref="IApiKeyStore"/>,
    /// <see cref="LocalApiKeyProvider"/> behind a <see cref="CachingApiKeyProvider"/> as <see cref="IApiKeyProvider"/> and <see cref="TimeProvider.System"/>,
    /// each only if not registered yet. Prefix options are validated at startup. Safe to call more than once.
    /// </summary>
    public static ICortensorApiKeysBuilder AddCortensorApiKeys(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return AddCore(services);
    }

    /// <inheritdoc cref="AddCortensorApiKeys(IServiceCollection)"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the key prefixes.</param>
    public static ICortensorApiKeysBuilder AddCortensorApiKeys(this IServiceCollection services, Action<ApiKeyFormatOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.Configure(configure);
        return builder;
    }

    /// <inheritdoc cref="AddCortensorApiKeys(IServiceCollection)"/>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the key prefixes, with access to other services.</param>
    public static ICortensorApiKeysBuilder AddCortensorApiKeys(this IServiceCollection services, Action<ApiKeyFormatOptions, IServiceProvider> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        var builder = AddCore(services);
        services.AddOptions<ApiKeyFormatOptions>().Configure<IServiceProvider>(configure);
        return builder;
    }

    /// <summary>Replaces the <see cref="IApiKeyStore"/> (by default <see cref="InMemoryApiKeyStore"/>) with a singleton <typeparamref name="TStore"/>.</summary>
    public static ICortensorApiKeysBuilder UseStore<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TStore>(this ICortensorApiKeysBuilder builder)
        where TStore : class, IApiKeyStore
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.RemoveAll<IApiKeyStore>();
        builder.Services.AddSingleton<IApiKeyStore, TStore>();
        return builder;
    }

    /// <summary>Replaces the <see cref="IApiKeyStore"/> with a singleton built by <paramref name="factory"/>.</summary>
    public static ICortensorApiKeysBuilder UseStore<TStore>(this ICortensorApiKeysBuilder builder, Func<IServiceProvider, TStore> factory)
        where TStore : class, IApiKeyStore
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);
        builder.Services.RemoveAll<IApiKeyStore>();
        builder.Services.AddSingleton<IApiKeyStore>(factory);
        return builder;
    }

    private static Builder AddCore(IServiceCollection services)
    {
        // ValidateOnStart adds a registration on every call, so do it once.
        if (!services.Any(static d => d.ServiceType == typeof(ApiKeysMarker)))
        {
            services.AddSingleton<ApiKeysMarker>();
            services.AddOptions<ApiKeyFormatOptions>().ValidateOnStart();
        }

        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ApiKeyFormatOptions>, ApiKeyFormatOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(static sp => new ApiKeyFormat(sp.GetRequiredService<IOptions<ApiKeyFormatOptions>>()));
        services.TryAddSingleton<IApiKeyStore, InMemoryApiKeyStore>();
        services.TryAddSingleton(static sp => new LocalApiKeyProvider(
            sp.GetRequiredService<IApiKeyStore>(),
            sp.GetRequiredService<ApiKeyFormat>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetService<ILogger<LocalApiKeyProvider>>() ?? NullLogger<LocalApiKeyProvider>.Instance));

        // The store stays off the hot path: verification answers come from a short-TTL in-process cache.
        // Revocations are pushed to every replica's cache through the change feed (in-process unless replaced).
        services.AddOptions<ApiKeyCacheOptions>();
        services.TryAddSingleton<IHotPathChangeFeed, InProcessHotPathChangeFeed>();
        services.TryAddSingleton<IApiKeyProvider>(static sp => new CachingApiKeyProvider(
            sp.GetRequiredService<LocalApiKeyProvider>(),
            sp.GetRequiredService<ApiKeyFormat>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<ApiKeyCacheOptions>>(),
            sp.GetRequiredService<IHotPathChangeFeed>()));
        return new Builder(services);
    }

    private sealed record Builder(IServiceCollection Services) : ICortensorApiKeysBuilder;

    /// <summary>Marks a collection that <see cref="AddCortensorApiKeys(IServiceCollection)"/> has already set up.</summary>
    private sealed class ApiKeysMarker;
}
