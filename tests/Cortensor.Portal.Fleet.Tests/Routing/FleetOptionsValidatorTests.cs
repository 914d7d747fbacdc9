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
        o.Routers["a"] = new RouterOptions { BaseUrl = new Uri("https://router.example") };
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
            }
        });

        Assert.NotNull(ex);
        Assert.Contains(ex.Failures, f => f.Contains(expected, StringComparison.Ordinal));
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
}
