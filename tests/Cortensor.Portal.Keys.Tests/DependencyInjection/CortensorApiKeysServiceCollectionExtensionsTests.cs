using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Keys.Stores;
using Cortensor.Portal.Keys.Tests.TestDoubles;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Keys.Tests.DependencyInjection;

public sealed class CortensorApiKeysServiceCollectionExtensionsTests
{
    [Fact]
    public async Task AddCortensorApiKeys_Defaults_ResolvesWorkingLocalProvider()
    {
        var services = new ServiceCollection();

        var builder = services.AddCortensorApiKeys();
        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        Assert.Same(services, builder.Services);
        var keys = provider.GetRequiredService<IApiKeyProvider>();
        Assert.IsType<CachingApiKeyProvider>(keys); // the local provider, behind the verification cache
        Assert.NotNull(provider.GetRequiredService<LocalApiKeyProvider>());
        Assert.IsType<InMemoryApiKeyStore>(provider.GetRequiredService<IApiKeyStore>());
        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
        Assert.Equal("pk_live_", provider.GetRequiredService<ApiKeyFormat>().LivePrefix);

        var issued = await keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        Assert.True((await keys.VerifyAsync(issued.Secret)).IsValid);
    }

    [Fact]
    public void AddCortensorApiKeys_WithLogging_ResolvesProvider()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorApiKeys();
        using var provider = services.BuildServiceProvider();

        Assert.NotNull(provider.GetRequiredService<IApiKeyProvider>());
    }

    [Fact]
    public void AddCortensorApiKeys_CalledTwice_RegistersEachServiceOnce()
    {
        var once = new ServiceCollection();
        once.AddCortensorApiKeys();
        var twice = new ServiceCollection();
        twice.AddCortensorApiKeys();
        twice.AddCortensorApiKeys();

        Assert.Single(twice, d => d.ServiceType == typeof(IApiKeyProvider));
        Assert.Single(twice, d => d.ServiceType == typeof(IApiKeyStore));
        Assert.Single(twice, d => d.ServiceType == typeof(ApiKeyFormat));
        Assert.Single(twice, d => d.ServiceType == typeof(TimeProvider));
        Assert.Single(twice, d => d.ServiceType == typeof(IValidateOptions<ApiKeyFormatOptions>));
        Assert.Equal(once.Count, twice.Count);
    }

    [Fact]
    public void AddCortensorApiKeys_ExistingTimeProvider_IsKept()
    {
        var services = new ServiceCollection();
        var fake = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        services.AddSingleton<TimeProvider>(fake);

        services.AddCortensorApiKeys();
        using var provider = services.BuildServiceProvider();

        Assert.Same(fake, provider.GetRequiredService<TimeProvider>());
    }

    [Fact]
    public void AddCortensorApiKeys_CustomPrefixes_FlowIntoFormat()
    {
        var services = new ServiceCollection();
        services.AddCortensorApiKeys(o =>
        {
            o.LivePrefix = "ctsk_live_";
            o.TestPrefix = "ctsk_test_";
        });
        using var provider = services.BuildServiceProvider();

        var format = provider.GetRequiredService<ApiKeyFormat>();

        Assert.StartsWith("ctsk_live_", format.Generate(ApiKeyEnvironment.Live), StringComparison.Ordinal);
        Assert.Equal(@"\bctsk_(?:live|test)_[0-9A-Za-z]{49}\b", format.ConfiguredDetectionPattern);
    }

    [Fact]
    public void AddCortensorApiKeys_ConfigureWithServiceProvider_FlowsIntoFormat()
    {
        var services = new ServiceCollection();
        services.AddSingleton(new PrefixSource("acme_live_"));
        services.AddCortensorApiKeys((o, sp) => o.LivePrefix = sp.GetRequiredService<PrefixSource>().Live);
        using var provider = services.BuildServiceProvider();

        Assert.Equal("acme_live_", provider.GetRequiredService<ApiKeyFormat>().LivePrefix);
    }

    [Fact]
    public void AddCortensorApiKeys_BadPrefix_FailsValidation()
    {
        var services = new ServiceCollection();
        services.AddCortensorApiKeys(o => o.LivePrefix = "Live-");
        using var provider = services.BuildServiceProvider();

        var startup = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
        Assert.Contains(nameof(ApiKeyFormatOptions.LivePrefix), startup.Message, StringComparison.Ordinal);
        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<ApiKeyFormatOptions>>().Value);
        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IApiKeyProvider>());
    }

    [Fact]
    public void AddCortensorApiKeys_OverlappingPrefixes_FailsValidation()
    {
        var services = new ServiceCollection();
        services.AddCortensorApiKeys(o => o.TestPrefix = "pk_live_x_");
        using var provider = services.BuildServiceProvider();

        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
    }

    [Fact]
    public void AddCortensorApiKeys_ValidOptions_PassStartupValidation()
    {
        var services = new ServiceCollection();
        services.AddCortensorApiKeys();
        using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IStartupValidator>().Validate();
    }

    [Fact]
    public void UseStore_CustomStore_ReplacesInMemoryStore()
    {
        var services = new ServiceCollection();

        services.AddCortensorApiKeys().UseStore<CountingApiKeyStore>();
        services.AddCortensorApiKeys();
        using var provider = services.BuildServiceProvider();

        Assert.Single(services, d => d.ServiceType == typeof(IApiKeyStore));
        Assert.IsType<CountingApiKeyStore>(provider.GetRequiredService<IApiKeyStore>());
    }

    [Fact]
    public async Task UseStore_Factory_ProviderUsesThatStore()
    {
        var store = new CountingApiKeyStore();
        var services = new ServiceCollection();
        services.AddCortensorApiKeys().UseStore(_ => store);
        using var provider = services.BuildServiceProvider();

        await provider.GetRequiredService<IApiKeyProvider>().VerifyAsync(ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test));

        Assert.Equal(1, store.FindCalls);
    }

    [Fact]
    public void AddCortensorApiKeys_NullArguments_Throw()
    {
        Assert.Throws<ArgumentNullException>(() => CortensorApiKeysServiceCollectionExtensions.AddCortensorApiKeys(null!));
        Assert.Throws<ArgumentNullException>(() => new ServiceCollection().AddCortensorApiKeys((Action<ApiKeyFormatOptions>)null!));
        Assert.Throws<ArgumentNullException>(() => CortensorApiKeysServiceCollectionExtensions.UseStore<CountingApiKeyStore>(null!));
    }

    private sealed record PrefixSource(string Live);
}
