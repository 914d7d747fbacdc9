using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Keys.Tests.TestDoubles;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Keys.Tests.Contract;

/// <summary>The provider contract for the store-backed local provider on its own.</summary>
public sealed class LocalApiKeyProviderContractTests : ApiKeyProviderContractTests
{
    private readonly CountingApiKeyStore _store = new();

    protected override int? BackendCalls => _store.TotalCalls;

    protected override Task<IApiKeyProvider> CreateProviderAsync(FakeTimeProvider time)
        => Task.FromResult<IApiKeyProvider>(new LocalApiKeyProvider(_store, ApiKeyFormat.Default, time, NullLogger<LocalApiKeyProvider>.Instance));

    protected override string NewUnissuedKey(ApiKeyEnvironment environment) => ApiKeyFormat.Default.Generate(environment);
}

/// <summary>The provider contract for the local provider behind the in-process verification cache (the default registration).</summary>
public sealed class CachingApiKeyProviderContractTests : ApiKeyProviderContractTests
{
    private readonly CountingApiKeyStore _store = new();
    private CachingApiKeyProvider? _cache;

    protected override int? BackendCalls => _store.TotalCalls;

    protected override Task<IApiKeyProvider> CreateProviderAsync(FakeTimeProvider time)
    {
        var local = new LocalApiKeyProvider(_store, ApiKeyFormat.Default, time, NullLogger<LocalApiKeyProvider>.Instance);

        // A long TTL: a revocation must take effect through the provider, not by waiting the entry out.
        _cache = new CachingApiKeyProvider(local, ApiKeyFormat.Default, time, Options.Create(new ApiKeyCacheOptions { ValidTtl = TimeSpan.FromMinutes(5), UnknownTtl = TimeSpan.FromMinutes(5) }));
        return Task.FromResult<IApiKeyProvider>(_cache);
    }

    protected override string NewUnissuedKey(ApiKeyEnvironment environment) => ApiKeyFormat.Default.Generate(environment);

    protected override Task DisposeProviderAsync()
    {
        _cache?.Dispose();
        return Task.CompletedTask;
    }
}
