using System.Net;
using System.Text.Json;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Gateway.Inference;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>OpenAI's <c>stop</c> is enforced by the gateway (routers drop it): both endpoints, streams and not.</summary>
public sealed class StopSequenceTests : GatewayTestBase
{
    private static async Task<(string Text, string? FinishReason)> ReadStreamAsync(HttpResponseMessage response, bool chat)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var raw = await response.Content.ReadAsStringAsync();
        var events = raw.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var text = "";
        string? finish = null;
        foreach (var data in events.SkipLast(1))
        {
            var choices = JsonDocument.Parse(data).RootElement.GetProperty("choices");
            if (choices.GetArrayLength() == 0)
            {
                continue;
            }

            var choice = choices[0];
            text += chat
                ? choice.GetProperty("delta").TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : ""
                : choice.GetProperty("text").GetString();
            if (choice.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            {
                finish = choice.GetProperty("finish_reason").GetString();
            }
        }

        return (text, finish);
    }

    private Task<HttpResponseMessage> CompletionsAsync(string extra) =>
        Host.Client.PostJsonAsync("/v1/completions", $$"""{"model":"m1","prompt":"Count"{{extra}}}""", Key);

    [Fact]
    public async Task ChatStream_StopSplitAcrossChunks_CutsThereFinishesStopAndEndsTheRouterCall()
    {
        Host.Router.StreamChunks = ["Hello wor", "ld, ST", "OP and more", " never sent"];
        Host.Router.HoldStreamOpen = true; // the router would go on: only the gateway can end this call
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var response = await Host.Client.PostJsonAsync("/v1/chat/completions", Http.Chat(extra: ""","stream":true,"stop":"STOP","stream_options":{"include_usage":true}"""), Key);
        var (text, finish) = await ReadStreamAsync(response, chat: true).WaitAsync(timeout.Token);

        Assert.Equal("Hello world, ", text);
        Assert.Equal("stop", finish);
        Assert.Equal(1, Host.Router.StreamsEnded);
    }

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/completions")]
    public async Task Stream_StopHit_RouterCallEndedBeforeTheAnswerIsFinished(string path)
    {
        // The gateway ends the router call as soon as it sees the stop string, not when the response is over: when
        // the router's stream is disposed, the request's final usage is not settled yet.
        await using var host = await GatewayHost.StartAsync(services => services.AddHttpContextAccessor());
        var key = await host.IssueKeyAsync();
        var accessor = host.Services.GetRequiredService<Microsoft.AspNetCore.Http.IHttpContextAccessor>();
        bool? endedBeforeUsage = null;
        host.Router.StreamChunks = ["one STOP", " two"];
        host.Router.HoldStreamOpen = true;
        host.Router.OnStreamEnded = () => endedBeforeUsage = Cortensor.Portal.Gateway.Hosting.GatewayRequestState.Of(accessor.HttpContext!).Tokens is null;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var body = path == "/v1/completions"
            ? """{"model":"m1","prompt":"Count","stream":true,"stop":["STOP"]}"""
            : Http.Chat(extra: ""","stream":true,"stop":["STOP"]""");

        var response = await host.Client.PostJsonAsync(path, body, key);
        var (text, finish) = await ReadStreamAsync(response, chat: path != "/v1/completions").WaitAsync(timeout.Token);

        Assert.Equal("one ", text);
        Assert.Equal("stop", finish);
        Assert.True(endedBeforeUsage);
    }

