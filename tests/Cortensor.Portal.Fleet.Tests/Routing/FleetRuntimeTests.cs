using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Tests.Routing;

public sealed class FleetRuntimeTests
{
    private static void Simulated(FleetOptions o) => o.UseSimulatedRouters = true;

    private static ServiceProvider Build(Action<FleetOptions>? configure, FakeLogCollector? logs = null)
    {
        var services = new ServiceCollection();
        if (logs is null)
        {
            services.AddLogging();
        }
        else
        {
            services.AddSingleton(logs).AddLogging(l => l.AddProvider(new FakeLoggerProvider(logs)));
        }

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
            ["Routers:a:ApiKey"] = "ka",
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
    public void Defaults_NothingConfiguredAndNoSwitch_RefuseToStartNamingTheSwitch()
    {
        using var sp = Build(configure: null);

        var error = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<FleetOptions>>().Value);

        Assert.Contains(error.Failures, f => f.Contains("No routers are configured under Cortensor:Fleet:Routers", StringComparison.Ordinal)
            && f.Contains("Cortensor:Fleet:UseSimulatedRouters=true", StringComparison.Ordinal)
            && f.Contains("Cortensor__Fleet__UseSimulatedRouters=true", StringComparison.Ordinal));
    }

    [Fact]
    public void Defaults_MistypedSection_RefuseToStart()
    {
        // "Router" for "Routers", "UseSimulatedRouter" for "UseSimulatedRouters": neither is read, so nothing is configured.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Router:a:BaseUrl"] = "http://10.0.0.1:5010",
            ["UseSimulatedRouter"] = "true",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(configuration);
        using var sp = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IModelCatalog>());

