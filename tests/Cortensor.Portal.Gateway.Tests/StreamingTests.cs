using System.Net;
using System.Text.Json;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Gateway.Tests.Support;

namespace Cortensor.Portal.Gateway.Tests;

public sealed class StreamingTests : GatewayTestBase
{
    private static async Task<List<string>> ReadEventsAsync(HttpResponseMessage response)
    {
        var raw = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("event:", raw, StringComparison.Ordinal);
        Assert.EndsWith("\n\n", raw, StringComparison.Ordinal);
        var events = raw.Split("\n\n", StringSplitOptions.RemoveEmptyEntries).ToList();
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        return events.Select(e => e["data: ".Length..]).ToList();
    }

    [Fact]
    public async Task Stream_Chat_EmitsRoleContentFinishThenDone()
    {
        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true"""), Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await ReadEventsAsync(response);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement).ToList();

        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.Single(chunks.Select(c => c.GetProperty("created").GetInt64()).Distinct());
        Assert.All(chunks, c => Assert.False(c.TryGetProperty("usage", out _)));
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        var text = string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal("Hello there.", text);
        Assert.All(chunks.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Stream_WithIncludeUsage_EveryChunkHasNullUsageAndLastHasEmptyChoices()
    {
        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true,"stream_options":{"include_usage":true}"""), Key);

        var events = await ReadEventsAsync(response);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        var last = chunks[^1];
        Assert.Equal(0, last.GetProperty("choices").GetArrayLength());
        Assert.Equal(11, last.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, last.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(14, last.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Stream_RouterFailsBeforeFirstChunk_ReturnsJsonErrorNotStream()
    {
        Host.Router.Failure = new RouterException(RouterFailureKind.Unavailable, "down");

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true"""), Key);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("model_unavailable", (await response.ReadErrorAsync()).Code);
    }

    [Fact]
    public async Task Stream_RouterFailsMidStream_EmitsErrorEventAndNoDone()
    {
        Host.Router.Failure = new RouterException(RouterFailureKind.BadResponse, "broke");
        Host.Router.FailStreamAfterChunks = 2;

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true"""), Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await ReadEventsAsync(response);
        Assert.NotEqual("[DONE]", events[^1]);
        var error = JsonDocument.Parse(events[^1]).RootElement.GetProperty("error");
        Assert.Equal("upstream_error", error.GetProperty("code").GetString());
        Assert.Equal(response.Headers.GetValues("X-Request-Id").Single(), error.GetProperty("request_id").GetString());
        Assert.Equal(1, Host.Router.Calls); // no retry once bytes reached the client
    }

    [Fact]
    public async Task Stream_TurnMarkerSplitAcrossChunks_IsCutAndStreamStops()
    {
        Host.Router.StreamChunks = ["Four.", "<|im_", "end|>\n<|im_start|>user\n", "more text"];

        var response = await Host.ChatAsync(Http.Chat(extra: ""","stream":true"""), Key);

        var events = await ReadEventsAsync(response);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        var text = string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var t) ? t.GetString() : ""));
        Assert.Equal("Four.", text);
        Assert.Equal("[DONE]", events[^1]);
    }

    [Fact]
    public async Task Stream_LegacyCompletions_UsesTextCompletionChunks()
    {
        var response = await Host.Client.PostJsonAsync("/v1/completions", """{"model":"m1","prompt":"Once upon","stream":true}""", Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await ReadEventsAsync(response);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.All(chunks, c => Assert.Equal("text_completion", c.GetProperty("object").GetString()));
        Assert.Equal("Hello there.", string.Concat(chunks.Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal("Once upon", Host.Router.LastRequest!.Prompt);
        Assert.Equal(1, Host.Router.LastRequest!.PromptType);
    }
}
