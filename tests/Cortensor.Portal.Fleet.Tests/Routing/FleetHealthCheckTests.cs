using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Internal;

namespace Cortensor.Portal.Fleet.Tests.Routing;

/// <summary>The <c>fleet</c> readiness check, run through the health check service <c>AddCortensorFleet</c> sets up.</summary>
public sealed class FleetHealthCheckTests
{
    private static ServiceProvider Build(Action<FleetOptions> configure)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(configure);
        services.AddHealthChecks(); // the service that runs registered checks (AddCortensorGateway adds it in a host)
        return services.BuildServiceProvider();
    }

    private static ServiceProvider BuildInEnvironment(string environmentName, Action<FleetOptions> configure)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddSingleton<IHostEnvironment>(new HostingEnvironment { EnvironmentName = environmentName });
        services.AddCortensorFleet().Configure(configure);
        services.AddHealthChecks();
        return services.BuildServiceProvider();
    }

    // What the host does on start: the simulator host starts one loopback simulator per simulated router.
    private static async Task StartSimulatorsAsync(ServiceProvider sp)
    {
        foreach (var hosted in sp.GetServices<IHostedService>())
        {
            await hosted.StartAsync(CancellationToken.None);
        }
    }

    private static void TwoModels(FleetOptions o)
    {
        o.Routers["router-a"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.1:5010"), ApiKey = "secret-a" };
        o.Routers["router-b"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.2:5010"), ApiKey = "secret-b" };
        o.Pools["pool-a"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "router-a", SessionId = 1 }] };
        o.Pools["pool-b"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "router-b", SessionId = 2 }] };
        o.Models["alpha"] = new ModelOptions { Pool = "pool-a" };
        o.Models["beta"] = new ModelOptions { Pool = "pool-b" };
    }

    private static async Task<HealthReportEntry> RunAsync(ServiceProvider sp)
    {
        var report = await sp.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        return report.Entries[FleetHealthCheck.Name];
    }

    [Fact]
    public async Task Check_Data_HoldsEachPoolsStreamLoad()
    {
        await using var sp = Build(o =>
        {
            TwoModels(o);
            o.Pools["pool-b"].RouterQueues = RouterQueueMode.NonBlocking;
        });
        var leases = sp.GetRequiredService<IStreamLeases>();
        Assert.True(sp.GetRequiredService<IRouterSelector>().TrySelect("pool-a", out var target));
        using var open = await leases.AcquireAsync("pool-a", target, CancellationToken.None);

        var entry = await RunAsync(sp);

        var a = Assert.IsType<PoolStreamLoad>(entry.Data["streams:pool-a"]);
        Assert.Equal(RouterQueueMode.Blocking, a.Mode);
        Assert.Equal(1, a.StreamCapacity); // one session: one stream at a time
        Assert.Equal(1, a.OpenStreams);
        var b = Assert.IsType<PoolStreamLoad>(entry.Data["streams:pool-b"]);
        Assert.Equal(RouterQueueMode.NonBlocking, b.Mode);
        Assert.Null(b.StreamCapacity);
        Assert.Equal(0, b.OpenStreams);
    }

    [Fact]
    public async Task Check_EveryModelHasAnEnabledRouter_Healthy()
    {
        await using var sp = Build(TwoModels);

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Healthy, entry.Status);
    }

    [Fact]
    public async Task Check_ModelWhoseOnlyRouterIsDisabled_DegradedNamingOnlyThatAlias()
    {
        await using var sp = Build(o =>
        {
            TwoModels(o);
            o.Routers["router-b"].Enabled = false;
        });

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal("no router can serve model(s): beta", entry.Description);
    }

    [Fact]
    public async Task Check_ModelWhoseOnlyMemberIsDisabled_Degraded()
    {
        await using var sp = Build(o =>
        {
            TwoModels(o);
            o.Pools["pool-a"].Members[0].Enabled = false;
        });

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal("no router can serve model(s): alpha", entry.Description);
    }

    [Fact]
    public async Task Check_EveryRouterDisabled_Unhealthy_WithoutRouterIdsOrAddresses()
    {
        await using var sp = Build(o =>
        {
            TwoModels(o);
            o.Routers["router-a"].Enabled = false;
            o.Routers["router-b"].Enabled = false;
        });

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Unhealthy, entry.Status);
        Assert.Equal("no router can serve model(s): alpha, beta", entry.Description);
        foreach (var hidden in new[] { "router-", "pool-", "10.0.0", "secret" })
        {
            Assert.DoesNotContain(hidden, entry.Description, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Check_SimulatedRouterNotStarted_CountsAsUnroutable()
    {
        // No host runs, so the simulator never starts: its model cannot be served yet.
        await using var sp = Build(o =>
        {
            TwoModels(o);
            o.Routers["sim"] = new RouterOptions { Simulated = true };
            o.Pools["pool-sim"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "sim", SessionId = 3 }] };
            o.Models["gamma"] = new ModelOptions { Pool = "pool-sim" };
        });

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal("no router can serve model(s): gamma", entry.Description);
        Assert.Equal(0, sp.GetRequiredService<IPoolRoutability>().CountRoutableMembers("pool-sim"));
        Assert.Equal(1, sp.GetRequiredService<IPoolRoutability>().CountRoutableMembers("pool-a"));
    }

    [Theory]
    [InlineData("Production")]
    [InlineData("Staging")]
    public async Task Check_SimulatedRoutersRunningOutsideDevelopment_DegradedNamingTheSetting(string environmentName)
    {
        await using var sp = BuildInEnvironment(environmentName, o => o.UseSimulatedRouters = true);
        await StartSimulatorsAsync(sp);

        var entry = await RunAsync(sp);

        // Every model is routable, but only to canned answers: ready would hide an outage that looks like success.
        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(
            "routers are simulated (Cortensor:Fleet:UseSimulatedRouters), canned answers for model(s): gemma-4-26b, gpt-oss-120b, gpt-oss-20b, qwen-3.5-9b",
            entry.Description);
        Assert.DoesNotContain("127.0.0.1", entry.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_SimulatedRoutersRunningInDevelopment_Healthy()
    {
        await using var sp = BuildInEnvironment(Environments.Development, o => o.UseSimulatedRouters = true);
        await StartSimulatorsAsync(sp);

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Healthy, entry.Status);
    }

    [Fact]
    public async Task Check_OneSimulatedRouterBesideRealOnesInProduction_DegradedNamingOnlyItsModel()
    {
        await using var sp = BuildInEnvironment(Environments.Production, o =>
        {
            TwoModels(o);
            o.Routers["sim"] = new RouterOptions { Simulated = true };
            o.Pools["pool-sim"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "sim", SessionId = 3 }] };
            o.Models["gamma"] = new ModelOptions { Pool = "pool-sim" };
            o.Routers["router-b"].Enabled = false;
        });
        await StartSimulatorsAsync(sp);

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Degraded, entry.Status);
        Assert.Equal(
            "no router can serve model(s): beta; routers are simulated (Cortensor:Fleet:UseSimulatedRouters), canned answers for model(s): gamma",
            entry.Description);
        Assert.Equal(1, sp.GetRequiredService<IPoolRoutability>().CountSimulatedRoutableMembers("pool-sim"));
        Assert.Equal(0, sp.GetRequiredService<IPoolRoutability>().CountSimulatedRoutableMembers("pool-a"));
    }

    [Fact]
    public async Task Check_RealRoutersOnlyInProduction_Healthy()
    {
        await using var sp = BuildInEnvironment(Environments.Production, TwoModels);
        await StartSimulatorsAsync(sp);

        var entry = await RunAsync(sp);

        Assert.Equal(HealthStatus.Healthy, entry.Status);
    }

    [Fact]
    public void AddCortensorFleet_CalledTwice_RegistersTheCheckOnce()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet();
        services.AddCortensorFleet();
        using var sp = services.BuildServiceProvider();

        var names = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<HealthCheckServiceOptions>>().Value.Registrations.Select(r => r.Name);

        Assert.Equal([FleetHealthCheck.Name], names);
    }
}
