using Cortensor.Portal.Unkey.Health;
using Cortensor.Portal.Testing.Unkey;
using Cortensor.Portal.Unkey.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Unkey.Tests.Health;

/// <summary>
/// The <c>unkey</c> readiness check and its start-up run, through the real health check service, against the stub's
/// permission model: a wrong root key, one scoped to another API or missing a permission, a wrong API id, and Unkey down.
/// </summary>
public sealed class UnkeyHealthCheckTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 5, 1, 16, 0, 0, TimeSpan.Zero));
    private readonly UnkeyStub _stub;
    private readonly CapturingLoggerProvider _logs = new();
    private ServiceProvider? _services;

    public UnkeyHealthCheckTests() => _stub = new UnkeyStub(_time);

    public void Dispose()
    {
        _services?.Dispose();
        _stub.Dispose();
    }

    private ServiceProvider Services(string rootKey = UnkeyStub.RootKey, string apiId = UnkeyStub.ApiId)
    {
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddProvider(_logs));
        services.AddHealthChecks();

        // The probe reads the fake clock (to reuse its verdict); the resilience pipeline keeps the system clock, so
        // its retry delays and timeouts really elapse.
        services.AddSingleton(sp => new UnkeyRootKeyProbe(
            sp.GetRequiredService<Cortensor.Portal.Unkey.Client.UnkeyClient>(),
            sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<Cortensor.Portal.Unkey.Configuration.UnkeyOptions>>(),
            _time,
            sp.GetRequiredService<ILogger<UnkeyRootKeyProbe>>()));
        services.AddCortensorUnkey(o =>
        {
            o.BaseUrl = _stub.Url;
            o.ApiId = apiId;
            o.RootKey = rootKey;
            o.AttemptTimeout = TimeSpan.FromSeconds(10);
            o.TotalTimeout = TimeSpan.FromSeconds(20);
            o.RetryDelay = TimeSpan.FromMilliseconds(1);
        });
        return _services = services.BuildServiceProvider();
    }

    private async Task<HealthReportEntry> CheckAsync(string rootKey = UnkeyStub.RootKey, string apiId = UnkeyStub.ApiId)
    {
        var report = await (_services ?? Services(rootKey, apiId)).GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return Assert.Single(report.Entries, e => e.Key == UnkeyHealthCheck.Name).Value;
    }

    [Fact]
    public async Task RightRootKey_IsHealthy()
    {
        var entry = await CheckAsync();

        Assert.Equal(HealthStatus.Healthy, entry.Status);
        Assert.Contains("cortensor.unkey.not_found", entry.Description, StringComparison.Ordinal); // says what it cannot check
    }

    // The detail (setting, permission, Unkey's request id) goes to the log; the description, which the gateway shows
    // to anonymous callers, stays generic.
    private string Logged(int eventId) => Assert.Single(_logs.Entries, e => e.EventId.Id == eventId).Text;

    private static void AssertGeneric(string? description)
    {
        Assert.NotNull(description);
        Assert.DoesNotContain(UnkeyStub.ApiId, description, StringComparison.Ordinal);
        Assert.DoesNotContain("req_", description, StringComparison.Ordinal);
        Assert.DoesNotContain("read_", description, StringComparison.Ordinal);
        Assert.DoesNotContain("Cortensor:", description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownRootKey_IsUnhealthy_LoggingTheSetting_NotTheKey()
    {
        var entry = await CheckAsync(rootKey: "unkey_notARootKey123");

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        AssertGeneric(entry.Description);
        Assert.Contains("Cortensor:Unkey:RootKey", Logged(8330), StringComparison.Ordinal);
        Assert.DoesNotContain("unkey_notARootKey123", _logs.AllText + entry.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RootKeyScopedToAnotherApi_IsDegraded_LoggingTheMissingPermission()
    {
        // Unkey answers a missing read_api alike whether the key can verify ApiId's keys or not: not a reason to take
        // every replica out of rotation (a key without verify_key shows as NOT_FOUND on traffic).
        _stub.AddApi("api_other");
        _stub.SetRootKey("unkey_otherApiOnly", ["api.api_other.verify_key", "api.api_other.read_key", "api.api_other.read_api"]);

        var entry = await CheckAsync(rootKey: "unkey_otherApiOnly");

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        AssertGeneric(entry.Description);
        Assert.Contains($"the root key lacks api.{UnkeyStub.ApiId}.read_api", Logged(8332), StringComparison.Ordinal);
        Assert.DoesNotContain(_logs.Entries, e => e.EventId.Id == 8330);
    }

    [Fact]
    public async Task RootKeyWithoutReadApi_ButVerifyKey_IsDegraded()
    {
        _stub.SetRootKeyPermissions([.. UnkeyStub.PortalPermissions.Where(p => !p.EndsWith(".read_api", StringComparison.Ordinal))]);

        var entry = await CheckAsync();

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(UnkeyHealthCheck.LacksReadPermissionReason, entry.Description);
        Assert.Contains($"the root key lacks api.{UnkeyStub.ApiId}.read_api", Logged(8332), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RootKeyWithoutReadKey_IsDegraded_LoggingIt_ThoughUnkeyAnswers404()
    {
        _stub.SetRootKeyPermissions([.. UnkeyStub.PortalPermissions.Where(p => !p.EndsWith(".read_key", StringComparison.Ordinal))]);

        var entry = await CheckAsync();

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(UnkeyHealthCheck.LacksReadPermissionReason, entry.Description);
        Assert.Contains($"the root key lacks api.{UnkeyStub.ApiId}.read_key", Logged(8332), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ApiIdOfNoApi_IsUnhealthy_LoggingTheSetting()
    {
        _stub.SetRootKey("unkey_wide", ["api.*.read_api", "api.*.read_key"]);

        var entry = await CheckAsync(rootKey: "unkey_wide", apiId: "api_missing1");

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Equal(UnkeyHealthCheck.MisconfiguredReason, entry.Description);
        Assert.Contains("Cortensor:Unkey:ApiId", Logged(8330), StringComparison.Ordinal);
        Assert.DoesNotContain("api_missing1", entry.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnkeyDown_IsDegraded_NotUnhealthy()
    {
        _stub.Outage = new StubFault(503);

        var entry = await CheckAsync();

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(UnkeyHealthCheck.UnreachableReason, entry.Description);
    }

    [Fact]
    public async Task Verdict_IsReusedForTheProbeInterval()
    {
        await CheckAsync();
        var calls = _stub.Requests;

        await CheckAsync();
        Assert.Equal(calls, _stub.Requests);

        _time.Advance(TimeSpan.FromMinutes(1));
        await CheckAsync();
        Assert.Equal(calls + 2, _stub.Requests);
    }

    [Fact]
    public async Task StartUp_WrongRootKey_IsLoggedAsAnError_WithoutBlockingStart()
    {
        var services = Services(rootKey: "unkey_notARootKey123");
        var hosted = Assert.Single(services.GetServices<IHostedService>(), s => s.GetType().Name == "UnkeyStartupProbe");

        await hosted.StartAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!_logs.Entries.Any(e => e.EventId.Id == 8330) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        await hosted.StopAsync(CancellationToken.None);
        var logged = Assert.Single(_logs.Entries, e => e.EventId.Id == 8330);
        Assert.Equal(LogLevel.Error, logged.Level);
        Assert.Contains("Cortensor:Unkey:RootKey", logged.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void AddCortensorUnkey_Twice_RegistersTheCheckOnce()
    {
        var services = new ServiceCollection();
        services.AddCortensorUnkey(o => o.ApiId = "api_1234");
        services.AddCortensorUnkey(o => o.RootKey = "unkey_1");
        using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<HealthCheckServiceOptions>>().Value;
        Assert.Single(options.Registrations, r => r.Name == UnkeyHealthCheck.Name);
        Assert.Single(provider.GetServices<IHostedService>(), s => s.GetType().Name == "UnkeyStartupProbe");
    }
}
