using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Unkey.Client;
using Cortensor.Portal.Unkey.Configuration;
using Cortensor.Portal.Unkey.Keys;
using Cortensor.Portal.Unkey.Telemetry;
using Cortensor.Portal.Testing.Unkey;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Unkey.Tests.Support;

/// <summary>
/// The Unkey provider as DI builds it (typed client, resilience pipeline on the system clock, metrics, logging at
/// Trace into <see cref="Logs"/>), except that the provider itself reads a fake clock for expiry and serve-stale.
/// Test defaults: 10 s attempts (a loaded CI machine is slow to start WireMock), 1 ms retry delay, and a circuit breaker that needs 100 calls to open.
/// </summary>
internal sealed class UnkeyHarness : IDisposable
{
    public UnkeyHarness(Uri baseUrl, FakeTimeProvider time, Action<UnkeyOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddProvider(Logs).SetMinimumLevel(LogLevel.Trace));
        services.AddMetrics();
        services.AddCortensorUnkey(o =>
        {
            o.BaseUrl = baseUrl;
            o.ApiId = UnkeyStub.ApiId;
            o.RootKey = UnkeyStub.RootKey;
            o.AttemptTimeout = TimeSpan.FromSeconds(10);
            o.TotalTimeout = TimeSpan.FromSeconds(20);
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
            o.CircuitBreakerMinimumThroughput = 100;
            configure?.Invoke(o);
        });
        Services = services.BuildServiceProvider();
        Options = Services.GetRequiredService<IOptions<UnkeyOptions>>().Value;
        Metrics = Services.GetRequiredService<UnkeyMetrics>();
        Provider = new UnkeyApiKeyProvider(
            Services.GetRequiredService<UnkeyClient>(),
            ApiKeyFormat.Default,
            time,
            Services.GetRequiredService<IOptions<UnkeyOptions>>(),
            Feed,
            Metrics,
            Services.GetRequiredService<ILogger<UnkeyApiKeyProvider>>());
    }

    public CapturingLoggerProvider Logs { get; } = new();

    public ServiceProvider Services { get; }

    public UnkeyOptions Options { get; }

    public UnkeyMetrics Metrics { get; }

    public InProcessHotPathChangeFeed Feed { get; } = new();

    public UnkeyApiKeyProvider Provider { get; }

    public UnkeyClient Client => Services.GetRequiredService<UnkeyClient>();

    /// <summary>The meta the Portal gives the keys it issues, for keys a test creates in the stub directly.</summary>
    public static System.Text.Json.Nodes.JsonObject PortalMeta(string environment = "test")
        => new() { ["environment"] = environment, [UnkeyApiKeyProvider.ApiIdMetaField] = UnkeyStub.ApiId };

    public void Dispose()
    {
        Provider.Dispose();
        Services.Dispose();
    }
}
