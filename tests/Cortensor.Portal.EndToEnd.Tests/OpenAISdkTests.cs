using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Simulator;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>The official OpenAI .NET SDK against the portal host over a real socket, simulated routers behind it.</summary>
[Collection(PortalCollection.Name)]
public sealed class OpenAISdkTests(PortalFixture portal)
{
    private OpenAIClientOptions Options() => new()
    {
        Endpoint = new Uri(portal.BaseUrl, "/v1"),
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0), // the error cases must not be retried into slowness
        NetworkTimeout = TimeSpan.FromSeconds(30),
    };

    private ChatClient Chat(string model, string? key = null) => new(model, new ApiKeyCredential(key ?? portal.DevKey), Options());

    private static string ExpectedReply(PromptFormat format, long session, string userText)
    {
        var prompt = PromptBuilder.Build(format, [new PromptMessage("user", userText)]);
        return OutputCleaner.Clean(format, SimulatedReply.Text(session, prompt, 512));
    }

    [Fact]
    public void Host_OnFirstStart_PrintsOnePkTestKey()
    {
        var lines = portal.BootstrapOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines, l => l.Contains("pk_test_", StringComparison.Ordinal));
        Assert.Matches(@"^pk_test_[0-9A-Za-z]{49}$", portal.DevKey);
    }

    [Fact]
    public async Task CompleteChat_DefaultModel_ReturnsSimulatorAnswer()
    {
        ChatCompletion completion = await Chat("gpt-oss-20b").CompleteChatAsync(new UserChatMessage("What is the capital of France?"));

        Assert.Equal(ExpectedReply(PromptFormat.Harmony, 1, "What is the capital of France?"), completion.Content[0].Text);
        Assert.StartsWith("Hello from Cortensor session 1.", completion.Content[0].Text, StringComparison.Ordinal);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal("gpt-oss-20b", completion.Model);
        Assert.True(completion.Usage.OutputTokenCount > 0);
        Assert.Equal(completion.Usage.InputTokenCount + completion.Usage.OutputTokenCount, completion.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task CompleteChatStreaming_EachDefaultModel_StreamsSameTextAsNonStream()
    {
        foreach (var (alias, format, session) in new[] { ("gpt-oss-120b", PromptFormat.Harmony, 2L), ("gemma-4-26b", PromptFormat.Gemma, 3L), ("qwen-3.5-9b", PromptFormat.ChatML, 4L) })
        {
            var text = new StringBuilder();
            ChatFinishReason? finish = null;
            ChatTokenUsage? usage = null;
            await foreach (var update in Chat(alias).CompleteChatStreamingAsync(new UserChatMessage("Tell me a story")))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }

                finish ??= update.FinishReason;
                usage ??= update.Usage;
            }

            Assert.Equal(ExpectedReply(format, session, "Tell me a story"), text.ToString());
            Assert.Equal(ChatFinishReason.Stop, finish);
            Assert.NotNull(usage);
            Assert.True(usage.OutputTokenCount > 0);
        }
    }

    [Fact]
    public async Task CompleteChat_MaxTokens_CutsAnswerWithLengthFinish()
    {
        ChatCompletion completion = await Chat("qwen-3.5-9b").CompleteChatAsync(
            [new UserChatMessage("Count to ten please")], new ChatCompletionOptions { MaxOutputTokenCount = 3 });

        Assert.Equal("Hello from Cortensor", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
    }

    [Fact]
    public async Task Models_ListAndGet_ShowDefaultCatalogAliases()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential(portal.DevKey), Options());

        OpenAIModelCollection list = await models.GetModelsAsync();
        var ids = list.Select(m => m.Id).ToHashSet();
        Assert.Superset(new HashSet<string> { "gpt-oss-20b", "gpt-oss-120b", "gemma-4-26b", "qwen-3.5-9b" }, ids);
        Assert.DoesNotContain(ids, id => id.StartsWith("fault-", StringComparison.Ordinal) || id is "oss-20b" or "gemma4" or "qwen");

        OpenAIModel one = await models.GetModelAsync("gemma-4-26b");
        Assert.Equal("gemma-4-26b", one.Id);
        Assert.Equal("cortensor", one.OwnedBy);
    }

    [Theory]
    [InlineData("pk_test_thisisnotavalidkeyatallnotevenclose000000000000000", "gpt-oss-20b", 401)]
    [InlineData(null, "no-such-model", 404)]
    [InlineData(null, "m-down", 503)]
    [InlineData(null, "m-slow", 504)]
    [InlineData(null, "m-broken", 502)]
    public async Task CompleteChat_ErrorCases_RaiseClientResultExceptionWithStatus(string? key, string model, int status)
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat(model, key).CompleteChatAsync(new UserChatMessage("hi")));

        Assert.Equal(status, ex.Status);
    }

    [Fact]
    public async Task CompleteChat_ModelNotAllowedForKey_Raises403()
    {
        var key = await portal.IssueKeyAsync(allowedModels: ["qwen-3.5-9b"]);

        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat("gpt-oss-20b", key).CompleteChatAsync(new UserChatMessage("hi")));

        Assert.Equal(403, ex.Status);
        ChatCompletion allowed = await Chat("qwen-3.5-9b", key).CompleteChatAsync(new UserChatMessage("hi"));
        Assert.NotEmpty(allowed.Content[0].Text);
    }

    [Fact]
    public async Task CompleteChat_InvalidParameter_Raises400NamingParam()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat("gpt-oss-20b").CompleteChatAsync(
            [new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 5f }));

        Assert.Equal(400, ex.Status);
        Assert.Contains("temperature", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompleteChat_BodyOverLimit_Raises413()
    {
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat("gpt-oss-20b").CompleteChatAsync(new UserChatMessage(new string('x', 70_000))));

        Assert.Equal(413, ex.Status);
    }

    [Fact]
    public async Task Router_ReceivesRouterKeyAndRequestId_NeverTheCustomerKey()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"m-trickle","messages":[{"role":"user","content":"ping"}],"max_tokens":2}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", portal.DevKey);
        request.Headers.Add("X-Request-Id", "e2e-router-check-1");

        var response = await portal.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("e2e-router-check-1", response.Headers.GetValues("X-Client-Request-Id").Single());
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        var seen = portal.Simulator("fault-m-trickle").Stats.RecentRequests.Single(r => r.ClientReference == requestId);
        Assert.StartsWith("Bearer sim_", seen.Authorization, StringComparison.Ordinal);
        Assert.DoesNotContain(portal.DevKey, seen.Authorization!, StringComparison.Ordinal);
        Assert.DoesNotContain(portal.DevKey, seen.Prompt, StringComparison.Ordinal);
        Assert.Equal(1, seen.PromptType);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("sim_", body, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_ClientDisconnects_RouterCallIsCancelled_AndTheRequestIsStillRecorded()
    {
        var stats = portal.Simulator("fault-m-trickle").Stats;
        var abortedBefore = stats.AbortedStreams;
        string requestId;
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions"))
        {
            request.Content = new StringContent("""{"model":"m-trickle","messages":[{"role":"user","content":"a long story please"}],"stream":true}""", Encoding.UTF8, "application/json");
            request.Headers.Authorization = new("Bearer", portal.DevKey);
            using var response = await portal.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            requestId = response.Headers.GetValues("X-Request-Id").Single();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            var first = await reader.ReadLineAsync();
            Assert.StartsWith("data: ", first, StringComparison.Ordinal);
            Assert.Equal("chat.completion.chunk", JsonDocument.Parse(first!["data: ".Length..]).RootElement.GetProperty("object").GetString());
        } // disposing the response closes the connection mid-stream (4 tokens/s, ~20 tokens to go)

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (stats.AbortedStreams == abortedBefore && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Equal(abortedBefore + 1, stats.AbortedStreams);

        // The stream had already sent its 200; the usage event and request log still say what happened.
        var records = portal.Services.GetRequiredService<Cortensor.Portal.Metering.Usage.IUsageReader>();
        Cortensor.Portal.Metering.Usage.RequestLogEntry? log = null;
        while (DateTime.UtcNow < deadline.AddSeconds(10) && (log = await records.FindRequestLogAsync(requestId)) is null)
        {
            await Task.Delay(100);
        }

        Assert.NotNull(log);
        Assert.Equal(499, log.StatusCode);
        var usage = await records.FindUsageEventAsync(requestId);
        Assert.Equal(Cortensor.Portal.Metering.Usage.UsageOutcome.Cancelled, usage!.Outcome);
    }

    [Fact]
    public async Task Health_DefaultHost_ReadyWithStoreFleetAndUsageWriterChecks_FleetDegradedBySimulatedRouters_LiveOk()
    {
        using var ready = await portal.Http.GetAsync("/health");
        var body = await ready.Content.ReadAsStringAsync();
        using var live = await portal.Http.GetAsync("/health/live");

        Assert.Equal(System.Net.HttpStatusCode.OK, ready.StatusCode);
        using var doc = JsonDocument.Parse(body);
        var checks = doc.RootElement.GetProperty("checks").EnumerateArray()
            .ToDictionary(c => c.GetProperty("name").GetString()!, c => c.GetProperty("status").GetString());
        Assert.Equal(["fleet", "sqlite", "usage-writer"], checks.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("healthy", checks["sqlite"]);
        // Every model is routable, but this Production host chose simulated routers: ready, yet flagged as canned.
        Assert.Equal("degraded", checks["fleet"]);
        var fleetReason = doc.RootElement.GetProperty("checks").EnumerateArray()
            .Single(c => c.GetProperty("name").GetString() == "fleet").GetProperty("reason").GetString();
        Assert.StartsWith("routers are simulated (Cortensor:Fleet:UseSimulatedRouters), canned answers for model(s): gemma-4-26b, ", fleetReason, StringComparison.Ordinal);
        Assert.DoesNotContain("m-upstream", fleetReason, StringComparison.Ordinal); // served by a real upstream
        Assert.DoesNotContain(portal.Upstream.BaseUrl.Authority, body, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.OK, live.StatusCode);
    }
}

/// <summary>A pool can front an OpenAI-compatible upstream (vLLM, llama.cpp server, Ollama) instead of Cortensor routers.</summary>
[Collection(PortalCollection.Name)]
public sealed class OpenAICompatibleUpstreamTests(PortalFixture portal)
{
    private ChatClient Chat() => new("m-upstream", new ApiKeyCredential(portal.DevKey), new OpenAIClientOptions
    {
        Endpoint = new Uri(portal.BaseUrl, "/v1"),
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
    });

    [Fact]
    public async Task CompleteChat_UpstreamPool_PassesMessagesAndUsesUpstreamModelAndKey()
    {
        ChatCompletion completion = await Chat().CompleteChatAsync(new SystemChatMessage("Be brief."), new UserChatMessage("hi there"));

        Assert.Equal("upstream saw: hi there (model Qwen/Test-9B)", completion.Content[0].Text);
        Assert.Equal("m-upstream", completion.Model);
        Assert.Equal(5, completion.Usage.InputTokenCount);
        Assert.Equal(7, completion.Usage.OutputTokenCount);
        Assert.Equal("Bearer " + FakeOpenAIUpstream.ApiKey, portal.Upstream.AuthorizationHeaders.Last());
        Assert.DoesNotContain(portal.Upstream.AuthorizationHeaders, h => h.Contains(portal.DevKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Completion_UpstreamPool_DoesNotPassTheCallersTraceContextOn()
    {
        // A caller's trace ids are the caller's: on defaults the host starts no per-request Activity (see the
        // template's appsettings.json), so nothing adopts them and the router client propagates nothing.
        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        var prompt = "trace " + Guid.NewGuid().ToString("N");
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(portal.BaseUrl, "/v1/chat/completions"))
        {
            Content = new StringContent(
                JsonSerializer.Serialize(new { model = "m-upstream", messages = new[] { new { role = "user", content = prompt } } }),
                Encoding.UTF8,
                "application/json"),
        };
        request.Headers.Authorization = new("Bearer", portal.DevKey);
        request.Headers.TryAddWithoutValidation("traceparent", $"00-{traceId}-00f067aa0ba902b7-01");
        request.Headers.TryAddWithoutValidation("tracestate", "customer=private");

        using var response = await portal.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(portal.Upstream.TraceHeadersByLastMessage.TryGetValue(prompt, out var seen), "the upstream did not see the request");
        Assert.Equal("|", seen);
    }

    [Fact]
    public async Task CompleteChatStreaming_UpstreamPool_StreamsUpstreamText()
    {
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync(new UserChatMessage("stream me")))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage ??= update.Usage;
        }

        Assert.Equal("upstream saw: stream me (model Qwen/Test-9B)", text.ToString());
        Assert.Equal(7, usage?.OutputTokenCount);
    }
}
