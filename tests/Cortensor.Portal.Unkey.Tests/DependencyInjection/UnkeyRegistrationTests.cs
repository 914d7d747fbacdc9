using Cortensor.Portal.Keys;
using Cortensor.Portal.Unkey.Client;
using Cortensor.Portal.Unkey.Configuration;
using Cortensor.Portal.Unkey.Keys;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Unkey.Tests.DependencyInjection;

public sealed class UnkeyRegistrationTests
{
    private const string RootKey = "unkey_rootKeyThatMustNotLeak1234";

    private static ServiceProvider Build(Action<UnkeyOptions> configure)
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddCortensorUnkey(configure);
        return services.BuildServiceProvider();
    }

    [Fact]
    public void AddCortensorUnkey_ReplacesTheLocalProvider_WithTheUnkeyProvider()
    {
        using var sp = Build(o =>
        {
            o.ApiId = "api_123";
            o.RootKey = RootKey;
        });

        var provider = sp.GetRequiredService<IApiKeyProvider>();

        Assert.IsType<UnkeyApiKeyProvider>(provider);
        Assert.Same(provider, sp.GetRequiredService<UnkeyApiKeyProvider>());
        Assert.NotNull(sp.GetRequiredService<UnkeyClient>());
    }

    [Fact]
    public void AddCortensorUnkey_Twice_RegistersOnce()
    {
        var services = new ServiceCollection();
        services.AddCortensorUnkey(o => o.ApiId = "api_123");
        var count = services.Count;

        services.AddCortensorUnkey(o => o.RootKey = RootKey);

        Assert.Equal(count + 1, services.Count); // only the second Configure
        Assert.Single(services, d => d.ServiceType == typeof(IApiKeyProvider));
    }

    [Fact]
    public async Task Host_MissingApiIdAndRootKey_FailsToStart()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddCortensorUnkey(_ => { });
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(nameof(UnkeyOptions.ApiId), ex.Message, StringComparison.Ordinal);
        Assert.Contains(nameof(UnkeyOptions.RootKey), ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ApiId", "api-with-dashes")]
    [InlineData("RootKey", "unkey_with a space")]
    [InlineData("BaseUrl", "ftp://api.unkey.com")]
    [InlineData("TotalTimeout", "00:00:00.1")]
    [InlineData("RateLimits", "x")]
    [InlineData("AdHoc", "")]
    [InlineData("KeyByteLength", "8")]
    public void Validation_BadSettings_FailNamingTheSetting_NeverTheRootKey(string setting, string value)
    {
        using var sp = Build(o =>
        {
            o.ApiId = "api_123";
            o.RootKey = RootKey;
            switch (setting)
            {
                case "ApiId": o.ApiId = value; break;
                case "RootKey": o.RootKey = value; break;
                case "BaseUrl": o.BaseUrl = new Uri(value); break;
                case "TotalTimeout": o.TotalTimeout = TimeSpan.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                case "RateLimits": o.RateLimits.Add(new UnkeyRateLimitCheck { Name = value }); break;
                case "AdHoc": o.RateLimits.Add(new UnkeyRateLimitCheck { Name = "burst", Limit = 5 }); break;
                case "KeyByteLength": o.KeyByteLength = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
            }
        });

        var ex = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<UnkeyOptions>>().Value);

        Assert.Contains(setting == "AdHoc" ? "RateLimits" : setting, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(RootKey, ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("unkey_with a space", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validation_Defaults_WithApiIdAndRootKey_Pass()
    {
        using var sp = Build(o =>
        {
            o.ApiId = "api_123";
            o.RootKey = RootKey;
        });

        var options = sp.GetRequiredService<IOptions<UnkeyOptions>>().Value;

        Assert.Equal(new Uri("https://api.unkey.com"), options.BaseUrl);
        Assert.Equal(TimeSpan.FromMinutes(5), options.ServeStaleFor);
        Assert.Equal(TimeSpan.Zero, options.CacheTtl);
    }

    [Fact]
    public void TemplateExampleSettings_BindAndValidate()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Cortensor.Portal.sln")))
        {
            directory = directory.Parent;
        }

        var path = Path.Combine(directory!.FullName, "templates", "content", "Cortensor.Portal.Host", "appsettings.Unkey.example.json");
        var configuration = new ConfigurationBuilder().AddJsonFile(path).Build();
        using var sp = Build(o =>
        {
            configuration.GetSection(UnkeyOptions.SectionName).Bind(o);
            o.RootKey = RootKey; // never in the file
        });

        var options = sp.GetRequiredService<IOptions<UnkeyOptions>>().Value;

        // A bare named limit would make every Portal-issued key fail with Unkey's 412: each is ad hoc or attached.
        Assert.All(options.RateLimits, r => Assert.True(r.AttachToIssuedKeys || (r.Limit is not null && r.Duration is not null), r.Name));
        Assert.True(options.RequireApiIdMarker);
    }
}
