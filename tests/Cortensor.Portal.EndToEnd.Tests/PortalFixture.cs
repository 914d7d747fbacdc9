using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Fleet.Simulator;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Keys;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// The portal host (the template's content) on a real loopback socket, on embedded defaults: the default catalog
/// served by simulated routers over HTTP (Cortensor:Fleet:UseSimulatedRouters) and the printed development key
/// (Cortensor:DevelopmentKey:Enabled), both set explicitly. Extra fault pools are added for the error cases.
/// </summary>
public sealed class PortalFixture : WebApplicationFactory<Program>, IAsyncLifetime
{
    private readonly StringWriter _bootstrapOutput = new();
    private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cportal-e2e-" + Guid.NewGuid().ToString("N")[..8]);

    public Uri BaseUrl { get; private set; } = null!;

    /// <summary>The key the host printed on start.</summary>
    public string DevKey { get; private set; } = null!;

    public string BootstrapOutput => _bootstrapOutput.ToString();

    /// <summary>An OpenAI-compatible upstream behind the <c>m-upstream</c> alias.</summary>
    public FakeOpenAIUpstream Upstream { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    /// <summary>Every log line the host wrote, at every level.</summary>
    public CapturingLoggerProvider Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        builder.UseSetting("Cortensor:Storage:DataDirectory", _dataDirectory); // a fresh SQLite file per run
        // Chosen explicitly, as Production gets neither by default: the simulated catalog and the printed key.
        builder.UseSetting("Cortensor:Fleet:UseSimulatedRouters", "true");
        builder.UseSetting("Cortensor:DevelopmentKey:Enabled", "true");
        builder.ConfigureLogging(logging =>
        {
            logging.AddProvider(Logs);
            logging.SetMinimumLevel(LogLevel.Trace);
        });
        builder.ConfigureServices(services =>
        {
            services.Configure<DevelopmentBootstrapOptions>(o => o.Output = _bootstrapOutput);
            services.Configure<CortensorGatewayOptions>(o => o.MaxRequestBodyBytes = 64 * 1024);
            services.PostConfigure<FleetOptions>(fleet =>
            {
                AddFaultPool(fleet, "m-down", new SimulatedRouterSettings { ErrorRate = 1, ErrorStatusCode = 503 });
                AddFaultPool(fleet, "m-broken", new SimulatedRouterSettings { ErrorRate = 1, ErrorStatusCode = 500, PlainTextErrors = true });
                AddFaultPool(fleet, "m-slow", new SimulatedRouterSettings { LatencyMs = 4000 }, taskTimeoutSeconds: 1);
                AddFaultPool(fleet, "m-trickle", new SimulatedRouterSettings { TokensPerSecond = 4 });
                fleet.Routers["vllm-1"] = new RouterOptions { BaseUrl = new Uri(Upstream.BaseUrl, "/v1"), ApiKey = FakeOpenAIUpstream.ApiKey, Protocol = RouterProtocol.OpenAICompatible };
                fleet.Pools["vllm"] = new PoolOptions { UpstreamModel = "Qwen/Test-9B", Members = [new PoolMemberOptions { Router = "vllm-1" }] };
                fleet.Models["m-upstream"] = new ModelOptions { Pool = "vllm" };
            });
        });
        UseKestrel(0);
    }

    private static void AddFaultPool(FleetOptions fleet, string alias, SimulatedRouterSettings settings, int taskTimeoutSeconds = 30)
    {
        var name = "fault-" + alias;
        fleet.Routers[name] = new RouterOptions { Simulated = true, Simulator = settings };
        fleet.Pools[name] = new PoolOptions
        {
            PromptFormat = Fleet.Prompts.PromptFormat.ChatML,
            TaskTimeoutSeconds = taskTimeoutSeconds,
            HttpTimeoutSlackSeconds = 0,
            Members = [new PoolMemberOptions { Router = name, SessionId = 9 }],
        };
        fleet.Models[alias] = new ModelOptions { Pool = name };
    }

    public RouterSimulatorServer Simulator(string routerId)
        => Services.GetRequiredService<ISimulatedRouterDirectory>().TryGetServer(routerId, out var server)
            ? server
            : throw new InvalidOperationException($"No simulator for {routerId}");

    public async Task<string> IssueKeyAsync(IReadOnlyList<string>? allowedModels = null)
    {
        var keys = Services.GetRequiredService<IApiKeyProvider>();
        var issued = await keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_e2e", AllowedModels = allowedModels });
        return issued.Secret;
    }

    public async Task InitializeAsync()
    {
        Upstream = await FakeOpenAIUpstream.StartAsync();
        StartServer();
        Http = CreateClient();
        BaseUrl = Http.BaseAddress!;
        var line = BootstrapOutput.Split('\n').Single(l => l.StartsWith(DevelopmentBootstrapOptions.KeyLinePrefix, StringComparison.Ordinal));
        DevKey = line[DevelopmentBootstrapOptions.KeyLinePrefix.Length..].Trim();
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        Http.Dispose();
        await Upstream.DisposeAsync();
        await base.DisposeAsync();
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class PortalCollection : ICollectionFixture<PortalFixture>
{
    public const string Name = "portal";
}
