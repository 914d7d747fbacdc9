using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// Empty router answers and unknown sessions, end to end through the real <see cref="CortensorRouterClient"/> (on an
/// in-process HTTP handler standing in for two routers): a 502 with nothing billed, one POST per router, failover to
/// the other member before the first byte, and the 404 member held out of selection.
/// </summary>
public sealed class RouterFailoverTests : IAsyncLifetime
{
    private const string SecondRouterUrl = "http://router-two.example:5010";

    private const string GoodStream =
        "data: {\"task_id\":1,\"choices\":[{\"text\":\"Hello \",\"finish_reason\":null}]}\n\n" +
        "data: {\"task_id\":1,\"choices\":[{\"text\":\"from r2.\",\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4}}\n\n" +
        "data: [DONE]\n\n";

    private const string GoodJson =
        """{"choices":[{"text":"Hello from r2.","finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4}}""";

    private readonly RouterStub _routers = new();
    private GatewayHost _host = null!;
    private string _key = null!;

    public async Task InitializeAsync()
    {
        _host = await GatewayHost.StartAsync(services =>
        {
            services.Configure<FleetOptions>(fleet =>
            {
                fleet.Routers["r2"] = new RouterOptions { BaseUrl = new Uri(SecondRouterUrl), ApiKey = "router-two-key-0b6e1c" };
                fleet.Pools["p2"] = new PoolOptions
                {
                    PromptFormat = Cortensor.Portal.Fleet.Prompts.PromptFormat.ChatML,
                    Members = [new PoolMemberOptions { Router = "r1", SessionId = 7 }, new PoolMemberOptions { Router = "r2", SessionId = 8 }],
                    RouterQueues = RouterQueueMode.NonBlocking, // streams share members, so they may move to another
                };
                fleet.Models["m2"] = new ModelOptions { Pool = "p2", ContextTokens = 1000, MaxOutputTokens = 100 };

                // The same members with blocking stream queues (the default): a stream holds its session alone.
                fleet.Pools["p3"] = new PoolOptions
                {
                    PromptFormat = Cortensor.Portal.Fleet.Prompts.PromptFormat.ChatML,
                    Members = [new PoolMemberOptions { Router = "r1", SessionId = 7 }, new PoolMemberOptions { Router = "r2", SessionId = 8 }],
                };
                fleet.Models["m3"] = new ModelOptions { Pool = "p3", ContextTokens = 1000, MaxOutputTokens = 100 };
            });

            // The real Cortensor client, registered last so the gateway uses it instead of the fake one.
            services.AddSingleton<IRouterProtocolClient>(new CortensorRouterClient(new HttpClient(_routers), TimeProvider.System, NullLogger<CortensorRouterClient>.Instance));
        });
        _key = await _host.IssueKeyAsync();
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    public static TheoryData<string, string, string> EmptyAnswers => new()
    {
        { "chat stream: only [DONE]", "/v1/chat/completions", "data: [DONE]\n\n" },
        { "chat stream: only non-JSON data lines", "/v1/chat/completions", "data: <html>busy</html>\n\ndata: oops\n\n" },
        { "chat stream: empty 200 body", "/v1/chat/completions", "" },
        { "completions stream: only garbage then [DONE]", "/v1/completions", "data: {not json\n\ndata: [DONE]\n\n" },
        { "chat: empty text, no finish reason", "/v1/chat/completions", """{"choices":[{"text":""}],"usage":{"prompt_tokens":9,"completion_tokens":0}}""" },
        { "chat: empty 200 body", "/v1/chat/completions", "" },
        { "completions: empty text, no finish reason", "/v1/completions", """{"choices":[{"text":"","finish_reason":null}]}""" },
    };

    [Theory]
    [MemberData(nameof(EmptyAnswers))]
    public async Task EmptyAnswer_SingleMember_502InOpenAIShapeAndNothingBilled(string name, string path, string routerBody)
    {
        var stream = name.Contains("stream", StringComparison.Ordinal);
        _routers.Answer("router-internal.example", stream && routerBody.Length > 0 ? Sse(routerBody) : Json(routerBody));

        var response = await PostAsync(path, "m1", stream);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("server_error", error.Type);
        Assert.Equal("upstream_error", error.Code);
        Assert.Contains("empty answer", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, _routers.Posts("router-internal.example"));

        var record = await RecordForAsync(response);
        Assert.Equal(UsageOutcome.UpstreamFailed, record.Usage.Outcome);
        Assert.Equal(0, record.Usage.PromptTokens);
        Assert.Equal(0, record.Usage.CompletionTokens);
        Assert.Equal(502, record.Log.StatusCode);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task EmptyAnswer_SecondMember_FailsOverBeforeTheFirstByte(bool stream)
    {
        _routers.Answer("router-internal.example", stream ? Sse("data: [DONE]\n\n") : Json("""{"choices":[{"text":""}]}"""));
        _routers.Answer("router-two.example", stream ? Sse(GoodStream) : Json(GoodJson));

        var response = await PostAsync("/v1/chat/completions", "m2", stream);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Hello from r2.", await ChatTextAsync(response, stream));
        Assert.Equal(1, _routers.Posts("router-internal.example"));
        Assert.Equal(1, _routers.Posts("router-two.example"));
        var record = await RecordForAsync(response);
        Assert.Equal(UsageOutcome.Succeeded, record.Usage.Outcome);
        Assert.Equal("r2", record.Log.RouterId);
        Assert.Equal(4, record.Usage.CompletionTokens);
    }

    [Fact]
    public async Task EmptyTextWithFinishReason_IsAValidEmptyAnswer()
    {
        _routers.Answer("router-internal.example", Json("""{"choices":[{"text":"","finish_reason":"length"}],"usage":{"prompt_tokens":9,"completion_tokens":0}}"""));

        var response = await PostAsync("/v1/chat/completions", "m1", stream: false);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var choice = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0];
        Assert.Equal("", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task EmptyAnswer_ExclusiveStream_DoesNotMoveToASessionItHoldsNoSlotOn_502AndNothingBilled()
    {
        // Both members answer empty: whichever the stream was leased on, it must be the only POST.
        _routers.Answer("router-internal.example", Sse("data: [DONE]\n\n"));
        _routers.Answer("router-two.example", Sse("data: [DONE]\n\n"));

        var response = await PostAsync("/v1/chat/completions", "m3", stream: true);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("upstream_error", (await response.ReadErrorAsync()).Code);
        Assert.Equal(1, _routers.Posts("router-internal.example") + _routers.Posts("router-two.example"));
        var record = await RecordForAsync(response);
        Assert.Equal(UsageOutcome.UpstreamFailed, record.Usage.Outcome);
        Assert.Equal(0, record.Usage.CompletionTokens);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task UnknownSession404_OnePostMemberMarkedUnhealthyAndRequestFailsOver(bool stream)
    {
        _routers.Answer("router-internal.example", _ => new HttpResponseMessage(HttpStatusCode.NotFound) { Content = new StringContent("""{"error":"session 7 not found"}""", Encoding.UTF8, "application/json") });
        _routers.Answer("router-two.example", stream ? Sse(GoodStream) : Json(GoodJson));

        var response = await PostAsync("/v1/chat/completions", "m2", stream);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Hello from r2.", await ChatTextAsync(response, stream));
        Assert.Equal(["/api/v1/completions/7"], _routers.Paths("router-internal.example")); // no second POST on the body form
        Assert.False(_host.Services.GetRequiredService<IRouterMemberHealth>().IsHealthy("r1", 7));

        // Held out: the next requests go to r2 only, although selection is round robin.
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await PostAsync("/v1/chat/completions", "m2", stream)).StatusCode);
        }

        Assert.Equal(1, _routers.Posts("router-internal.example"));
        Assert.Equal(4, _routers.Posts("router-two.example"));
    }

    [Fact]
    public async Task UnknownSession404_OnlyMember_502ThenModelUnavailableWhileHeldOut()
    {
        _routers.Answer("router-internal.example", _ => new HttpResponseMessage(HttpStatusCode.NotFound) { Content = new StringContent("Not Found", Encoding.UTF8, "text/plain") });

        var first = await PostAsync("/v1/chat/completions", "m1", stream: false);

        Assert.Equal(HttpStatusCode.BadGateway, first.StatusCode);
        Assert.Equal("upstream_error", (await first.ReadErrorAsync()).Code);
        Assert.Equal(["/api/v1/completions/7"], _routers.Paths("router-internal.example"));

        var second = await PostAsync("/v1/chat/completions", "m1", stream: false);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
        Assert.Equal("model_unavailable", (await second.ReadErrorAsync()).Code);
        Assert.Equal(1, _routers.Posts("router-internal.example"));
    }

    [Fact]
    public async Task RouterTimeout_IsNotFailedOver()
    {
        // A router that timed out may still be working on the task: a second task would double the on-chain work.
        _routers.Answer("router-internal.example", _ => new HttpResponseMessage(HttpStatusCode.GatewayTimeout) { Content = new StringContent("timeout") });
        _routers.Answer("router-two.example", Json(GoodJson));

        var response = await PostAsync("/v1/chat/completions", "m2", stream: false);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal(0, _routers.Posts("router-two.example"));
    }

    private Task<HttpResponseMessage> PostAsync(string path, string model, bool stream)
    {
        var streamFlag = stream ? "true" : "false";
        var body = path == "/v1/completions"
            ? $$"""{"model":"{{model}}","prompt":"Hi","stream":{{streamFlag}}}"""
            : Http.Chat(model: model, extra: $$""","stream":{{streamFlag}}""");
        return _host.Client.PostJsonAsync(path, body, _key);
    }

    private static async Task<string> ChatTextAsync(HttpResponseMessage response, bool stream)
    {
        var raw = await response.Content.ReadAsStringAsync();
        if (!stream)
        {
            return JsonDocument.Parse(raw).RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        }

        var text = new StringBuilder();
        foreach (var data in raw.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).Where(d => d != "[DONE]"))
        {
            var choices = JsonDocument.Parse(data).RootElement.GetProperty("choices");
            if (choices.GetArrayLength() > 0 && choices[0].GetProperty("delta").TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            {
                text.Append(content.GetString());
            }
        }

        return text.ToString();
    }

    private static Func<HttpRequestMessage, HttpResponseMessage> Sse(string body) =>
        _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, "text/event-stream") };

    private static Func<HttpRequestMessage, HttpResponseMessage> Json(string body) =>
        _ => new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent(body, Encoding.UTF8, "application/json") };

    private async Task<UsageRecord> RecordForAsync(HttpResponseMessage response)
    {
        var sink = (InMemoryUsageSink)_host.Services.GetRequiredService<IUsageSink>();
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        UsageRecord? record;
        while (!sink.TryGet(requestId, out record) && DateTime.UtcNow < deadline)
        {
            _host.Time.Advance(TimeSpan.FromMilliseconds(250)); // the writer batches on the (fake) clock
            await Task.Delay(20);
        }

        Assert.NotNull(record);
        return record;
    }

    /// <summary>Routers by host name, answering with a delegate and recording every request path.</summary>
    private sealed class RouterStub : HttpMessageHandler
    {
        private readonly ConcurrentDictionary<string, Func<HttpRequestMessage, HttpResponseMessage>> _answers = new();
        private readonly ConcurrentQueue<(string Host, string Path)> _requests = new();

        public void Answer(string host, Func<HttpRequestMessage, HttpResponseMessage> answer) => _answers[host] = answer;

        public int Posts(string host) => _requests.Count(r => r.Host == host);

        public string[] Paths(string host) => _requests.Where(r => r.Host == host).Select(r => r.Path).ToArray();

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var host = request.RequestUri!.Host;
            _requests.Enqueue((host, request.RequestUri.AbsolutePath));
            return Task.FromResult(_answers.TryGetValue(host, out var answer)
                ? answer(request)
                : new HttpResponseMessage(HttpStatusCode.ServiceUnavailable) { Content = new StringContent("no answer configured") });
        }
    }
}
