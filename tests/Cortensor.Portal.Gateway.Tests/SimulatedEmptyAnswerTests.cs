using System.Net;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// A configured simulated router (<see cref="SimulatedRouterSettings"/>) that answers every completion empty, at once or
/// after holding it like a router-side timeout, reached over HTTP by the real <see cref="CortensorRouterClient"/>: the
/// customer gets a 502 upstream_error after one router call, and nothing is billed.
/// </summary>
public sealed class SimulatedEmptyAnswerTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public async Task SimulatedRouterAnsweringEmpty_502UpstreamErrorAndNothingBilled(bool stream, bool timeout)
    {
        var settings = timeout
            ? new SimulatedRouterSettings { TimeoutRate = 1, TimeoutAfterMs = 300 }
            : new SimulatedRouterSettings { EmptyReplyRate = 1 };
        await using var host = await GatewayHost.StartAsync(services =>
        {
            services.Configure<FleetOptions>(fleet => fleet.Routers["r1"] = new RouterOptions { Simulated = true, Simulator = settings });
            services.AddSingleton<IRouterProtocolClient>(new CortensorRouterClient(new HttpClient(), TimeProvider.System, NullLogger<CortensorRouterClient>.Instance));
        });
        var key = await host.IssueKeyAsync();
        Assert.True(host.Services.GetRequiredService<ISimulatedRouterDirectory>().TryGetServer("r1", out var router));

        var response = await host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(model: "m1", extra: stream ? ""","stream":true""" : ""), key);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("server_error", error.Type);
        Assert.Equal("upstream_error", error.Code);
        Assert.Contains("empty answer", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, router.Stats.TotalCompletions);
        Assert.Equal(stream ? 1 : 0, router.Stats.StreamedCompletions);
        Assert.Equal(timeout ? 0 : 1, router.Stats.EmptyReplies);
        Assert.Equal(timeout ? 1 : 0, router.Stats.TimedOutReplies);

        var record = await RecordForAsync(host, response);
        Assert.Equal(UsageOutcome.UpstreamFailed, record.Usage.Outcome);
        Assert.Equal(0, record.Usage.PromptTokens);
        Assert.Equal(0, record.Usage.CompletionTokens);
        Assert.Equal(502, record.Log.StatusCode);
    }

    private static async Task<UsageRecord> RecordForAsync(GatewayHost host, HttpResponseMessage response)
    {
        var sink = (InMemoryUsageSink)host.Services.GetRequiredService<IUsageSink>();
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        UsageRecord? record;
        for (var i = 0; i < 400 && !sink.TryGet(requestId, out record); i++)
        {
            host.Time.Advance(TimeSpan.FromMilliseconds(250)); // the writer batches on the (fake) clock
            await Task.Delay(20);
        }

        Assert.True(sink.TryGet(requestId, out record));
        return record!;
    }
}
