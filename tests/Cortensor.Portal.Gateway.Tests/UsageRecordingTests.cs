using System.Net;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>Every inference request, however it ends, yields exactly one usage event and one request-log row.</summary>
public sealed class UsageRecordingTests : GatewayTestBase
{
    private InMemoryUsageSink Sink => (InMemoryUsageSink)Host.Services.GetRequiredService<IUsageSink>();

    private async Task<UsageRecord> RecordForAsync(HttpResponseMessage response)
    {
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        UsageRecord? record;
        while (!Sink.TryGet(requestId, out record) && DateTime.UtcNow < deadline)
        {
            Host.Time.Advance(TimeSpan.FromMilliseconds(250)); // the writer batches on the (fake) clock
            await Task.Delay(20);
        }

        Assert.NotNull(record);
        return record;
    }

    [Fact]
    public async Task SameClientRequestIdTwice_TwoSeparateRecords()
    {
        // A caller repeating its id must not make the second request look like a replay (and go unbilled).
        var first = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), Key, r => r.Headers.Add("X-Client-Request-Id", "same-id"));
        var second = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(), Key, r => r.Headers.Add("X-Client-Request-Id", "same-id"));

        var a = await RecordForAsync(first);
        var b = await RecordForAsync(second);

        Assert.NotEqual(a.Usage.RequestId, b.Usage.RequestId);
        Assert.Equal(UsageOutcome.Succeeded, b.Usage.Outcome);
        Assert.Equal("same-id", second.Headers.GetValues("X-Client-Request-Id").Single());
    }

    [Fact]
    public async Task Success_RecordsBillableUsageAndLog()
    {
        var response = await Host.ChatAsync(Http.Chat(), Key);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var record = await RecordForAsync(response);

        Assert.Equal(UsageOutcome.Succeeded, record.Usage.Outcome);
        Assert.Equal("org_test", record.Usage.OrgId);
        Assert.StartsWith("key_", record.Usage.KeyId, StringComparison.Ordinal);
        Assert.Equal("m1", record.Usage.Model);
        Assert.Equal("p1", record.Usage.Pool);
        Assert.Equal(11, record.Usage.PromptTokens);
        Assert.Equal(3, record.Usage.CompletionTokens);
        Assert.False(record.Usage.TokensEstimated);
        Assert.Equal(200, record.Log.StatusCode);
        Assert.Equal("r1", record.Log.RouterId);
        Assert.Equal("/v1/chat/completions", record.Log.Path);
        Assert.Null(record.Log.ErrorCode);
    }

    [Fact]
    public async Task BadKey_WritesNoRecord()
    {
        // Failed authentications are aggregated per address and reason (see FailedAuthenticationTests), never a row each.
        var bad = await Host.ChatAsync(Http.Chat(), "pk_test_nope");
        var good = await Host.ChatAsync(Http.Chat(), Key);

        await RecordForAsync(good);

        Assert.Equal(401, (int)bad.StatusCode);
        Assert.False(Sink.Contains(bad.Headers.GetValues("X-Request-Id").Single()));
        Assert.Equal(1, Sink.Count);
    }

    [Fact]
    public async Task CancellationTheClientDidNotCause_Is500_AndStillRecordedOnce()
    {
        // A timeout somewhere below the gateway surfaces as a cancellation while the client is still there.
        Host.Router.OnCall = static () => throw new OperationCanceledException("a timeout below the gateway");

        var response = await Host.ChatAsync(Http.Chat(), Key);

        Assert.Equal(500, (int)response.StatusCode);
        var record = await RecordForAsync(response);
        Assert.Equal(500, record.Log.StatusCode);
        Assert.Equal("server_error", record.Log.ErrorCode);
    }

    [Fact]
    public async Task RouterUnavailable_RecordsUpstreamFailure()
    {
        Host.Router.Failure = new RouterException(RouterFailureKind.Unavailable, "busy", statusCode: 503);

        var response = await Host.ChatAsync(Http.Chat(), Key);

        var record = await RecordForAsync(response);
        Assert.Equal(UsageOutcome.UpstreamFailed, record.Usage.Outcome);
        Assert.Equal(503, record.Log.StatusCode);
        Assert.Equal(503, record.Log.UpstreamStatus);
        Assert.Equal("model_unavailable", record.Log.ErrorCode);
    }

    [Fact]
    public async Task StreamFailingMidway_RecordsUpstreamFailureWithEstimatedTokensSent()
    {
        Host.Router.Failure = new RouterException(RouterFailureKind.BadResponse, "broke");
        Host.Router.FailStreamAfterChunks = 2;

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true"""), Key);
        await response.Content.ReadAsStringAsync();

        var record = await RecordForAsync(response);
        Assert.Equal(UsageOutcome.UpstreamFailed, record.Usage.Outcome);
        Assert.True(record.Usage.Stream);
        Assert.True(record.Usage.TokensEstimated);
        Assert.Equal(2, record.Usage.CompletionTokens); // "Hello " = 6 chars sent ≈ 2 tokens
        Assert.Equal(200, record.Log.StatusCode);
        Assert.Equal("upstream_error", record.Log.ErrorCode);
    }

    [Fact]
    public async Task ManyRequests_EachRequestIdRecordedExactlyOnce()
    {
        var ids = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            var response = await Host.ChatAsync(Http.Chat(model: i % 4 == 0 ? "nope" : "m1"), Key);
            ids.Add(response.Headers.GetValues("X-Request-Id").Single());
        }

        foreach (var id in ids)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (!Sink.Contains(id) && DateTime.UtcNow < deadline)
            {
                Host.Time.Advance(TimeSpan.FromMilliseconds(250));
                await Task.Delay(20);
            }
        }

        Assert.All(ids, id => Assert.True(Sink.Contains(id)));
        Assert.Equal(0, Sink.DuplicateCount);
        Assert.Equal(20, Sink.Records.Count(r => ids.Contains(r.Usage.RequestId)));
    }

    [Fact]
    public async Task ModelsAndHealth_AreNotMetered()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new("Bearer", Key);
        var models = await Host.Client.SendAsync(request);
        var health = await Host.Client.GetAsync("/health");
        var chatId = (await Host.ChatAsync(Http.Chat(), Key)).Headers.GetValues("X-Request-Id").Single();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!Sink.Contains(chatId) && DateTime.UtcNow < deadline)
        {
            Host.Time.Advance(TimeSpan.FromMilliseconds(250));
            await Task.Delay(20);
        }

        Assert.True(Sink.Contains(chatId)); // everything recorded before it has been flushed too

        Assert.False(Sink.Contains(models.Headers.GetValues("X-Request-Id").Single()));
        Assert.False(Sink.Contains(health.Headers.GetValues("X-Request-Id").Single()));
    }
}
