using Cortensor.Portal.Benchmarks.Load;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>
/// The open-loop generator against a real Kestrel on 127.0.0.1 that answers every other request with 503: every
/// scheduled request is sent and accounted for, and each answer's Server-Timing is kept by request index.
/// </summary>
public sealed class OpenLoopLoadGeneratorTests : IAsyncLifetime
{
    private WebApplication _app = null!;
    private int _calls;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _app = builder.Build();
        _app.MapPost("/v1/chat/completions", (HttpContext context) =>
        {
            if (Interlocked.Increment(ref _calls) % 2 == 0)
            {
                return Results.StatusCode(503);
            }

            context.Response.Headers["Server-Timing"] = "gateway;dur=0.25, limits;dur=0.125, router;dur=1.5";
            return Results.Text("{}", "application/json");
        });
        await _app.StartAsync();
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    [Fact]
    public async Task RunAsync_SendsEveryScheduledRequest_AndKeepsEachAnswersServerTiming()
    {
        using var client = new HttpClient(OpenLoopLoadGenerator.CreateHandler(16));
        var url = new Uri(_app.Urls.Single() + "/v1/chat/completions");
        var generator = new OpenLoopLoadGenerator(client, () => new HttpRequestMessage(HttpMethod.Post, url) { Content = new StringContent("{}") });

        var result = await generator.RunAsync(rate: 100, TimeSpan.FromSeconds(0.5), drainTimeout: TimeSpan.FromSeconds(10));

        Assert.Equal(50, result.Requests);
        Assert.Equal(25, result.Ok);
        Assert.Equal(25, result.NotOk);
        Assert.Equal(50, _calls);
        for (var i = 0; i < result.Requests; i++)
        {
            Assert.True(result.Latency[i] > 0);
            Assert.True(result.SendLag[i] >= 0);
            if (result.Status[i] == 200)
            {
                Assert.Equal(0.25, result.GatewayMs[i]);
                Assert.Equal(0.125, result.LimitsMs[i]);
                Assert.Equal(1.5, result.RouterMs[i]);
            }
            else
            {
                Assert.Equal(503, result.Status[i]);
                Assert.True(double.IsNaN(result.GatewayMs[i]));
                Assert.True(double.IsNaN(result.LimitsMs[i]));
            }
        }
    }
}
