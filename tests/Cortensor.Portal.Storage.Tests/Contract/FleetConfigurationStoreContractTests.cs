using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>The behaviour every durable <see cref="IFleetConfigurationStore"/> must show.</summary>
/// <remarks>
/// Beyond the interface docs:
/// <list type="bullet">
/// <item><see cref="RouterOptions.ApiKey"/> is never stored: <see cref="IFleetConfigurationStore.LoadAsync"/> returns it
/// null and <see cref="RouterOptions.ApiKeyRef"/> as saved. Routers need a <see cref="RouterOptions.BaseUrl"/>
/// (<see cref="RouterOptions.Simulated"/> routers live in configuration only).</item>
/// <item><see cref="IFleetConfigurationStore.SavePoolAsync"/> with an unknown member router, and
/// <see cref="IFleetConfigurationStore.SaveModelAsync"/> with an unknown pool, throw <see cref="InvalidOperationException"/>
/// and change nothing. A member list naming the same (router, session) twice throws <see cref="ArgumentException"/>.</item>
/// <item>Member order is kept. Every pool and model field round-trips, including <see cref="PoolOptions.Defaults"/>,
/// <see cref="ModelOptions.OwnedBy"/> and <see cref="ModelOptions.Created"/>.</item>
/// <item>Loaded dictionaries compare keys case-insensitively, as <see cref="FleetOptions"/> does, and what is loaded
/// from consistent data passes the fleet's own validation once the variables its key references name are set.</item>
/// <item>A <see cref="RouterOptions.ApiKeyRef"/> other than <c>env:NAME</c> (<see cref="RouterKeyReference"/>) is
/// refused with <see cref="ArgumentException"/>: the fleet could not resolve it on start.</item>
/// </list>
/// </remarks>
public abstract class FleetConfigurationStoreContractTests : ExtendedStoreContractTests
{
    [Fact]
    public async Task Load_Empty_ReturnsEmptyOptions()
    {
        await using var store = await CreateAsync();

        var loaded = await store.Fleet.LoadAsync();

        Assert.Empty(loaded.Routers);
        Assert.Empty(loaded.Pools);
        Assert.Empty(loaded.Models);
    }

    [Fact]
    public async Task SaveRouter_Simulated_IsRefusedAndNothingStored()
    {
        await using var store = await CreateAsync();

        await Assert.ThrowsAsync<ArgumentException>(() => store.Fleet.SaveRouterAsync(
            "sim", new RouterOptions { Simulated = true, BaseUrl = new Uri("http://127.0.0.1:5010") }));

        Assert.Empty((await store.Fleet.LoadAsync()).Routers);
    }

    [Theory]
    [InlineData("vault:fleet/router-1")]
    [InlineData("ROUTER_1_KEY")]
    [InlineData("env:")]
    public async Task SaveRouter_KeyReferenceTheFleetCannotResolve_IsRefusedAndNothingStored(string reference)
    {
        await using var store = await CreateAsync();

        var ex = await Assert.ThrowsAsync<ArgumentException>(() => store.Fleet.SaveRouterAsync(
            "router-1", NewRouter("http://10.0.0.5:5010", reference)));

        Assert.Contains("env:NAME", ex.Message, StringComparison.Ordinal);
        Assert.Empty((await store.Fleet.LoadAsync()).Routers);
    }