    [Fact]
    public async Task ChatStream_PartialMatchThatIsNoStop_IsSentWhole()
    {
        Host.Router.StreamChunks = ["Hel", "lo S", "T", "OR", "Y"];
        Host.Router.FinishReason = "length";

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true,"stop":["STOP","\nUser:"]"""), Key);
        var (text, finish) = await ReadStreamAsync(response, chat: true);

        Assert.Equal("Hello STORY", text);
        Assert.Equal("length", finish);
    }

    [Fact]
    public async Task ChatStream_PartialMatchAtTheEnd_IsFlushed()
    {
        Host.Router.StreamChunks = ["Hello", " ST"];

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true,"stop":["STOP"]"""), Key);
        var (text, _) = await ReadStreamAsync(response, chat: true);

        Assert.Equal("Hello ST", text);
    }

    [Fact]
    public async Task Chat_NonStream_CutsAtEarliestStopAndCountsTokensUpToTheCut()
    {
        Host.Router.Text = "Answer: 42 END and then more words";
        Host.Router.Usage = new RouterUsage(11, 50); // the router counted text the client never gets

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stop":["more","END"]"""), Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        var choice = root.GetProperty("choices")[0];
        Assert.Equal("Answer: 42 ", choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(11, root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32()); // 11 characters ≈ 3 tokens
        Assert.Equal(14, root.GetProperty("usage").GetProperty("total_tokens").GetInt32());

        var record = await RecordForAsync(response);
        Assert.Equal(3, record.Usage.CompletionTokens);
        Assert.True(record.Usage.TokensEstimated);
    }

    [Fact]
    public async Task Chat_NonStream_NoStopInText_KeepsRouterUsageAndFinishReason()
    {
        Host.Router.Text = "Nothing to cut here.";
        Host.Router.FinishReason = "length";

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stop":["STOP"]"""), Key);

        var root = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("Nothing to cut here.", root.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("length", root.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(3, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task CompletionsStream_StopAcrossThreeChunksAfterAFalseStart_CutsAtTheRealOne()
    {
        Host.Router.StreamChunks = ["a EN", "D b E", "N", "D. c", " d"];
        Host.Router.HoldStreamOpen = true;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));

        var response = await CompletionsAsync(""","stream":true,"stop":["END."]""");
        var (text, finish) = await ReadStreamAsync(response, chat: false).WaitAsync(timeout.Token);

        Assert.Equal("a END b ", text);
        Assert.Equal("stop", finish);
        Assert.Equal(1, Host.Router.StreamsEnded);
    }

    [Fact]
    public async Task CompletionsStream_NoStopHit_FlushesHeldBackTail()
    {
        Host.Router.StreamChunks = ["one\n", "two\n"];

        var response = await CompletionsAsync(""","stream":true,"stop":"\n\n" """);
        var (text, finish) = await ReadStreamAsync(response, chat: false);

        Assert.Equal("one\ntwo\n", text);
        Assert.Equal("stop", finish);
    }

    [Fact]
    public async Task Completions_NonStream_CutsAtStop()
    {
        Host.Router.Text = "1, 2, 3\n\n4, 5";
        Host.Router.FinishReason = "length";

        var response = await CompletionsAsync(""","stop":"\n\n" """);

        var choice = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("choices")[0];
        Assert.Equal("1, 2, 3", choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData(""","stop":[]""", "empty_array")]
    [InlineData(""","stop":["a","b","c","d","e"]""", "array_above_max_length")]
    [InlineData(""","stop":[1]""", null)]
    public async Task Stop_Invalid_400WithParamStopAndNoRouterCall(string extra, string? code)
    {
        var response = await Host.ChatAsync(Http.Chat(extra: extra), Key);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("stop", error.Param);
        Assert.Equal("invalid_request_error", error.Type);
        if (code is not null)
        {
            Assert.Equal(code, error.Code);
        }

        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public async Task Stop_LongerThanTheLimit_400()
    {
        var stop = new string('x', RequestValidation.MaxStopLength + 1);

        var response = await Host.Client.PostJsonAsync("/v1/completions", $$"""{"model":"m1","prompt":"x","stop":"{{stop}}"}""", Key);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("stop", (await response.ReadErrorAsync()).Param);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Theory]
    [InlineData("abcSTOPdef", new[] { "STOP" }, "abc", true)]
    [InlineData("abcSTOPdefEND", new[] { "END", "STOP" }, "abc", true)]
    [InlineData("STOP", new[] { "STOP" }, "", true)]
    [InlineData("abc", new[] { "" }, "abc", false)] // an empty stop string means nothing
    [InlineData("abcST", new[] { "STOP" }, "abcST", false)]
    public void Cut_FindsTheEarliestStop(string text, string[] stops, string expected, bool stopped)
    {
        Assert.Equal(expected, StopSequences.Cut(text, stops, out var wasStopped));
        Assert.Equal(stopped, wasStopped);
    }

    [Fact]
    public void Push_EveryWayOfSplittingTheText_GivesTheSameCut()
    {
        const string text = "one <e <en<end> two <end> three";
        string[] stops = ["<end>", "<ending>"];
        var expected = StopSequences.Cut(text, stops, out _);
        Assert.Equal("one <e <en", expected);

        for (var first = 0; first <= text.Length; first++)
        {
            for (var second = first; second <= text.Length; second++)
            {
                var filter = StopSequences.Create(stops)!;
                var sent = filter.Push(text[..first]) + filter.Push(text[first..second]) + filter.Push(text[second..]) + filter.Flush();
                Assert.Equal(expected, sent);
                Assert.True(filter.IsStopped);
            }
        }
    }

    [Fact]
    public void Push_HoldsBackOnlyAPossibleStart()
    {
        var filter = StopSequences.Create(["STOP"])!;

        Assert.Equal("Hello ", filter.Push("Hello ST"));
        Assert.Equal("STAR", filter.Push("AR"));
        Assert.Equal("", filter.Push("S"));
        Assert.Equal("S", filter.Flush());
    }

    private async Task<UsageRecord> RecordForAsync(HttpResponseMessage response)
    {
        var sink = (InMemoryUsageSink)Host.Services.GetRequiredService<IUsageSink>();
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        UsageRecord? record;
        while (!sink.TryGet(requestId, out record) && DateTime.UtcNow < deadline)
        {
            Host.Time.Advance(TimeSpan.FromMilliseconds(250)); // the writer batches on the (fake) clock
            await Task.Delay(20);
        }

        Assert.NotNull(record);
        return record;
    }
}
