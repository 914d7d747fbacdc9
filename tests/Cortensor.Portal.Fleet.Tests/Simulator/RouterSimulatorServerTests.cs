using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Simulator;

namespace Cortensor.Portal.Fleet.Tests.Simulator;

public sealed class RouterSimulatorServerTests : IAsyncLifetime
{
    private const string Prompt = "User: What is 2+2?\n\nAssistant:";

    private readonly RouterSimulatorOptions _options = new()
    {
        Sessions = [new SimulatedSession { Id = 5, Model = "gpt-oss-20b" }, new SimulatedSession { Id = 6, Model = "qwen" }],
    };

    private RouterSimulatorServer _server = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _server = await RouterSimulatorServer.StartAsync(_options);
        _client = new HttpClient { BaseAddress = _server.BaseUrl, Timeout = TimeSpan.FromSeconds(30) };
        _client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "default-dev-token");
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    [Fact]
    public void StartAsync_DefaultUrl_BindsLoopbackWithRealPort()
    {
        Assert.Equal("127.0.0.1", _server.BaseUrl.Host);
        Assert.NotEqual(0, _server.BaseUrl.Port);
        Assert.Same(_options, _server.Options);
    }

    [Theory]
    [InlineData("api/v1/status")]
    [InlineData("api/v1/info")]
    [InlineData("api/v1/about")]
    [InlineData("api/v1/ping")]
    [InlineData("api/v1/sessions")]
    [InlineData("api/v1/miners")]
    [InlineData("api/v1/sessions/5")]
    public async Task Get_MetadataRoute_ReturnsJson(string path)
    {
        using var response = await _client.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(JsonValueKind.Object, json.RootElement.ValueKind);
    }

    [Theory]
    [InlineData("api/v1/status")]
    [InlineData("api/v1/ping")]
    [InlineData("api/v1/completions/5")]
    public async Task Request_MissingBearer_Returns401(string path)
    {
        using var client = new HttpClient { BaseAddress = _server.BaseUrl };

        using var response = path.Contains("completions", StringComparison.Ordinal)
            ? await client.PostAsync(new Uri(path, UriKind.Relative), Json($$"""{"prompt":"hi"}"""))
            : await client.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(1, _server.Stats.UnauthorizedRequests);
        Assert.Equal(0, _server.Stats.TotalCompletions);
    }

    [Fact]
    public async Task Request_WrongBearer_Returns401WithJsonError()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/v1/ping");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");

        using var response = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.False(string.IsNullOrEmpty(json.RootElement.GetProperty("error").GetProperty("message").GetString()));
    }

    [Fact]
    public async Task Session_UnknownIdWithSessionList_Returns404()
    {
        using var response = await _client.GetAsync(new Uri("api/v1/sessions/99", UriKind.Relative));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Sessions_WithSessionList_ListsIdsAndModels()
    {
        using var json = await GetJsonAsync("api/v1/sessions");

        var sessions = json.RootElement.GetProperty("sessions").EnumerateArray().ToList();
        Assert.Equal(2, sessions.Count);
        Assert.Equal(5, sessions[0].GetProperty("id").GetInt64());
        Assert.Equal("gpt-oss-20b", sessions[0].GetProperty("model").GetString());
    }

    [Fact]
    public async Task Session_EmptySessionList_AcceptsAnyId()
    {
        _options.Sessions = [];

        using var json = await GetJsonAsync("api/v1/sessions/12345");

        Assert.Equal(12345, json.RootElement.GetProperty("id").GetInt64());
        Assert.Equal("simulated", json.RootElement.GetProperty("model").GetString());
    }

    [Fact]
    public async Task Ping_Always_ReturnsPong()
    {
        using var json = await GetJsonAsync("api/v1/ping");

        Assert.Equal("pong", json.RootElement.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Complete_PathFormNonStream_ReturnsTextCompletionShape()
    {
        using var response = await _client.PostAsync(new Uri("api/v1/completions/5", UriKind.Relative), Json($$"""{"prompt":{{Quote(Prompt)}},"stream":false}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        Assert.StartsWith("cmpl-sim-", root.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("text_completion", root.GetProperty("object").GetString());
        Assert.True(root.GetProperty("created").GetInt64() > 1_700_000_000);
        Assert.Equal("gpt-oss-20b", root.GetProperty("model").GetString());
        Assert.False(string.IsNullOrEmpty(root.GetProperty("task_id").GetString()));
        var choice = root.GetProperty("choices")[0];
        Assert.Equal("Hello from Cortensor session 5. You said: User: What is 2+2?", choice.GetProperty("text").GetString());
        Assert.Equal(SimulatedReply.Text(5, Prompt, 0), choice.GetProperty("text").GetString());
        Assert.Equal(0, choice.GetProperty("index").GetInt32());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(JsonValueKind.Null, choice.GetProperty("logprobs").ValueKind);
        var usage = root.GetProperty("usage");
        Assert.Equal((Prompt.Length + 3) / 4, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(SimulatedReply.Tokens(5, Prompt, 0).Count, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(
            usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(),
            usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Complete_BodyForm_UsesSessionIdFromBody()
    {
        using var json = await PostJsonAsync("api/v1/completions", $$"""{"session_id":6,"prompt":"hi there"}""");

        Assert.Equal("qwen", json.RootElement.GetProperty("model").GetString());
        Assert.Equal(SimulatedReply.Text(6, "hi there", 0), json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.False(_server.Stats.LastRequest!.SessionIdInPath);
        Assert.Equal(6, _server.Stats.LastRequest.SessionId);
    }

    [Theory]
    [InlineData("v2")]
    [InlineData("v3")]
    public async Task Complete_OtherApiVersions_AreServed(string version)
    {
        using var json = await PostJsonAsync($"api/{version}/completions/5", """{"prompt":"x"}""");

        Assert.Equal(version, _server.Stats.LastRequest!.ApiVersion);
    }

    [Fact]
    public async Task Complete_UnknownApiVersion_Returns404()
    {
        using var response = await _client.PostAsync(new Uri("api/v4/completions/5", UriKind.Relative), Json("""{"prompt":"x"}"""));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Complete_PathOnly_BodyFormReturns404()
    {
        _options.UrlForms = SimulatedUrlForms.PathOnly;

        using var body = await _client.PostAsync(new Uri("api/v1/completions", UriKind.Relative), Json("""{"session_id":5,"prompt":"x"}"""));
        using var path = await _client.PostAsync(new Uri("api/v1/completions/5", UriKind.Relative), Json("""{"prompt":"x"}"""));

        Assert.Equal(HttpStatusCode.NotFound, body.StatusCode);
        Assert.Equal(HttpStatusCode.OK, path.StatusCode);
    }

    [Fact]
    public async Task Complete_BodyOnly_PathFormReturns404()
    {
        _options.UrlForms = SimulatedUrlForms.BodyOnly;

        using var path = await _client.PostAsync(new Uri("api/v1/completions/5", UriKind.Relative), Json("""{"prompt":"x"}"""));
        using var body = await _client.PostAsync(new Uri("api/v1/completions", UriKind.Relative), Json("""{"session_id":5,"prompt":"x"}"""));

        Assert.Equal(HttpStatusCode.NotFound, path.StatusCode);
        Assert.Equal(HttpStatusCode.OK, body.StatusCode);
    }

    [Theory]
    [InlineData("api/v1/completions/5", "not json")]
    [InlineData("api/v1/completions/5", "")]
    [InlineData("api/v1/completions/5", """{"stream":false}""")]
    [InlineData("api/v1/completions/5", """{"prompt":42}""")]
    [InlineData("api/v1/completions", """{"prompt":"no session"}""")]
    public async Task Complete_BadBody_Returns400(string path, string body)
    {
        using var response = await _client.PostAsync(new Uri(path, UriKind.Relative), Json(body));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(0, _server.Stats.TotalCompletions);
    }

    [Fact]
    public async Task Complete_UnknownSession_Returns404()
    {
        using var response = await _client.PostAsync(new Uri("api/v1/completions/77", UriKind.Relative), Json("""{"prompt":"x"}"""));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Complete_UnknownFields_AreIgnored()
    {
        using var json = await PostJsonAsync("api/v1/completions/5", """{"prompt":"x","max_miners":5,"n":1,"seed":3,"extra":{"a":[1]}}""");

        Assert.Equal("stop", json.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Complete_AllDocumentedFields_AreCaptured()
    {
        const string Body = """
            {"session_id":5,"prompt":"hello","stream":false,"timeout":90,"prompt_type":1,"prompt_template":"",
             "client_reference":"req-123","max_tokens":50,"temperature":0.7,"top_p":0.95,"top_k":40,
             "presence_penalty":0.1,"frequency_penalty":0.2,"precommit_timeout":30,"stop":["<|im_end|>","\nUser:"]}
            """;

        using var json = await PostJsonAsync("api/v1/completions", Body);

        var request = _server.Stats.LastRequest!;
        Assert.Equal("req-123", request.ClientReference);
        Assert.Equal("hello", request.Prompt);
        Assert.Equal(1, request.PromptType);
        Assert.Equal("", request.PromptTemplate);
        Assert.Equal(90, request.Timeout);
        Assert.Equal(50, request.MaxTokens);
        Assert.Equal(0.7, request.Temperature);
        Assert.Equal(0.95, request.TopP);
        Assert.Equal(40, request.TopK);
        Assert.Equal(0.1, request.PresencePenalty);
        Assert.Equal(0.2, request.FrequencyPenalty);
        Assert.Equal(30, request.PrecommitTimeout);
        Assert.Equal(["<|im_end|>", "\nUser:"], request.Stop!);
        Assert.Equal("Bearer default-dev-token", request.Authorization);
        Assert.Equal(1, _server.Stats.TotalCompletions);
    }

    [Fact]
    public async Task Complete_MaxTokens_CutsWithLengthFinish()
    {
        using var json = await PostJsonAsync("api/v1/completions/5", $$"""{"prompt":{{Quote(Prompt)}},"max_tokens":4}""");

        var choice = json.RootElement.GetProperty("choices")[0];
        Assert.Equal("Hello from Cortensor session ", choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(4, json.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Complete_OmitUsage_LeavesUsageOut()
    {
        _options.OmitUsage = true;

        using var json = await PostJsonAsync("api/v1/completions/5", """{"prompt":"x"}""");

        Assert.False(json.RootElement.TryGetProperty("usage", out _));
    }

    [Fact]
    public async Task Complete_AppendTurnMarker_AppendsMarkerThatCleanerRemoves()
    {
        _options.AppendTurnMarker = true;

        using var json = await PostJsonAsync("api/v1/completions/5", $$"""{"prompt":{{Quote(Prompt)}}}""");

        var text = json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        Assert.Equal(SimulatedReply.Text(5, Prompt, 0) + RouterSimulatorOptions.TurnMarkerText, text);
        Assert.Equal(SimulatedReply.Text(5, Prompt, 0), OutputCleaner.Clean(PromptFormat.Plain, text));
    }

    [Fact]
    public async Task Complete_ErrorRateOne_ReturnsErrorStatus()
    {
        _options.ErrorRate = 1;
        _options.Seed = 42;

        using var first = await _client.PostAsync(new Uri("api/v1/completions/5", UriKind.Relative), Json("""{"prompt":"x"}"""));
        _options.ErrorStatusCode = 500;
        using var second = await _client.PostAsync(new Uri("api/v1/completions/5", UriKind.Relative), Json("""{"prompt":"x"}"""));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, first.StatusCode);
        Assert.Equal(HttpStatusCode.InternalServerError, second.StatusCode);
        using var json = JsonDocument.Parse(await first.Content.ReadAsStringAsync());
        Assert.Equal("Simulated router error", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(2, _server.Stats.InjectedErrors);
    }

    [Fact]
    public async Task Complete_ErrorRateHalfWithSeed_FailsSomeButNotAll()
    {
        _options.ErrorRate = 0.5;
        _options.Seed = 7;
        var statuses = new List<HttpStatusCode>();

        for (var i = 0; i < 20; i++)
        {
            using var response = await _client.PostAsync(new Uri("api/v1/completions/5", UriKind.Relative), Json("""{"prompt":"x"}"""));
            statuses.Add(response.StatusCode);
        }

        Assert.Contains(HttpStatusCode.OK, statuses);
        Assert.Contains(HttpStatusCode.ServiceUnavailable, statuses);
    }

    [Fact]
    public async Task Error_PlainTextErrors_AnswersTextPlain()
    {
        _options.PlainTextErrors = true;
        using var client = new HttpClient { BaseAddress = _server.BaseUrl };

        using var response = await client.GetAsync(new Uri("api/v1/status", UriKind.Relative));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("{", body, StringComparison.Ordinal);
        Assert.Contains("Unauthorized", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_Default_SendsTokenChunksFinishAndDone()
    {
        var events = await StreamAsync($$"""{"prompt":{{Quote(Prompt)}},"stream":true,"client_reference":"abc"}""");

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.Clone()).ToList();
        var tokens = SimulatedReply.Tokens(5, Prompt, 0);
        Assert.Equal(tokens.Count + 1, chunks.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            var choice = chunks[i].GetProperty("choices")[0];
            Assert.Equal(tokens[i], choice.GetProperty("text").GetString());
            Assert.Equal(JsonValueKind.Null, choice.GetProperty("finish_reason").ValueKind);
        }

        var final = chunks[^1].GetProperty("choices")[0];
        Assert.Equal("", final.GetProperty("text").GetString());
        Assert.Equal("stop", final.GetProperty("finish_reason").GetString());
        Assert.Equal(tokens.Count, chunks[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Single(chunks.Select(c => c.GetProperty("task_id").GetString()).Distinct());
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.Equal("abc", _server.Stats.LastRequest!.ClientReference);
        Assert.True(_server.Stats.LastRequest.Stream);
        Assert.Equal(1, _server.Stats.CompletedStreams);
    }

    [Fact]
    public async Task Stream_OmitDoneAndUsage_ClosesAfterFinishChunk()
    {
        _options.OmitDone = true;
        _options.OmitUsage = true;

        var events = await StreamAsync("""{"prompt":"x","stream":true}""");

        Assert.DoesNotContain("[DONE]", events);
        using var last = JsonDocument.Parse(events[^1]);
        Assert.Equal("stop", last.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.False(last.RootElement.TryGetProperty("usage", out _));
    }

    [Fact]
    public async Task Stream_InterleaveMiners_SecondMinerSharesTheTaskIdAndStartsAfterFirstChunk()
    {
        _options.InterleaveMiners = true;

        var events = await StreamAsync($$"""{"prompt":{{Quote(Prompt)}},"stream":true}""");

        Assert.Equal("[DONE]", events[^1]);
        var chunks = events.SkipLast(1).Select(e => JsonDocument.Parse(e).RootElement.Clone()).ToList();
        Assert.Single(chunks.Select(c => c.GetProperty("task_id").GetString()).Distinct()); // one task, however many miners
        var firstMiner = chunks[0].GetProperty("id").GetString();
        var secondMiner = chunks[1].GetProperty("id").GetString();
        Assert.NotEqual(firstMiner, secondMiner);
        Assert.Equal(firstMiner, chunks[2].GetProperty("id").GetString());

        string TextOf(string? id) => string.Concat(chunks
            .Where(c => c.GetProperty("id").GetString() == id)
            .Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString()));

        Assert.Equal(SimulatedReply.Text(5, Prompt, 0), TextOf(firstMiner));
        Assert.Equal("[miner-2] " + SimulatedReply.Text(5, Prompt, 0), TextOf(secondMiner));
        Assert.Equal(2, chunks.Count(c => c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind == JsonValueKind.String));
        var firstFinish = chunks.FindIndex(c => c.GetProperty("id").GetString() == firstMiner
            && c.GetProperty("choices")[0].GetProperty("finish_reason").ValueKind == JsonValueKind.String);
        Assert.Contains(chunks.Skip(firstFinish + 1), c => c.GetProperty("id").GetString() == secondMiner);
    }

    [Fact]
    public async Task Task_AfterInterleavedStream_HoldsBothMinersResultsUnderOneTaskId()
    {
        _options.InterleaveMiners = true;
        var events = await StreamAsync($$"""{"prompt":{{Quote(Prompt)}},"stream":true}""");
        var taskId = JsonDocument.Parse(events[0]).RootElement.GetProperty("task_id").GetString();

        // The producer files the record right after its last chunk; poll briefly.
        JsonDocument? task = null;
        for (var i = 0; i < 100 && task is null; i++)
        {
            using var response = await _client.GetAsync(new Uri($"api/v1/tasks/5/{taskId}", UriKind.Relative));
            task = response.StatusCode == HttpStatusCode.OK ? JsonDocument.Parse(await response.Content.ReadAsStringAsync()) : null;
            if (task is null)
            {
                await Task.Delay(20);
            }
        }

        Assert.NotNull(task);
        var root = task.RootElement;
        Assert.Equal(4, root.GetProperty("status").GetInt32());
        Assert.True(root.GetProperty("finished_at").GetInt64() > 1_700_000_000);
        Assert.Equal(2, root.GetProperty("assigned_miners").GetArrayLength());
        var data = root.GetProperty("results").GetProperty("data").EnumerateArray().Select(d => d.GetString()).ToList();
        Assert.Equal([SimulatedReply.Text(5, Prompt, 0), "[miner-2] " + SimulatedReply.Text(5, Prompt, 0)], data);
        Assert.Equal(2, root.GetProperty("results").GetProperty("miners").GetArrayLength());
        task.Dispose();
    }

    [Fact]
    public async Task Task_IdsAreNumberedPerSessionAndUnknownTaskIs404()
    {
        using var first = await PostJsonAsync("api/v1/completions/5", """{"prompt":"x"}""");
        using var second = await PostJsonAsync("api/v1/completions/5", """{"prompt":"y"}""");
        using var other = await PostJsonAsync("api/v1/completions/6", """{"prompt":"z"}""");

        Assert.Equal("1", first.RootElement.GetProperty("task_id").GetString());
        Assert.Equal("2", second.RootElement.GetProperty("task_id").GetString());
        Assert.Equal("1", other.RootElement.GetProperty("task_id").GetString());
        using var task = await GetJsonAsync("api/v1/tasks/5/2");
        Assert.Equal(SimulatedReply.Text(5, "y", 0), task.RootElement.GetProperty("results").GetProperty("data")[0].GetString());
        using var unknown = await _client.GetAsync(new Uri("api/v1/tasks/5/99", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task InfoAndStatus_HaveTheDocumentedShapes()
    {
        using var info = await GetJsonAsync("api/v1/info");
        using var status = await GetJsonAsync("api/v1/status");

        Assert.Equal(
            ["active_sessions", "address", "ip_address", "name", "node_stats", "total_sessions", "version"],
            info.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(2, info.RootElement.GetProperty("total_sessions").GetInt32());
        Assert.Equal(
            ["dedicated_count", "ephemeral_count", "total_count"],
            info.RootElement.GetProperty("node_stats").EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(
            ["active_sessions", "connected_miners", "cpu_usage", "memory_usage", "uptime"],
            status.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.Equal(1, status.RootElement.GetProperty("connected_miners").GetInt32());
    }

    [Fact]
    public async Task Stream_TwoAtOnceOnOneSessionWithBlockingQueue_TakeEachOthersChunks()
    {
        _options.TokensPerSecond = 20;

        var (first, second) = await TwoConcurrentStreamsAsync();

        // Collided: at least one stream carries the other task's chunks (the queue hands chunks to whichever reader is next).
        Assert.True(
            first.Select(TaskOf).Distinct().Count() > 1 || second.Select(TaskOf).Distinct().Count() > 1,
            "the streams did not collide: " + string.Join(",", first.Select(TaskOf)) + " / " + string.Join(",", second.Select(TaskOf)));
    }

    [Fact]
    public async Task Stream_TwoAtOnceOnOneSessionWithNonBlockingQueue_EachGetsOnlyItsOwnTask()
    {
        _options.TokensPerSecond = 20;
        _options.NonBlockingStreamQueue = true;

        var (first, second) = await TwoConcurrentStreamsAsync();

        Assert.Single(first.Select(TaskOf).Distinct());
        Assert.Single(second.Select(TaskOf).Distinct());
        Assert.NotEqual(TaskOf(first[0]), TaskOf(second[0]));
        Assert.Equal(SimulatedReply.Text(5, "first prompt words", 0), string.Concat(first.Select(TextOf)));
        Assert.Equal(SimulatedReply.Text(5, "second prompt words", 0), string.Concat(second.Select(TextOf)));
    }

    private static string? TaskOf(string chunk) => JsonDocument.Parse(chunk).RootElement.GetProperty("task_id").GetString();

    private static string? TextOf(string chunk) => JsonDocument.Parse(chunk).RootElement.GetProperty("choices")[0].GetProperty("text").GetString();

    /// <summary>Two streams on session 5 at once; the chunk payloads of each (without <c>[DONE]</c>).</summary>
    private async Task<(List<string> First, List<string> Second)> TwoConcurrentStreamsAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var first = StreamAsync("""{"prompt":"first prompt words","stream":true}""");
        var second = StreamAsync("""{"prompt":"second prompt words","stream":true}""");
        var both = await Task.WhenAll(first, second).WaitAsync(timeout.Token);
        return ([.. both[0].Where(e => e != "[DONE]")], [.. both[1].Where(e => e != "[DONE]")]);
    }

    [Fact]
    public async Task Stream_TimeToFirstToken_DelaysFirstChunk()
    {
        _options.TimeToFirstToken = TimeSpan.FromMilliseconds(400);
        var stopwatch = Stopwatch.StartNew();
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/completions/5") { Content = Json("""{"prompt":"x","stream":true}""") };

        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var line = await reader.ReadLineAsync();

        Assert.StartsWith("data: {", line, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(350), $"First chunk after {stopwatch.Elapsed}.");
    }

    [Fact]
    public async Task Complete_LatencyAndPacing_DelaysNonStreamAnswer()
    {
        _options.Latency = TimeSpan.FromMilliseconds(150);
        _options.TokensPerSecond = 50;
        var stopwatch = Stopwatch.StartNew();

        using var json = await PostJsonAsync("api/v1/completions/5", """{"prompt":"x"}""");

        // 150 ms latency + 8 tokens at 50/s = 310 ms.
        Assert.True(stopwatch.Elapsed >= TimeSpan.FromMilliseconds(280), $"Answered after {stopwatch.Elapsed}.");
    }

    [Fact]
    public async Task Stream_ClientAbandons_CountsAbortedStream()
    {
        _options.TokensPerSecond = 2;
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/completions/5") { Content = Json($$"""{"prompt":{{Quote(Prompt)}},"stream":true}""") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "default-dev-token");

        // A client of its own: disposing it closes the connection instead of draining the stream for reuse.
        using (var client = new HttpClient { BaseAddress = _server.BaseUrl })
        {
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync(), StringComparison.Ordinal);
        }

        var deadline = Stopwatch.StartNew();
        while (_server.Stats.AbortedStreams == 0 && deadline.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
        }

        Assert.Equal(1, _server.Stats.AbortedStreams);
        Assert.Equal(0, _server.Stats.CompletedStreams);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    private static string Quote(string value) => JsonSerializer.Serialize(value, TestJsonContext.Default.String);

    private async Task<JsonDocument> GetJsonAsync(string path)
    {
        using var response = await _client.GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync());
    }

    private async Task<JsonDocument> PostJsonAsync(string path, string body)
    {
        using var response = await _client.PostAsync(new Uri(path, UriKind.Relative), Json(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text);
    }

    /// <summary>Posts a stream request to session 5 and returns the payload of every <c>data:</c> event.</summary>
    private async Task<List<string>> StreamAsync(string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/completions/5") { Content = Json(body) };
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.EndsWith("\n\n", text, StringComparison.Ordinal);
        var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.All(events, e => Assert.StartsWith("data: ", e, StringComparison.Ordinal));
        return [.. events.Select(e => e["data: ".Length..])];
    }
}
