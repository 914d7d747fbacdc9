using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Simulator;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// Two customers streaming at once through the gateway to one (router, session) of a simulated router whose stream
/// queue is blocking (the router default, installer PR #146): the router hands chunks to whichever stream reads next.
/// </summary>
public sealed class StreamIsolationTests : IAsyncLifetime
{
    private const string AlphaPrompt = "alpha1 alpha2 alpha3";
    private const string BravoPrompt = "bravo1 bravo2 bravo3";

    private RouterSimulatorServer _router = null!;
    private WebApplication? _app;
    private HttpClient _client = null!;

    public async Task InitializeAsync() =>
        // About ten tokens a reply at 10 tokens/s: a stream stays open about a second.
        _router = await RouterSimulatorServer.StartAsync(new RouterSimulatorOptions { TokensPerSecond = 10 });

    public async Task DisposeAsync()
    {
        _client?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }

        await _router.DisposeAsync();
    }

    private async Task StartGatewayAsync(RouterQueueMode mode, int queueLength = 32, int waitSeconds = 20, int taskTimeoutSeconds = 120, int? keyConcurrency = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddCortensorGateway().Fleet.Configure(fleet =>
        {
            fleet.Routers["r1"] = new RouterOptions { BaseUrl = _router.BaseUrl, ApiKey = "default-dev-token" };
            fleet.Pools["p1"] = new PoolOptions
            {
                PromptFormat = PromptFormat.Plain,
                RouterQueues = mode,
                StreamQueueLength = queueLength,
                StreamQueueWaitSeconds = waitSeconds,
                TaskTimeoutSeconds = taskTimeoutSeconds,
                Members = [new PoolMemberOptions { Router = "r1", SessionId = 5 }],
            };
            fleet.Models["m1"] = new ModelOptions { Pool = "p1" };
        });
        if (keyConcurrency is { } cap)
        {
            builder.Services.Configure<RateLimitingOptions>(o => o.Defaults.Key.ConcurrentRequests = cap);
        }

        _app = builder.Build();
        _app.MapCortensorGateway();
        await _app.StartAsync();
        _client = _app.GetTestClient();
        _client.Timeout = TimeSpan.FromSeconds(60);
    }

    private async Task<string> KeyAsync(string org) =>
        (await _app!.Services.GetRequiredService<IApiKeyProvider>().IssueAsync(new IssueApiKeyRequest { OrgId = org })).Secret;

    private async Task<HttpResponseMessage> SendStreamAsync(string key, string prompt, string extra = "")
    {
        var body = $$"""{"model":"m1","stream":true,"messages":[{"role":"user","content":"{{prompt}}"}]{{extra}}}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>A whole stream: its status, the text of its deltas, whether it ended in [DONE], and any in-band error code.</summary>
    private async Task<StreamResult> StreamAsync(string key, string prompt)
    {
        using var response = await SendStreamAsync(key, prompt);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return new StreamResult(response.StatusCode, "", Done: false, ErrorCode: null);
        }

        var text = new StringBuilder();
        var done = false;
        string? error = null;
        foreach (var data in (await response.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]))
        {
            if (data == "[DONE]")
            {
                done = true;
                continue;
            }

            using var json = JsonDocument.Parse(data);
            if (json.RootElement.TryGetProperty("error", out var e))
            {
                error = e.GetProperty("code").GetString();
                continue;
            }

            if (json.RootElement.GetProperty("choices").EnumerateArray().FirstOrDefault() is { ValueKind: JsonValueKind.Object } choice
                && choice.GetProperty("delta").TryGetProperty("content", out var content))
            {
                text.Append(content.GetString());
            }
        }

        return new StreamResult(HttpStatusCode.OK, text.ToString(), done, error);
    }

    private async Task<(StreamResult Alpha, StreamResult Bravo)> TwoCustomersAtOnceAsync()
    {
        var alphaKey = await KeyAsync("org_alpha");
        var bravoKey = await KeyAsync("org_bravo");
        var both = await Task.WhenAll(StreamAsync(alphaKey, AlphaPrompt), StreamAsync(bravoKey, BravoPrompt)).WaitAsync(TimeSpan.FromSeconds(60));
        return (both[0], both[1]);
    }

    private static bool IsCleanAnswerTo(StreamResult result, string own, string other) =>
        result.Status == HttpStatusCode.OK && result.Done && result.ErrorCode is null
        && result.Text.Contains(own, StringComparison.Ordinal) && !result.Text.Contains(other, StringComparison.Ordinal);

    [Fact]
    public async Task Exclusive_TwoCustomersOnOneBlockingSession_EachReceivesOnlyItsOwnText()
    {
        await StartGatewayAsync(RouterQueueMode.Blocking);

        var (alpha, bravo) = await TwoCustomersAtOnceAsync();

        Assert.True(IsCleanAnswerTo(alpha, "alpha3", "bravo"), $"alpha got: {alpha}");
        Assert.True(IsCleanAnswerTo(bravo, "bravo3", "alpha"), $"bravo got: {bravo}");
        Assert.Equal(2, _router.Stats.CompletedStreams);
    }

    [Fact]
    public async Task WithoutIsolation_TwoCustomersOnOneBlockingSession_DoNotBothGetCleanAnswers()
    {
        // The same setup with isolation turned off (the pool wrongly declares its routers non-blocking): the router mixes
        // the streams, so the test above depends on isolation. The ownership check turns the mix into errors, never text.
        await StartGatewayAsync(RouterQueueMode.NonBlocking);

        var (alpha, bravo) = await TwoCustomersAtOnceAsync();

        Assert.False(
            IsCleanAnswerTo(alpha, "alpha3", "bravo") && IsCleanAnswerTo(bravo, "bravo3", "alpha"),
            $"the streams did not collide: alpha {alpha}, bravo {bravo}");
        Assert.DoesNotContain("bravo", alpha.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("alpha", bravo.Text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NonBlocking_OnANonBlockingRouter_TwoStreamsRunConcurrently()
    {
        _router.Options.NonBlockingStreamQueue = true;
        _router.Options.TokensPerSecond = 4; // each stream stays open a few seconds
        await StartGatewayAsync(RouterQueueMode.NonBlocking);
        var alphaKey = await KeyAsync("org_alpha");
        var bravoKey = await KeyAsync("org_bravo");

        // Both streams have their first chunk while neither has finished.
        using var alpha = await SendStreamAsync(alphaKey, AlphaPrompt);
        using var bravo = await SendStreamAsync(bravoKey, BravoPrompt);

        Assert.Equal(HttpStatusCode.OK, alpha.StatusCode);
        Assert.Equal(HttpStatusCode.OK, bravo.StatusCode);
        Assert.Equal(0, _router.Stats.CompletedStreams);
        Assert.Equal(2, _router.Stats.StreamedCompletions);
        var (alphaText, bravoText) = (await alpha.Content.ReadAsStringAsync(), await bravo.Content.ReadAsStringAsync());
        Assert.Contains("alpha3", alphaText, StringComparison.Ordinal);
        Assert.DoesNotContain("bravo", alphaText, StringComparison.Ordinal);
        Assert.Contains("bravo3", bravoText, StringComparison.Ordinal);
        Assert.DoesNotContain("alpha", bravoText, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exclusive_QueueLengthZero_SecondStreamGets503WithRetryAfterInOpenAIShape()
    {
        await StartGatewayAsync(RouterQueueMode.Blocking, queueLength: 0);
        var key = await KeyAsync("org_alpha");
        using var first = await SendStreamAsync(key, AlphaPrompt);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        using var second = await SendStreamAsync(key, BravoPrompt);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
        Assert.NotNull(second.Headers.RetryAfter);
        var error = await second.ReadErrorAsync();
        Assert.Equal("model_busy", error.Code);
        Assert.Equal("service_unavailable_error", error.Type);
        Assert.Equal(1, _router.Stats.StreamedCompletions); // the refused stream never reached the router
    }

    [Fact]
    public async Task Exclusive_WaitExpires_SecondStreamGets503AndFirstFinishes()
    {
        _router.Options.TokensPerSecond = 3; // the first stream stays open well past the one-second wait
        await StartGatewayAsync(RouterQueueMode.Blocking, queueLength: 4, waitSeconds: 1);
        var key = await KeyAsync("org_alpha");
        using var first = await SendStreamAsync(key, AlphaPrompt);

        using var second = await SendStreamAsync(key, BravoPrompt);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, second.StatusCode);
        Assert.Equal("model_busy", (await second.ReadErrorAsync()).Code);
        Assert.Contains("alpha3", await first.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exclusive_NonStreamRequestDuringAStream_IsNotQueued()
    {
        // Non-stream answers come from the task's result, not the session's token queue: they take no stream slot.
        await StartGatewayAsync(RouterQueueMode.Blocking, queueLength: 0);
        var key = await KeyAsync("org_alpha");
        using var stream = await SendStreamAsync(key, AlphaPrompt);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent($$"""{"model":"m1","messages":[{"role":"user","content":"{{BravoPrompt}}"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var plain = await _client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        Assert.Contains("bravo3", await plain.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exclusive_StreamCutShortByAStop_SessionStaysTakenForTheTaskTimeout_ThenIsFree()
    {
        // The gateway ends its call at the stop string; the router's task goes on, and on a blocking-queue router its
        // remaining tokens could reach the next stream on that session: the slot is held for the task timeout.
        await StartGatewayAsync(RouterQueueMode.Blocking, queueLength: 0, taskTimeoutSeconds: 2);
        var key = await KeyAsync("org_alpha");
        using (var cut = await SendStreamAsync(key, AlphaPrompt, extra: ""","stop":["alpha2"]"""))
        {
            Assert.Equal(HttpStatusCode.OK, cut.StatusCode);
            Assert.DoesNotContain("alpha2", await cut.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var during = await SendStreamAsync(key, BravoPrompt))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
            Assert.Equal("model_busy", (await during.ReadErrorAsync()).Code);
        }

        await Task.Delay(TimeSpan.FromSeconds(2.5));
        var after = await StreamAsync(key, BravoPrompt);
        Assert.True(IsCleanAnswerTo(after, "bravo3", "alpha"), $"{after.Status} {after.Text}");
    }

    [Fact]
    public async Task Exclusive_StreamThatFinished_FreesItsSessionAtOnce()
    {
        await StartGatewayAsync(RouterQueueMode.Blocking, queueLength: 0, taskTimeoutSeconds: 60);
        var key = await KeyAsync("org_alpha");
        var first = await StreamAsync(key, AlphaPrompt);
        Assert.True(IsCleanAnswerTo(first, "alpha3", "bravo"), $"{first.Status} {first.Text}");

        var second = await StreamAsync(key, BravoPrompt);
        Assert.True(IsCleanAnswerTo(second, "bravo3", "alpha"), $"{second.Status} {second.Text}");
    }

    [Fact]
    public async Task Exclusive_ARequestRefusedForItsLimits_GetsIts429_AndNeverTakesOrWaitsForTheSession()
    {
        // One request in flight per key: the key's second stream is refused by its own limit (429), not answered
        // model_busy for a session it would never have been allowed to use.
        await StartGatewayAsync(RouterQueueMode.Blocking, queueLength: 0, keyConcurrency: 1);
        var key = await KeyAsync("org_alpha");
        using var first = await SendStreamAsync(key, AlphaPrompt);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        using var second = await SendStreamAsync(key, BravoPrompt);

        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Equal("rate_limit_exceeded", (await second.ReadErrorAsync()).Code);
        Assert.Contains("alpha3", await first.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private sealed record StreamResult(HttpStatusCode Status, string Text, bool Done, string? ErrorCode);
}