    [Fact]
    public async Task SaveRouter_RoundTripsAllFields_ApiKeyNotKept()
    {
        await using var store = await CreateAsync();
        var openAi = new RouterOptions
        {
            BaseUrl = new Uri("https://vllm.internal:8443/base"),
            ApiKey = "sk-router-secret-1",
            ApiKeyRef = "env:ROUTER_VLLM_KEY",
            Protocol = RouterProtocol.OpenAICompatible,
            ApiVersion = "v2",
            Enabled = false,
        };
        var cortensor = NewRouter("http://10.0.0.5:5010");
        cortensor.UrlForm = CortensorUrlForm.Body;

        await store.Fleet.SaveRouterAsync("router-vllm", openAi);
        await store.Fleet.SaveRouterAsync("router-eu-1", cortensor);

        var loaded = await store.Fleet.LoadAsync();
        Assert.Equal(2, loaded.Routers.Count);
        var vllm = loaded.Routers["router-vllm"];
        Assert.Null(vllm.ApiKey);
        AssertSameRouter(openAi, vllm);
        var eu = loaded.Routers["ROUTER-EU-1"]; // keys compare case-insensitively
        Assert.Null(eu.ApiKeyRef);
        AssertSameRouter(cortensor, eu);
        Assert.Equal("sk-router-secret-1", openAi.ApiKey); // the caller's object is not changed
    }

    [Fact]
    public async Task SaveRouter_Existing_Replaces()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010", "env:OLD"));
        var replaced = new RouterOptions
        {
            BaseUrl = new Uri("http://10.0.0.6:5020"),
            ApiKey = "ignored",
            ApiKeyRef = null,
            Protocol = RouterProtocol.Cortensor,
            ApiVersion = "v3",
            UrlForm = CortensorUrlForm.Body,
            Enabled = false,
        };

        await store.Fleet.SaveRouterAsync("router-1", replaced);

