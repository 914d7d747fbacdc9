using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Tests.Routing;

public sealed class FleetRuntimeTests
{
    private static ServiceProvider Build(Action<FleetOptions>? configure)
    {
        var services = new ServiceCollection().AddLogging();
        var fleet = services.AddCortensorFleet();
        if (configure is not null)
        {
            fleet.Configure(configure);
        }

        return services.BuildServiceProvider();
    }

    private static void TwoRouters(FleetOptions o)
    {
        o.Routers["a"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.1:5010"), ApiKey = "ka" };
        o.Routers["b"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.2:5010"), ApiKey = "kb", ApiVersion = "v3" };
        o.Pools["p"] = new PoolOptions
        {
            PromptFormat = PromptFormat.Llama3,
            Members = [new PoolMemberOptions { Router = "a", SessionId = 1 }, new PoolMemberOptions { Router = "b", SessionId = 2 }],
        };
        o.Models["m"] = new ModelOptions { Pool = "p", ContextTokens = 100, MaxOutputTokens = 10 };
    }

    [Fact]
    public void TrySelect_TwoMembers_AlternatesRoundRobin()
    {
        using var sp = Build(TwoRouters);
        var selector = sp.GetRequiredService<IRouterSelector>();

        var picks = Enumerable.Range(0, 6).Select(_ => selector.TrySelect("p", out var t) ? t.ToString() : "none").ToList();

        Assert.Equal(["a/1", "b/2", "a/1", "b/2", "a/1", "b/2"], picks);
    }

    [Fact]
    public void TrySelect_Target_CarriesRouterSettings()
    {
        using var sp = Build(TwoRouters);
        var selector = sp.GetRequiredService<IRouterSelector>();
        selector.TrySelect("p", out _);

        Assert.True(selector.TrySelect("p", out var target));

        Assert.Equal("b", target.RouterId);
        Assert.Equal(new Uri("http://10.0.0.2:5010"), target.BaseUrl);
        Assert.Equal("kb", target.ApiKey);
        Assert.Equal("v3", target.ApiVersion);
        Assert.Equal(2, target.SessionId);
    }

    [Fact]
    public void TrySelect_DisabledMemberAndDisabledRouter_AreSkipped()
    {
        using var sp = Build(o =>
        {
            TwoRouters(o);
            o.Routers["c"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.3:5010"), Enabled = false };
            o.Pools["p"].Members.Add(new PoolMemberOptions { Router = "c", SessionId = 3 });
            o.Pools["p"].Members[0].Enabled = false;
        });
        var selector = sp.GetRequiredService<IRouterSelector>();

        var picks = Enumerable.Range(0, 4).Select(_ => selector.TrySelect("p", out var t) ? t.RouterId : "none").Distinct().ToList();

        Assert.Equal(["b"], picks);
    }

    [Fact]
    public void TrySelect_UnknownOrEmptyPool_ReturnsFalse()
    {
        using var sp = Build(o =>
        {
            TwoRouters(o);
            o.Pools["empty"] = new PoolOptions();
        });
        var selector = sp.GetRequiredService<IRouterSelector>();

        Assert.False(selector.TrySelect("empty", out _));
        Assert.False(selector.TrySelect("nope", out _));
    }

    [Fact]
    public void Catalog_ListsEnabledModelsOfEnabledPoolsWithPoolSettings()
    {
        using var sp = Build(o =>
        {
            TwoRouters(o);
            o.Models["off"] = new ModelOptions { Pool = "p", Enabled = false };
            o.Pools["closed"] = new PoolOptions { Enabled = false, Members = [new PoolMemberOptions { Router = "a", SessionId = 9 }] };
            o.Models["in-closed-pool"] = new ModelOptions { Pool = "closed" };
        });
        var catalog = sp.GetRequiredService<IModelCatalog>();

        Assert.Equal(["m"], catalog.Models.Select(m => m.Alias));
        Assert.True(catalog.TryGetModel("M", out var model)); // aliases are case-insensitive
        Assert.Equal(PromptFormat.Llama3, model.PromptFormat);
        Assert.Equal(1, model.PromptType); // templated format → raw
        Assert.Equal(10, model.MaxOutputTokens);
        Assert.False(catalog.TryGetModel("off", out _));
        Assert.False(catalog.TryGetModel("in-closed-pool", out _));
    }

    [Fact]
    public void Catalog_ConfigurationReload_IsPickedUpWithoutRestart()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Routers:a:BaseUrl"] = "http://10.0.0.1:5010",
            ["Pools:p:Members:0:Router"] = "a",
            ["Pools:p:Members:0:SessionId"] = "1",
            ["Models:m:Pool"] = "p",
            ["Models:n:Pool"] = "p",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(configuration);
        using var sp = services.BuildServiceProvider();
        var catalog = sp.GetRequiredService<IModelCatalog>();
        Assert.Equal(["m", "n"], catalog.Models.Select(m => m.Alias));

        configuration["Models:m:Enabled"] = "false";
        configuration.Reload();

        Assert.Equal(["n"], catalog.Models.Select(m => m.Alias));
        Assert.False(catalog.TryGetModel("m", out _));
    }

    [Fact]
    public void Defaults_NothingConfigured_ServesProductCatalogFromSimulatedRouters()
    {
        using var sp = Build(configure: null);
        var options = sp.GetRequiredService<IOptions<FleetOptions>>().Value;
        var catalog = sp.GetRequiredService<IModelCatalog>();

        Assert.Equal(["gemma-4-26b", "gpt-oss-120b", "gpt-oss-20b", "qwen-3.5-9b"], catalog.Models.Select(m => m.Alias));
        Assert.All(options.Routers.Values, r => Assert.True(r.Simulated));
        Assert.True(catalog.TryGetModel("gpt-oss-20b", out var oss));
        Assert.Equal("oss-20b", oss.Pool);
        Assert.Equal(PromptFormat.Harmony, oss.PromptFormat);
        Assert.True(catalog.TryGetModel("qwen-3.5-9b", out var qwen));
        Assert.Equal(PromptFormat.ChatML, qwen.PromptFormat);
    }

    [Fact]
    public void Defaults_SomethingConfigured_AreNotMixedIn()
    {
        using var sp = Build(TwoRouters);

        Assert.Equal(["m"], sp.GetRequiredService<IModelCatalog>().Models.Select(m => m.Alias));
    }

    [Fact]
    public async Task SimulatedRouters_AfterHostStart_AreSelectableOnLoopback()
    {
        await using var sp = Build(configure: null);
        var hosted = sp.GetServices<IHostedService>().ToList();
        foreach (var service in hosted)
        {
            await service.StartAsync(CancellationToken.None);
        }

        try
        {
            Assert.True(sp.GetRequiredService<IRouterSelector>().TrySelect("qwen", out var target));
            Assert.Equal("127.0.0.1", target.BaseUrl.Host);
            Assert.StartsWith("sim_", target.ApiKey, StringComparison.Ordinal);
            Assert.Equal(FleetDefaults.SimulatedSessions["qwen"], target.SessionId);
        }
        finally
        {
            foreach (var service in hosted)
            {
                await service.StopAsync(CancellationToken.None);
            }
        }
    }

    [Fact]
    public void SimulatedRouters_BeforeHostStart_AreNotSelectable()
    {
        using var sp = Build(configure: null);

        Assert.False(sp.GetRequiredService<IRouterSelector>().TrySelect("qwen", out _));
    }
}
