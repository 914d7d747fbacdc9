using System.Net;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Keys;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
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

    private GatewayHost(WebApplication app, FakeRouterClient router, FakeTimeProvider time, Uri? kestrelAddress, bool http2Only)
    {
        _app = app;
        Router = router;
        Time = time;
        KestrelAddress = kestrelAddress;
        Client = kestrelAddress is null ? app.GetTestClient()
            : http2Only ? new HttpClient { BaseAddress = kestrelAddress, DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact }
            : new HttpClient { BaseAddress = kestrelAddress };
    }

    public HttpClient Client { get; }

    public FakeRouterClient Router { get; }

    public FakeTimeProvider Time { get; }

    public IApiKeyProvider Keys => _app.Services.GetRequiredService<IApiKeyProvider>();

    public IServiceProvider Services => _app.Services;

    /// <summary>Where the real Kestrel server listens (127.0.0.1, a free port), when started with <c>kestrel: true</c>.</summary>
    public Uri? KestrelAddress { get; }

    /// <param name="configure">Extra service registrations, applied last.</param>
    /// <param name="kestrel">A real Kestrel server on 127.0.0.1 instead of the in-memory TestServer (for server limits).</param>
    /// <param name="http2Only">
    /// With <paramref name="kestrel"/>: the endpoint speaks only HTTP/2 without TLS (h2c with prior knowledge), and
    /// <see cref="Client"/> sends HTTP/2 and nothing else.
    /// </param>
    public static async Task<GatewayHost> StartAsync(Action<IServiceCollection>? configure = null, bool kestrel = false, bool http2Only = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        if (kestrel)
        {
            builder.WebHost.UseKestrel(o => o.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = http2Only ? HttpProtocols.Http2 : HttpProtocols.Http1AndHttp2));
        }
        else
        {
            builder.WebHost.UseTestServer();
        }

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
        var address = kestrel ? new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()) : null;
        return new GatewayHost(app, router, time, address, http2Only);
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