        var loaded = await store.Fleet.LoadAsync();
        AssertSameRouter(replaced, Assert.Single(loaded.Routers).Value);
    }

    [Fact]
    public async Task DeleteRouter_UnusedOrUnknown()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));
        await store.Fleet.SaveRouterAsync("router-2", NewRouter("http://10.0.0.6:5010"));

        Assert.True(await store.Fleet.DeleteRouterAsync("router-1"));
        Assert.False(await store.Fleet.DeleteRouterAsync("router-1"));
        Assert.False(await store.Fleet.DeleteRouterAsync("router-missing"));

        Assert.Equal(["router-2"], (await store.Fleet.LoadAsync()).Routers.Keys);
    }

    [Fact]
    public async Task DeleteRouter_UsedByAPool_ThrowsAndKeepsIt()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));
        await store.Fleet.SavePoolAsync("pool-a", NewPool(("router-1", 7)));

        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Fleet.DeleteRouterAsync("router-1"));

        var loaded = await store.Fleet.LoadAsync();
        Assert.True(loaded.Routers.ContainsKey("router-1"));
        Assert.Equal("router-1", Assert.Single(loaded.Pools["pool-a"].Members).Router);
    }

    [Fact]
    public async Task SavePool_UnknownRouter_ThrowsAndSavesNothing()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));

        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Fleet.SavePoolAsync("pool-a", NewPool(("router-1", 1), ("router-missing", 2))));

        Assert.Empty((await store.Fleet.LoadAsync()).Pools);
    }

    [Fact]
    public async Task SavePool_UnknownRouterOnReplace_KeepsOldPool()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));
        await store.Fleet.SavePoolAsync("pool-a", NewPool(("router-1", 1)));

        var changed = NewPool(("router-missing", 2));
        changed.TaskTimeoutSeconds = 5;
        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Fleet.SavePoolAsync("pool-a", changed));

        var pool = (await store.Fleet.LoadAsync()).Pools["pool-a"];
        Assert.Equal(120, pool.TaskTimeoutSeconds);
        Assert.Equal([("router-1", (long?)1)], pool.Members.Select(m => (m.Router, m.SessionId)));
    }

    [Fact]
    public async Task SavePool_DuplicateMember_ThrowsArgumentException()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));

        await Assert.ThrowsAnyAsync<ArgumentException>(() => store.Fleet.SavePoolAsync("pool-a", NewPool(("router-1", 1), ("router-1", 1))));

        Assert.Empty((await store.Fleet.LoadAsync()).Pools);
    }

    [Fact]
    public async Task SavePool_RoundTripsAllFields()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-eu-1", NewRouter("http://10.0.0.5:5010"));
        await store.Fleet.SaveRouterAsync("router-vllm", new RouterOptions { BaseUrl = new Uri("http://10.0.0.9:8000"), Protocol = RouterProtocol.OpenAICompatible });
        var full = new PoolOptions
        {
            Members =
            [
                new PoolMemberOptions { Router = "router-eu-1", SessionId = 42, Enabled = true },
                new PoolMemberOptions { Router = "router-vllm", SessionId = null, Enabled = false },
                new PoolMemberOptions { Router = "router-eu-1", SessionId = 7, Enabled = true },
            ],
            PromptFormat = PromptFormat.Llama3,
            PromptType = 1,
            TaskTimeoutSeconds = 300,
            PrecommitTimeoutSeconds = 60,
            HttpTimeoutSlackSeconds = 45,
            UpstreamModel = "meta-llama/Llama-3.1-8B-Instruct",
            Defaults = new SamplingDefaults { MaxTokens = 1024, Temperature = 0.7, TopP = 0.95, TopK = 40 },
            RouterQueues = RouterQueueMode.NonBlocking,
            StreamQueueLength = 0,
            StreamQueueWaitSeconds = 600,
            Enabled = false,
        };
        var defaults = new PoolOptions { Members = [new PoolMemberOptions { Router = "router-eu-1", SessionId = 1 }] };
        var empty = new PoolOptions { PromptFormat = PromptFormat.Harmony, Defaults = new SamplingDefaults { MaxTokens = 1, Temperature = 0 } };

        await store.Fleet.SavePoolAsync("pool-full", full);
        await store.Fleet.SavePoolAsync("pool-defaults", defaults);
        await store.Fleet.SavePoolAsync("pool-empty", empty);

        var loaded = await store.Fleet.LoadAsync();
        Assert.Equal(3, loaded.Pools.Count);
        AssertSamePool(full, loaded.Pools["pool-full"]);
        AssertSamePool(defaults, loaded.Pools["POOL-DEFAULTS"]);
        AssertSamePool(empty, loaded.Pools["pool-empty"]);
    }

    [Theory]
    [InlineData(-1, 20)]
    [InlineData(100_001, 20)]
    [InlineData(32, -1)]
    [InlineData(32, 601)]
    public async Task SavePool_StreamQueueOutOfRange_ThrowsArgumentExceptionAndKeepsOldPool(int length, int waitSeconds)
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));
        var original = NewPool(("router-1", 1));
        await store.Fleet.SavePoolAsync("pool-a", original);
        var bad = NewPool(("router-1", 2));
        bad.StreamQueueLength = length;
        bad.StreamQueueWaitSeconds = waitSeconds;

        await Assert.ThrowsAnyAsync<ArgumentException>(() => store.Fleet.SavePoolAsync("pool-a", bad));

        AssertSamePool(original, (await store.Fleet.LoadAsync()).Pools["pool-a"]);
    }

    [Fact]
    public async Task SavePool_Again_ReplacesMemberListAndSettings()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));
        await store.Fleet.SaveRouterAsync("router-2", NewRouter("http://10.0.0.6:5010"));
        await store.Fleet.SaveRouterAsync("router-3", NewRouter("http://10.0.0.7:5010"));
        await store.Fleet.SavePoolAsync("pool-a", NewPool(("router-1", 1), ("router-2", 2), ("router-1", 3)));
        await store.Fleet.SavePoolAsync("pool-b", NewPool(("router-2", 9)));

        var replaced = NewPool(("router-3", 30), ("router-2", 2));
        replaced.Members[1].Enabled = false;
        replaced.PromptFormat = PromptFormat.Gemma;
        replaced.TaskTimeoutSeconds = 60;
        replaced.RouterQueues = RouterQueueMode.NonBlocking;
        replaced.StreamQueueLength = 5;
        replaced.StreamQueueWaitSeconds = 3;
        await store.Fleet.SavePoolAsync("pool-a", replaced);

        var loaded = await store.Fleet.LoadAsync();
        AssertSamePool(replaced, loaded.Pools["pool-a"]);
        Assert.Equal([("router-2", (long?)9)], loaded.Pools["pool-b"].Members.Select(m => (m.Router, m.SessionId)));

        // router-1 is no longer used by any pool.
        Assert.True(await store.Fleet.DeleteRouterAsync("router-1"));
        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Fleet.DeleteRouterAsync("router-2"));
        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Fleet.DeleteRouterAsync("router-3"));
    }

    [Fact]
    public async Task SaveModel_UnknownPool_ThrowsAndSavesNothing()
    {
        await using var store = await CreateAsync();

        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => store.Fleet.SaveModelAsync("llama-3", new ModelOptions { Pool = "pool-missing" }));

        Assert.Empty((await store.Fleet.LoadAsync()).Models);
    }

    [Fact]
    public async Task SaveModel_RoundTripsReplacesAndDeletes()
    {
        await using var store = await CreateAsync();
        await store.Fleet.SaveRouterAsync("router-1", NewRouter("http://10.0.0.5:5010"));
        await store.Fleet.SavePoolAsync("pool-a", NewPool(("router-1", 1)));
        await store.Fleet.SavePoolAsync("pool-b", NewPool(("router-1", 2)));
        var full = new ModelOptions
        {
            Pool = "pool-a",
            ContextTokens = 131_072,
            MaxOutputTokens = 8_192,
            Enabled = false,
            OwnedBy = "meta",
            Created = 1_721_692_800,
        };
        var defaults = new ModelOptions { Pool = "pool-b" };

        await store.Fleet.SaveModelAsync("llama-3.1-8b", full);
        await store.Fleet.SaveModelAsync("qwen/qwen2.5:7b", defaults);

        var loaded = await store.Fleet.LoadAsync();
        AssertSameModel(full, loaded.Models["LLAMA-3.1-8B"]);
        AssertSameModel(defaults, loaded.Models["qwen/qwen2.5:7b"]);

        var replaced = new ModelOptions { Pool = "pool-b", ContextTokens = 4096, MaxOutputTokens = 512, Enabled = true, OwnedBy = "cortensor", Created = 1 };
        await store.Fleet.SaveModelAsync("llama-3.1-8b", replaced);
        AssertSameModel(replaced, (await store.Fleet.LoadAsync()).Models["llama-3.1-8b"]);

        Assert.True(await store.Fleet.DeleteModelAsync("llama-3.1-8b"));
        Assert.False(await store.Fleet.DeleteModelAsync("llama-3.1-8b"));
        Assert.False(await store.Fleet.DeleteModelAsync("model-missing"));
        Assert.Equal(["qwen/qwen2.5:7b"], (await store.Fleet.LoadAsync()).Models.Keys);
    }

    [Fact]
    public async Task Load_RoundTripsWholeFleet_AndPassesValidation()
    {
        await using var store = await CreateAsync();
        // Variable names of this run only: the environment is shared by tests running in parallel.
        var euVariable = "PORTAL_TEST_ROUTER_EU_1_KEY_" + Guid.NewGuid().ToString("N");
        var usVariable = "PORTAL_TEST_ROUTER_US_1_KEY_" + Guid.NewGuid().ToString("N");
        var vllmVariable = "PORTAL_TEST_ROUTER_VLLM_KEY_" + Guid.NewGuid().ToString("N");
        var saved = new FleetOptions();
        saved.Routers["router-eu-1"] = NewRouter("http://10.0.0.5:5010", "env:" + euVariable);
        saved.Routers["router-eu-1"].ApiKey = "never-stored";
        // A Cortensor router needs its key: stored routers carry a reference to it (validation refuses one with neither).
        saved.Routers["router-us-1"] = new RouterOptions { BaseUrl = new Uri("https://router-us.example.com"), ApiVersion = "v2", ApiKeyRef = "env:" + usVariable, UrlForm = CortensorUrlForm.Body };
        saved.Routers["router-vllm"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.9:8000"), Protocol = RouterProtocol.OpenAICompatible, ApiKeyRef = "env:" + vllmVariable };
        saved.Pools["pool-llama"] = NewPool(("router-eu-1", 11), ("router-us-1", 12));
        saved.Pools["pool-llama"].Defaults = new SamplingDefaults { MaxTokens = 2048, Temperature = 0.2 };
        saved.Pools["pool-llama"].RouterQueues = RouterQueueMode.NonBlocking;
        saved.Pools["pool-llama"].StreamQueueLength = 8;
        saved.Pools["pool-vllm"] = new PoolOptions
        {
            Members = [new PoolMemberOptions { Router = "router-vllm" }],
            PromptFormat = PromptFormat.Plain,
            PromptType = 0,
            UpstreamModel = "Qwen/Qwen2.5-7B-Instruct",
            PrecommitTimeoutSeconds = 90, // task 120 + precommit 90 + slack 0 stays inside the 300 s proxy budget
            HttpTimeoutSlackSeconds = 0,
        };
        saved.Models["llama-3.1-8b"] = new ModelOptions { Pool = "pool-llama", ContextTokens = 131_072, MaxOutputTokens = 4096 };
        saved.Models["qwen2.5-7b"] = new ModelOptions { Pool = "pool-vllm", OwnedBy = "alibaba", Created = 1_726_000_000 };
        saved.Models["qwen2.5-7b-off"] = new ModelOptions { Pool = "pool-vllm", Enabled = false };

        foreach (var (id, router) in saved.Routers)
        {
            await store.Fleet.SaveRouterAsync(id, router);
        }

        foreach (var (name, pool) in saved.Pools)
        {
            await store.Fleet.SavePoolAsync(name, pool);
        }

        foreach (var (alias, model) in saved.Models)
        {
            await store.Fleet.SaveModelAsync(alias, model);
        }

        var loaded = await store.Fleet.LoadAsync();

        AssertSameFleet(saved, loaded);
        Environment.SetEnvironmentVariable(euVariable, "eu-1-key-from-the-environment");
        Environment.SetEnvironmentVariable(usVariable, "us-1-key-from-the-environment");
        Environment.SetEnvironmentVariable(vllmVariable, "EMPTY"); // vLLM without --api-key takes any key
        try
        {
            var started = AssertPassesFleetValidation(loaded);
            Assert.Equal("eu-1-key-from-the-environment", started.Routers["router-eu-1"].ApiKey);
            Assert.Equal("us-1-key-from-the-environment", started.Routers["router-us-1"].ApiKey);
            Assert.Equal("EMPTY", started.Routers["router-vllm"].ApiKey);
        }
        finally
        {
            Environment.SetEnvironmentVariable(euVariable, null);
            Environment.SetEnvironmentVariable(usVariable, null);
            Environment.SetEnvironmentVariable(vllmVariable, null);
        }
    }

    // ---------------------------------------------------------------- helpers

    protected static RouterOptions NewRouter(string baseUrl, string? apiKeyRef = null) => new()
    {
        BaseUrl = new Uri(baseUrl),
        ApiKeyRef = apiKeyRef,
        Protocol = RouterProtocol.Cortensor,
        ApiVersion = "v1",
        Enabled = true,
    };

    /// <summary>A ChatML pool with the given (router, session) members, all enabled, other settings at their defaults.</summary>
    protected static PoolOptions NewPool(params (string Router, long? SessionId)[] members) => new()
    {
        Members = [.. members.Select(m => new PoolMemberOptions { Router = m.Router, SessionId = m.SessionId })],
    };

    /// <summary>
    /// Starts the fleet's options pipeline (<c>AddCortensorFleet</c>: key references resolved, then every validator)
    /// on <paramref name="options"/>, as a host that loads the stored fleet would, and returns what it produced.
    /// </summary>
    protected static FleetOptions AssertPassesFleetValidation(FleetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var services = new ServiceCollection();
        services.AddCortensorFleet().Configure(o =>
        {
            o.Routers = options.Routers;
            o.Pools = options.Pools;
            o.Models = options.Models;
        });
        using var provider = services.BuildServiceProvider();
        Assert.NotEmpty(provider.GetServices<IValidateOptions<FleetOptions>>());
        try
        {
            return provider.GetRequiredService<IOptions<FleetOptions>>().Value;
        }
        catch (OptionsValidationException ex)
        {
            Assert.Fail(ex.Message);
            throw;
        }
    }

    protected static void AssertSameFleet(FleetOptions expected, FleetOptions actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(Sorted(expected.Routers.Keys), Sorted(actual.Routers.Keys));
        Assert.Equal(Sorted(expected.Pools.Keys), Sorted(actual.Pools.Keys));
        Assert.Equal(Sorted(expected.Models.Keys), Sorted(actual.Models.Keys));
        foreach (var (id, router) in expected.Routers)
        {
            Assert.Null(actual.Routers[id].ApiKey);
            AssertSameRouter(router, actual.Routers[id]);
        }

        foreach (var (name, pool) in expected.Pools)
        {
            AssertSamePool(pool, actual.Pools[name]);
        }

        foreach (var (alias, model) in expected.Models)
        {
            AssertSameModel(model, actual.Models[alias]);
        }

        static string[] Sorted(IEnumerable<string> keys) => [.. keys.Order(StringComparer.OrdinalIgnoreCase)];
    }

    /// <summary>Every persisted router field; <see cref="RouterOptions.ApiKey"/> is not compared (it is never stored).</summary>
    protected static void AssertSameRouter(RouterOptions expected, RouterOptions actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(expected.BaseUrl, actual.BaseUrl);
        Assert.Equal(expected.ApiKeyRef, actual.ApiKeyRef);
        Assert.Equal(expected.Protocol, actual.Protocol);
        Assert.Equal(expected.ApiVersion, actual.ApiVersion);
        Assert.Equal(expected.UrlForm, actual.UrlForm);
        Assert.Equal(expected.Enabled, actual.Enabled);
        Assert.False(actual.Simulated);
    }

    protected static void AssertSamePool(PoolOptions expected, PoolOptions actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(
            expected.Members.Select(m => (m.Router, m.SessionId, m.Enabled)),
            actual.Members.Select(m => (m.Router, m.SessionId, m.Enabled)));
        Assert.Equal(expected.PromptFormat, actual.PromptFormat);
        Assert.Equal(expected.PromptType, actual.PromptType);
        Assert.Equal(expected.TaskTimeoutSeconds, actual.TaskTimeoutSeconds);
        Assert.Equal(expected.PrecommitTimeoutSeconds, actual.PrecommitTimeoutSeconds);
        Assert.Equal(expected.HttpTimeoutSlackSeconds, actual.HttpTimeoutSlackSeconds);
        Assert.Equal(expected.UpstreamModel, actual.UpstreamModel);
        Assert.NotNull(actual.Defaults);
        Assert.Equal(expected.Defaults.MaxTokens, actual.Defaults.MaxTokens);
        Assert.Equal(expected.Defaults.Temperature, actual.Defaults.Temperature);
        Assert.Equal(expected.Defaults.TopP, actual.Defaults.TopP);
        Assert.Equal(expected.Defaults.TopK, actual.Defaults.TopK);
        Assert.Equal(expected.RouterQueues, actual.RouterQueues);
        Assert.Equal(expected.StreamQueueLength, actual.StreamQueueLength);
        Assert.Equal(expected.StreamQueueWaitSeconds, actual.StreamQueueWaitSeconds);
        Assert.Equal(expected.Enabled, actual.Enabled);
    }

    protected static void AssertSameModel(ModelOptions expected, ModelOptions actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(expected.Pool, actual.Pool);
        Assert.Equal(expected.ContextTokens, actual.ContextTokens);
        Assert.Equal(expected.MaxOutputTokens, actual.MaxOutputTokens);
        Assert.Equal(expected.Enabled, actual.Enabled);
        Assert.Equal(expected.OwnedBy, actual.OwnedBy);
        Assert.Equal(expected.Created, actual.Created);
    }
}
