using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Keys;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Gateway.Tests.Support;

/// <summary>
/// A minimal app with the gateway on a TestServer, one configured router behind a <see cref="FakeRouterClient"/>,
/// and a fake clock. Models: <c>m1</c> (enabled), <c>m-disabled</c>, <c>m-empty</c> (pool without members).
/// </summary>
internal sealed class GatewayHost : IAsyncDisposable
{
    public const string RouterKey = "router-secret-KEY-never-shown";
    public const string RouterUrl = "http://router-internal.example:5010";

    private readonly WebApplication _app;

    private GatewayHost(WebApplication app, FakeRouterClient router, FakeTimeProvider time)
    {
        _app = app;
        Router = router;
        Time = time;
        Client = app.GetTestClient();
    }

    public HttpClient Client { get; }

    public FakeRouterClient Router { get; }

    public FakeTimeProvider Time { get; }

    public IApiKeyProvider Keys => _app.Services.GetRequiredService<IApiKeyProvider>();

    public IServiceProvider Services => _app.Services;

    public static async Task<GatewayHost> StartAsync(Action<IServiceCollection>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
        var router = new FakeRouterClient();
        builder.Services.AddSingleton<TimeProvider>(time);
        builder.Services.AddCortensorGateway(o => o.MaxRequestBodyBytes = 4096)
            .Fleet.Configure(fleet =>
            {
                fleet.Routers["r1"] = new RouterOptions { BaseUrl = new Uri(RouterUrl), ApiKey = RouterKey };
                fleet.Pools["p1"] = new PoolOptions { PromptFormat = PromptFormat.ChatML, Members = [new PoolMemberOptions { Router = "r1", SessionId = 7 }] };
                fleet.Pools["p-empty"] = new PoolOptions { Members = [] };
                fleet.Models["m1"] = new ModelOptions { Pool = "p1", ContextTokens = 1000, MaxOutputTokens = 100 };
                fleet.Models["m-disabled"] = new ModelOptions { Pool = "p1", Enabled = false };
                fleet.Models["m-empty"] = new ModelOptions { Pool = "p-empty" };
            });
        builder.Services.AddSingleton<IRouterProtocolClient>(router);
        configure?.Invoke(builder.Services);

        var app = builder.Build();
        app.MapCortensorGateway();
        await app.StartAsync();
        return new GatewayHost(app, router, time);
    }

    public async Task<string> IssueKeyAsync(IReadOnlyList<string>? allowedModels = null, DateTimeOffset? expiresAt = null, string orgId = "org_test")
    {
        var issued = await Keys.IssueAsync(new IssueApiKeyRequest { OrgId = orgId, AllowedModels = allowedModels, ExpiresAt = expiresAt });
        return issued.Secret;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
