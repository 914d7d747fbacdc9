using System.Net;
using Cortensor.Portal.Gateway.Tests.Support;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary><c>Server-Timing</c> splits each answer into the gateway's time and the router's time.</summary>
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
}