        Assert.Contains(error.Failures, f => f.Contains("No routers are configured", StringComparison.Ordinal));
    }

    [Fact]
    public void Defaults_SwitchFromConfiguration_ServesSimulatedCatalog()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["UseSimulatedRouters"] = "true",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(configuration);
        using var sp = services.BuildServiceProvider();

        Assert.Equal(4, sp.GetRequiredService<IModelCatalog>().Models.Count);
    }

    [Fact]
    public void Defaults_SwitchWithPoolsButNoRouters_RefuseToStart()
    {
        using var sp = Build(o =>
        {
            o.UseSimulatedRouters = true;
            o.Pools["p"] = new PoolOptions();
        });

        var error = Assert.Throws<OptionsValidationException>(() => sp.GetRequiredService<IOptions<FleetOptions>>().Value);

        Assert.Contains(error.Failures, f => f.Contains("UseSimulatedRouters serves the built-in catalog only when", StringComparison.Ordinal));
    }

    [Fact]
    public void Defaults_UseSimulatedRoutersBuilderCall_SetsTheSwitch()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().UseSimulatedRouters();
        using var sp = services.BuildServiceProvider();

        Assert.True(sp.GetRequiredService<IOptions<FleetOptions>>().Value.UseSimulatedRouters);
        Assert.Equal(4, sp.GetRequiredService<IModelCatalog>().Models.Count);
    }

    [Fact]
    public void Defaults_NothingConfigured_ServesProductCatalogFromSimulatedRouters()
    {
        using var sp = Build(Simulated);
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
        using var sp = Build(o =>
        {
            Simulated(o);
            TwoRouters(o);
        });

        Assert.Equal(["m"], sp.GetRequiredService<IModelCatalog>().Models.Select(m => m.Alias));
        Assert.DoesNotContain(sp.GetRequiredService<IOptions<FleetOptions>>().Value.Routers.Values, r => r.Simulated);
    }

    [Fact]
    public async Task SimulatedRouters_OnHostStart_LogAWarningNamingThem()
    {
        var logs = new FakeLogCollector();
        await using var sp = Build(Simulated, logs);
        var hosted = sp.GetServices<IHostedService>().ToList();
        foreach (var service in hosted)
        {
            await service.StartAsync(CancellationToken.None);
        }

        try
        {
            var warning = Assert.Single(logs.GetSnapshot(), r => r.Id.Name == "RoutersSimulated");
            Assert.Equal(LogLevel.Warning, warning.Level);
            Assert.Contains("ROUTERS ARE SIMULATED", warning.Message, StringComparison.Ordinal);
            Assert.Contains("sim-a, sim-b", warning.Message, StringComparison.Ordinal);
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
    public async Task RealRouters_OnHostStart_LogNoSimulatedWarning()
    {
        var logs = new FakeLogCollector();
        await using var sp = Build(o =>
        {
            Simulated(o); // set, but the configured routers win
            TwoRouters(o);
        }, logs);
        foreach (var service in sp.GetServices<IHostedService>())
        {
            await service.StartAsync(CancellationToken.None);
        }

        Assert.DoesNotContain(logs.GetSnapshot(), r => r.Level >= LogLevel.Warning);
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Name == "SimulatedRoutersSwitchIgnored");
    }

    [Fact]
    public async Task SimulatedRouters_AfterHostStart_AreSelectableOnLoopback()
    {
        await using var sp = Build(Simulated);
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
    public void UnknownSession_MemberLeftOutOfSelectionAndRoutabilityUntilCooldownEnds()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var services = new ServiceCollection().AddLogging().AddSingleton<TimeProvider>(time);
        services.AddCortensorFleet().Configure(o =>
        {
            TwoRouters(o);
            o.UnknownSessionCooldownSeconds = 30;
        });
        using var sp = services.BuildServiceProvider();
        var selector = sp.GetRequiredService<IRouterSelector>();
        var routability = sp.GetRequiredService<IPoolRoutability>();
        Assert.True(selector.TrySelect("p", out var a));
        Assert.Equal("a/1", a.ToString());

        sp.GetRequiredService<IRouterMemberHealth>().ReportUnknownSession(a);

        var picks = Enumerable.Range(0, 4).Select(_ => selector.TrySelect("p", out var t) ? t.ToString() : "none").ToList();
        Assert.Equal(["b/2", "b/2", "b/2", "b/2"], picks);
        Assert.Equal(1, routability.CountRoutableMembers("p"));
        Assert.False(selector.TrySelectOther("p", Target("b", 2), out _)); // a is held out and b is the failed one

        time.Advance(TimeSpan.FromSeconds(31));

        Assert.Equal(2, routability.CountRoutableMembers("p"));
        var later = Enumerable.Range(0, 2).Select(_ => selector.TrySelect("p", out var t) ? t.ToString() : "none").Order().ToList();
        Assert.Equal(["a/1", "b/2"], later);
    }

    [Fact]
    public void TrySelectOther_NeverReturnsTheFailedMember()
    {
        using var sp = Build(TwoRouters);
        var selector = sp.GetRequiredService<IRouterSelector>();

        for (var i = 0; i < 4; i++)
        {
            Assert.True(selector.TrySelectOther("p", Target("a", 1), out var other));
            Assert.Equal("b/2", other.ToString());
        }

        Assert.True(selector.TrySelect("p", out _));
    }

    [Fact]
    public void TrySelect_Target_CarriesConfiguredUrlForm()
    {
        using var sp = Build(o =>
        {
            TwoRouters(o);
            o.Routers["b"].UrlForm = CortensorUrlForm.Body;
        });
        var selector = sp.GetRequiredService<IRouterSelector>();

        var forms = Enumerable.Range(0, 2).Select(_ => selector.TrySelect("p", out var t) ? (t.RouterId, t.UrlForm) : default).ToList();

        Assert.Equal([("a", CortensorUrlForm.Path), ("b", CortensorUrlForm.Body)], forms);
    }

    private static Cortensor.Portal.Fleet.Protocols.RouterTarget Target(string router, long session) =>
        new() { RouterId = router, BaseUrl = new Uri("http://unused.example"), SessionId = session };

    [Fact]
    public void SimulatedRouters_BeforeHostStart_AreNotSelectable()
    {
        using var sp = Build(Simulated);

        Assert.False(sp.GetRequiredService<IRouterSelector>().TrySelect("qwen", out _));
    }
}
