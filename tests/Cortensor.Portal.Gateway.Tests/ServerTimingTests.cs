using System.Net;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary><c>Server-Timing</c> splits each answer into the gateway's time and the router's time, and shows the rate-limit wait.</summary>
public sealed class ServerTimingTests : GatewayTestBase
{
    [Fact]
    public async Task NonStream_RouterShareIsTheRouterCall()
    {
        Host.Router.OnCall = () => Host.Time.Advance(TimeSpan.FromMilliseconds(250));

        var response = await Host.ChatAsync(Http.Chat(), Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("gateway;dur=0, router;dur=250", response.Headers.GetValues("Server-Timing").Single());
        Assert.Equal("250", response.Headers.GetValues("openai-processing-ms").Single());
    }

    [Fact]
    public async Task Stream_RouterShareIsTimeToFirstChunk()
    {
        Host.Router.OnCall = () => Host.Time.Advance(TimeSpan.FromMilliseconds(40));

        var response = await Host.ChatAsync(Http.Chat(extra: ",\"stream\":true"), Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("gateway;dur=0, router;dur=40", response.Headers.GetValues("Server-Timing").Single());
    }

    [Fact]
    public async Task Completions_CarryServerTiming()
    {
        var response = await Host.Client.PostJsonAsync("/v1/completions", """{"model":"m1","prompt":"Hi"}""", Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Matches("^gateway;dur=[0-9.]+, router;dur=[0-9.]+$", response.Headers.GetValues("Server-Timing").Single());
    }

    [Fact]
    public async Task WithLimits_LimitsShareIsTheLimiterWait_AndCountsInTheGatewayShare()
    {
        await using var host = await GatewayHost.StartAsync(services =>
        {
            services.Configure<RateLimitingOptions>(o => o.Defaults.Key.RequestsPerMinute = 100);
            services.AddSingleton<IRateLimiter>(sp => new SlowLimiter(new InProcessRateLimiter(new RateLimitingOptions(), sp.GetRequiredService<TimeProvider>()), (FakeTimeProvider)sp.GetRequiredService<TimeProvider>()));
        });
        var key = await host.IssueKeyAsync();
        host.Router.OnCall = () => host.Time.Advance(TimeSpan.FromMilliseconds(250));

        var response = await host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("gateway;dur=3.5, limits;dur=3.5, router;dur=250", response.Headers.GetValues("Server-Timing").Single());
    }

    /// <summary>A limiter whose decision takes 3.5 ms of the fake clock, standing in for a Redis round trip.</summary>
    private sealed class SlowLimiter(IRateLimiter inner, FakeTimeProvider time) : IRateLimiter
    {
        public ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
        {
            time.Advance(TimeSpan.FromMilliseconds(3.5));
            return inner.AcquireAsync(request, cancellationToken);
        }

        public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default) =>
            inner.ReleaseAsync(lease, actualTokens, cancellationToken);
    }
}
