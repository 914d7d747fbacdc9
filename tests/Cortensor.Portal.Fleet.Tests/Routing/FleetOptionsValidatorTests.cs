using Cortensor.Portal.Fleet.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Tests.Routing;

public sealed class FleetOptionsValidatorTests
{
    private static OptionsValidationException? Validate(Action<FleetOptions> configure)
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(configure);
        using var sp = services.BuildServiceProvider();
        try
        {
            _ = sp.GetRequiredService<IOptions<FleetOptions>>().Value;
            return null;
        }
        catch (OptionsValidationException ex)
        {
            return ex;
        }
    }

    private static void Valid(FleetOptions o)
    {
        o.Routers["a"] = new RouterOptions { BaseUrl = new Uri("https://router.example"), ApiKey = "3f9c2a7e-51b0-4d4e-9a63-0c1f8e2b7d55" };
        o.Routers["u"] = new RouterOptions { BaseUrl = new Uri("http://10.0.0.9:8000/v1"), Protocol = RouterProtocol.OpenAICompatible };
        o.Pools["p"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "a", SessionId = 5 }] };
        o.Pools["v"] = new PoolOptions { UpstreamModel = "qwen", Members = [new PoolMemberOptions { Router = "u" }] };
        o.Models["m"] = new ModelOptions { Pool = "p" };
        o.Models["org/model:tag"] = new ModelOptions { Pool = "v" };
    }

    [Fact]
    public void Validate_ConsistentFleet_Passes() => Assert.Null(Validate(Valid));

    [Theory]
    [InlineData("missing-router", "names router 'ghost'")]
    [InlineData("missing-pool", "names pool 'ghost'")]
    [InlineData("no-session", "needs a SessionId")]
    [InlineData("no-base-url", "absolute http(s) BaseUrl")]
    [InlineData("ftp-url", "absolute http(s) BaseUrl")]
    [InlineData("bad-version", "ApiVersion")]
    [InlineData("no-upstream-model", "needs UpstreamModel")]
    [InlineData("bad-alias", "Model alias 'bad alias!'")]
    [InlineData("bad-timeout", "TaskTimeoutSeconds")]
    [InlineData("no-key", "Router 'a' has no ApiKey")]
    [InlineData("blank-key", "Router 'a' has no ApiKey")]
    [InlineData("placeholder-key", "Router 'a': Cortensor:Fleet:Routers:a:ApiKey is a placeholder")]
    [InlineData("placeholder-upstream-key", "Router 'u': Cortensor:Fleet:Routers:u:ApiKey is a placeholder")]
    public void Validate_Inconsistent_FailsNamingTheProblem(string problem, string expected)
    {
        var ex = Validate(o =>
        {
            Valid(o);
            switch (problem)
            {
                case "missing-router": o.Pools["p"].Members.Add(new PoolMemberOptions { Router = "ghost", SessionId = 1 }); break;
                case "missing-pool": o.Models["m"].Pool = "ghost"; break;
                case "no-session": o.Pools["p"].Members[0].SessionId = null; break;
                case "no-base-url": o.Routers["a"].BaseUrl = null; break;
                case "ftp-url": o.Routers["a"].BaseUrl = new Uri("ftp://router.example"); break;
                case "bad-version": o.Routers["a"].ApiVersion = "latest"; break;
                case "no-upstream-model": o.Pools["v"].UpstreamModel = null; break;
                case "bad-alias": o.Models["bad alias!"] = new ModelOptions { Pool = "p" }; break;
                case "bad-timeout": o.Pools["p"].TaskTimeoutSeconds = 0; break;
                case "no-key": o.Routers["a"].ApiKey = null; break;
                case "blank-key": o.Routers["a"].ApiKey = "  "; break;
                case "placeholder-key": o.Routers["a"].ApiKey = "set-me-from-a-secret-store"; break;
                case "placeholder-upstream-key": o.Routers["u"].ApiKey = "changeme"; break;
            }
        });

        Assert.NotNull(ex);
        Assert.Contains(ex.Failures, f => f.Contains(expected, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(240, null, 30, true)] // 270 s: below stock nginx's 300 s
    [InlineData(120, 90, 30, true)] // community clients' precommit_timeout 90
    [InlineData(270, null, 30, false)] // exactly 300 s: the proxy may cut first
    [InlineData(200, 90, 30, false)] // the precommit timeout counts
    [InlineData(280, null, 0, true)]
    [InlineData(900, null, 30, false)] // allowed by the task timeout's own range, not behind a 300 s proxy
    public void Validate_TimeoutBudget_MustStayBelowProxyReadTimeout(int task, int? precommit, int slack, bool valid)
    {
        var ex = Validate(o =>
        {
            Valid(o);
            o.Pools["p"].TaskTimeoutSeconds = task;
            o.Pools["p"].PrecommitTimeoutSeconds = precommit;
            o.Pools["p"].HttpTimeoutSlackSeconds = slack;
        });

        if (valid)
        {
            Assert.Null(ex);
        }
        else
        {
            Assert.NotNull(ex);
            var failure = Assert.Single(ex.Failures);
            Assert.Contains("Pool 'p': the HTTP timeout budget", failure, StringComparison.Ordinal);
            Assert.Contains("ProxyReadTimeoutSeconds (300 s)", failure, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Validate_RaisedProxyReadTimeout_AllowsALongerBudget()
    {
        Assert.Null(Validate(o =>
        {
            Valid(o);
            o.ProxyReadTimeoutSeconds = 1000;
            o.Pools["p"].TaskTimeoutSeconds = 900;
        }));
    }

    [Theory]
    [InlineData(29, 60)]
    [InlineData(3601, 60)]
    [InlineData(300, 0)]
    [InlineData(300, 3601)]
    public void Validate_FleetTimeoutSettingsOutOfRange_Fail(int proxyRead, int cooldown)
    {
        var ex = Validate(o =>
        {
            Valid(o);
            o.ProxyReadTimeoutSeconds = proxyRead;
            o.UnknownSessionCooldownSeconds = cooldown;
            o.Pools["p"].TaskTimeoutSeconds = 1;
            o.Pools["v"].TaskTimeoutSeconds = 1;
            o.Pools["p"].HttpTimeoutSlackSeconds = 0;
            o.Pools["v"].HttpTimeoutSlackSeconds = 0;
        });

        Assert.NotNull(ex);
        Assert.Contains(ex.Failures, f => f.Contains(proxyRead is < 30 or > 3600 ? "ProxyReadTimeoutSeconds must be" : "UnknownSessionCooldownSeconds must be", StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_SimulatedRouter_NeedsNoBaseUrl()
    {
        Assert.Null(Validate(o =>
        {
            o.Routers["s"] = new RouterOptions { Simulated = true };
            o.Pools["p"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "s", SessionId = 1 }] };
            o.Models["m"] = new ModelOptions { Pool = "p" };
        }));
    }

    [Theory]
    [InlineData("set-me-from-a-secret-store")] // appsettings.Routers.example.json
    [InlineData("SET_ME")]
    [InlineData("changeme")]
    [InlineData("Change-Me-Please")]
    [InlineData("CHANGE_ME")]
    [InlineData("replace-me")]
    [InlineData("<router key>")]
    [InlineData("<ROUTER_EU_1_KEY>")]
    [InlineData("${ROUTER_KEY}")]
    [InlineData("{{router_key}}")]
    [InlineData("%ROUTER_KEY%")]
    [InlineData("TODO")]
    [InlineData("tbd")]
    [InlineData("xxx")]
    [InlineData("XXXX-XXXX-XXXX-XXXX")]
    [InlineData("***")]
    [InlineData("...")]
    [InlineData("…")]
    [InlineData("your-api-key")]
    [InlineData("YOUR_ROUTER_KEY")]
    [InlineData("api-key-here")]
    [InlineData("paste_your_token_here")]
    [InlineData("placeholder")]
    [InlineData("secret")]
    public void Validate_PlaceholderRouterKey_FailsWithoutEchoingIt(string key)
    {
        var ex = Validate(o =>
        {
            Valid(o);
            o.Routers["router-eu-1"] = new RouterOptions { BaseUrl = new Uri("https://router-eu-1.example.net"), ApiKey = key };
        });

        // The exact message: it names the router and both forms of the setting, and never echoes the value.
        Assert.NotNull(ex);
        var failure = Assert.Single(ex.Failures);
        Assert.Equal(
            "Router 'router-eu-1': Cortensor:Fleet:Routers:router-eu-1:ApiKey is a placeholder, not a key. Set the router's real key, preferably from a secret store or the environment variable Cortensor__Fleet__Routers__router-eu-1__ApiKey, or remove the router.",
            failure);
    }

    [Theory]
    [InlineData("3f9c2a7e-51b0-4d4e-9a63-0c1f8e2b7d55")] // a UUID, as hosted routers hand out
    [InlineData("default-dev-token")] // the router's own default: weak, but a key the router accepts
    [InlineData("sk-router-secret-7f3a9c")]
    [InlineData("a1b2c3d4e5f60718293a4b5c6d7e8f90")]
    [InlineData("Zx9vQ2mT8kLp4RbN7wYs1HcJ6dFg3AeU")]
    [InlineData("xkey-2f7b91")]
    [InlineData("test-router-key-1")]
    [InlineData("keyhole-8812-prod")]
    [InlineData("secret-sauce-4411")]
    [InlineData("k")]
    public void Validate_RealLookingRouterKey_Passes(string key)
    {
        Assert.Null(Validate(o =>
        {
            Valid(o);
            o.Routers["a"].ApiKey = key;
        }));
    }

    [Fact]
    public void Validate_RoutersWithoutKeysWhereNoneIsNeeded_Pass()
    {
        Assert.Null(Validate(o =>
        {
            Valid(o);
            o.Routers["u"].ApiKey = null; // OpenAI-compatible upstreams (vLLM, Ollama) often run without a key
            o.Routers["off"] = new RouterOptions { BaseUrl = new Uri("https://off.example"), Enabled = false };
        }));
    }

    [Theory]
    [InlineData("EMPTY")] // vLLM's documented key for a server started without --api-key
    [InlineData("empty")]
    [InlineData("none")]
    [InlineData("null")]
    [InlineData("dummy")]
    [InlineData("xxxx")]
    [InlineData("***")]
    [InlineData("sk-no-key-required")]
    public void Validate_FillerKeyOnOpenAICompatibleRouter_Passes(string key)
    {
        Assert.Null(Validate(o =>
        {
            Valid(o);
            o.Routers["u"].ApiKey = key;
        }));
    }

    [Theory]
    [InlineData("EMPTY")]
    [InlineData("none")]
    [InlineData("dummy")]
    [InlineData("xxxx")]
    public void Validate_FillerKeyOnCortensorRouter_Fails(string key)
    {
        var ex = Validate(o =>
        {
            Valid(o);
            o.Routers["a"].ApiKey = key;
        });

        Assert.NotNull(ex);
        Assert.Equal("Router 'a': Cortensor:Fleet:Routers:a:ApiKey is a placeholder, not a key. Set the router's real key, preferably from a secret store or the environment variable Cortensor__Fleet__Routers__a__ApiKey, or remove the router.", Assert.Single(ex.Failures));
    }

    [Theory]
    [InlineData("set-me-from-a-secret-store")]
    [InlineData("set me")]
    [InlineData("changeme")]
    [InlineData("CHANGE_ME")]
    [InlineData("<vllm key>")]
    [InlineData("${VLLM_API_KEY}")]
    [InlineData("{{vllm_api_key}}")]
    [InlineData("your-api-key")]
    [InlineData("paste-your-key-here")]
    [InlineData("TODO")]
    public void Validate_UnmistakablePlaceholderOnOpenAICompatibleRouter_Fails(string key)
    {
        var ex = Validate(o =>
        {
            Valid(o);
            o.Routers["u"].ApiKey = key;
        });

        Assert.NotNull(ex);
        Assert.Equal("Router 'u': Cortensor:Fleet:Routers:u:ApiKey is a placeholder, not a key. Set the router's real key, preferably from a secret store or the environment variable Cortensor__Fleet__Routers__u__ApiKey, or remove the router.", Assert.Single(ex.Failures));
    }

    [Fact]
    public void Validate_KeyReferenceToSetVariable_PassesAndTheRouterIsCalledWithThatKey()
    {
        using var variable = new TestVariable("7c1e0a9d-router-key\n");
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(o =>
        {
            Valid(o);
            o.Routers["a"].ApiKey = null;
            o.Routers["a"].ApiKeyRef = variable.Reference;
        });
        using var sp = services.BuildServiceProvider();

        var options = sp.GetRequiredService<IOptions<FleetOptions>>().Value;
        Assert.True(sp.GetRequiredService<Cortensor.Portal.Fleet.Routing.IRouterSelector>().TrySelect("p", out var target));

        // The trailing newline a mounted secret file leaves is not part of the key.
        Assert.Equal("7c1e0a9d-router-key", options.Routers["a"].ApiKey);
        Assert.Equal("7c1e0a9d-router-key", target.ApiKey);
    }

    [Fact]
    public void Validate_KeySetDirectlyAndByReference_TheDirectKeyWins()
    {
        using var variable = new TestVariable("from-the-environment-1");
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(o =>
        {
            Valid(o);
            o.Routers["a"].ApiKeyRef = variable.Reference;
        });
        using var sp = services.BuildServiceProvider();

        Assert.Equal("3f9c2a7e-51b0-4d4e-9a63-0c1f8e2b7d55", sp.GetRequiredService<IOptions<FleetOptions>>().Value.Routers["a"].ApiKey);
    }

    [Theory]
    [InlineData(RouterProtocol.Cortensor)]
    [InlineData(RouterProtocol.OpenAICompatible)]
    public void Validate_KeyReferenceToUnsetVariable_FailsNamingTheVariable(RouterProtocol protocol)
    {
        using var variable = new TestVariable(value: null);
        var ex = Validate(o =>
        {
            Valid(o);
            var router = protocol == RouterProtocol.Cortensor ? o.Routers["a"] : o.Routers["u"];
            router.ApiKey = null;
            router.ApiKeyRef = variable.Reference;
        });

        var id = protocol == RouterProtocol.Cortensor ? "a" : "u";
        Assert.NotNull(ex);
        Assert.Equal(
            $"Router '{id}': Cortensor:Fleet:Routers:{id}:ApiKeyRef names the environment variable {variable.Name}, which is not set (or empty) for the portal. Set {variable.Name} to the router's key, or set Cortensor:Fleet:Routers:{id}:ApiKey instead.",
            Assert.Single(ex.Failures));
    }

    [Fact]
    public void Validate_KeyReferenceToBlankVariable_Fails()
    {
        using var variable = new TestVariable("   ");
        var ex = Validate(o =>
        {
            Valid(o);
            o.Routers["a"].ApiKey = null;
            o.Routers["a"].ApiKeyRef = variable.Reference;
        });

        Assert.NotNull(ex);
        Assert.Contains($"names the environment variable {variable.Name}, which is not set", Assert.Single(ex.Failures), StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_KeyReferenceOnDisabledRouterToUnsetVariable_Passes()
    {
        using var variable = new TestVariable(value: null);
        Assert.Null(Validate(o =>
        {
            Valid(o);
            o.Routers["off"] = new RouterOptions { BaseUrl = new Uri("https://off.example"), Enabled = false, ApiKeyRef = variable.Reference };
        }));
    }

    [Fact]
    public void Validate_KeyReferenceToPlaceholder_FailsNamingTheVariableNotTheValue()
    {
        using var variable = new TestVariable("set-me-from-a-secret-store");
        var ex = Validate(o =>
        {
            Valid(o);
            o.Routers["a"].ApiKey = null;
            o.Routers["a"].ApiKeyRef = variable.Reference;
        });

        Assert.NotNull(ex);
        Assert.Equal(
            $"Router 'a': the environment variable {variable.Name} (named by Cortensor:Fleet:Routers:a:ApiKeyRef) holds a placeholder, not a key. Set it to the router's real key, or remove the router.",
            Assert.Single(ex.Failures));
    }

    [Theory]
    [InlineData("vault:fleet/router-a")]
    [InlineData("ENV:ROUTER_KEY")]
    [InlineData("env:")]
    [InlineData("env:ROUTER KEY")]
    [InlineData("ROUTER_KEY")]
    public void Validate_KeyReferenceThatIsNotEnv_FailsEvenWithAKey(string reference)
    {
        var ex = Validate(o =>
        {
            Valid(o);
            o.Routers["a"].ApiKeyRef = reference;
        });

        Assert.NotNull(ex);
        Assert.Equal(
            "Router 'a': Cortensor:Fleet:Routers:a:ApiKeyRef must be env:NAME, the environment variable that holds the router's key; no other kind of reference is resolved. Use env:NAME, or set Cortensor:Fleet:Routers:a:ApiKey (environment variable Cortensor__Fleet__Routers__a__ApiKey) instead.",
            Assert.Single(ex.Failures));
    }

    /// <summary>An environment variable with a name no other test uses, removed again on dispose.</summary>
    private sealed class TestVariable : IDisposable
    {
        public TestVariable(string? value)
        {
            Name = "PORTAL_TEST_ROUTER_KEY_" + Guid.NewGuid().ToString("N");
            Environment.SetEnvironmentVariable(Name, value);
        }

        public string Name { get; }

        public string Reference => "env:" + Name;

        public void Dispose() => Environment.SetEnvironmentVariable(Name, null);
    }

    [Fact]
    public void Validate_SimulatedRouter_NeedsNoKey()
    {
        Assert.Null(Validate(o =>
        {
            o.Routers["s"] = new RouterOptions { Simulated = true, ApiKey = "ignored" };
            o.Routers["t"] = new RouterOptions { Simulated = true };
            o.Pools["p"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "s", SessionId = 1 }] };
            o.Models["m"] = new ModelOptions { Pool = "p" };
        }));
    }
}
