using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Testing.Redis;
using Cortensor.Portal.Testing.Unkey;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// The portal host (the template's content) on a real loopback socket with one key provider chosen by configuration
/// alone (<c>Cortensor:Keys:Provider</c>), on embedded defaults otherwise (SQLite, simulated routers).
/// </summary>
public abstract class KeyProviderPortal : WebApplicationFactory<Program>, IAsyncLifetime
{
    private readonly StringWriter _bootstrapOutput = new();
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cportal-kp-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>The value of <c>Cortensor:Keys:Provider</c>.</summary>
    public abstract string ProviderName { get; }

    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>The development key the host issued through its provider and printed on start.</summary>
    public string DevKey { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public CapturingLoggerProvider Logs { get; } = new();

    public IApiKeyProvider Keys => Services.GetRequiredService<IApiKeyProvider>();

    /// <summary>A key this provider would accept the shape of, but never issued.</summary>
    public abstract string UnissuedKey();

    /// <summary>Provider settings (<c>UseSetting</c>) on top of <c>Cortensor:Keys:Provider</c>.</summary>
    /// <param name="builder">The host builder.</param>
    protected abstract void ConfigureProvider(IWebHostBuilder builder);

    /// <summary>Starts what the provider needs before the host starts.</summary>
    /// <returns>A task.</returns>
    protected virtual Task StartDependenciesAsync() => Task.CompletedTask;

    /// <summary>Stops what <see cref="StartDependenciesAsync"/> started.</summary>
    protected virtual void StopDependencies()
    {
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        builder.UseSetting("Cortensor:Storage:DataDirectory", _dataDirectory);
        builder.UseSetting("Cortensor:Fleet:UseSimulatedRouters", "true");
        builder.UseSetting("Cortensor:DevelopmentKey:Enabled", "true");
        builder.UseSetting("Cortensor:Keys:Provider", ProviderName);
        ConfigureProvider(builder);
        builder.ConfigureLogging(logging =>
        {
            logging.AddProvider(Logs);
            logging.SetMinimumLevel(LogLevel.Trace);
        });
        builder.ConfigureServices(services => services.Configure<DevelopmentBootstrapOptions>(o => o.Output = _bootstrapOutput));
        UseKestrel(0);
    }

    public async Task InitializeAsync()
    {
        await StartDependenciesAsync();
        StartServer();
        Http = CreateClient();
        BaseUrl = Http.BaseAddress!;
        var line = _bootstrapOutput.ToString().Split('\n').Single(l => l.StartsWith(DevelopmentBootstrapOptions.KeyLinePrefix, StringComparison.Ordinal));
        DevKey = line[DevelopmentBootstrapOptions.KeyLinePrefix.Length..].Trim();
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        Http.Dispose();
        await DisposeAsync();
        StopDependencies();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // a file still open: the temp folder is cleaned by the OS
        }
    }
}

/// <summary>Keys in the database (SQLite here) behind the in-process cache: the default.</summary>
public sealed class LocalKeyProviderPortal : KeyProviderPortal
{
    public override string ProviderName => "Local";

    public override string UnissuedKey() => ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);

    protected override void ConfigureProvider(IWebHostBuilder builder)
    {
    }
}

/// <summary>Keys in the database behind a shared Redis cache; limits and change notices on Redis too.</summary>
public sealed class RedisKeyProviderPortal : KeyProviderPortal
{
    public override string ProviderName => "Redis";

    public override string UnissuedKey() => ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);

    protected override void ConfigureProvider(IWebHostBuilder builder)
    {
        builder.UseSetting("Cortensor:HotPath:Mode", "Redis");
        builder.UseSetting("ConnectionStrings:Redis", LocalRedisServer.ConnectionString);
        builder.UseSetting("Cortensor:Redis:KeyPrefix", "kp-" + Guid.NewGuid().ToString("N")[..8] + ":");
    }
}

/// <summary>Keys issued, verified and revoked in Unkey (a stateful WireMock stub of its v2 API); limits in-process.</summary>
public sealed class UnkeyKeyProviderPortal : KeyProviderPortal
{
    public override string ProviderName => "Unkey";

    /// <summary>The Unkey stand-in; set <see cref="UnkeyStub.Outage"/> to play an outage.</summary>
    internal UnkeyStub Unkey { get; private set; } = null!;

    public override string UnissuedKey() => "pk_test_" + UnkeyStub.RandomBase58(32);

    protected override Task StartDependenciesAsync()
    {
        Unkey = new UnkeyStub();
        return Task.CompletedTask;
    }

    protected override void StopDependencies() => Unkey.Dispose();

    protected override void ConfigureProvider(IWebHostBuilder builder)
    {
        builder.UseSetting("Cortensor:Unkey:BaseUrl", Unkey.Url.ToString());
        builder.UseSetting("Cortensor:Unkey:ApiId", UnkeyStub.ApiId);
        builder.UseSetting("Cortensor:Unkey:RootKey", UnkeyStub.RootKey);
        builder.UseSetting("Cortensor:Unkey:AttemptTimeout", "00:00:10");
        builder.UseSetting("Cortensor:Unkey:TotalTimeout", "00:00:20");

        // An ad-hoc Unkey rate limit (no configuration in Unkey needed), checked on every verification.
        builder.UseSetting("Cortensor:Unkey:RateLimits:0:Name", "requests");
        builder.UseSetting("Cortensor:Unkey:RateLimits:0:Limit", "1000");
        builder.UseSetting("Cortensor:Unkey:RateLimits:0:Duration", "00:01:00");
    }
}
