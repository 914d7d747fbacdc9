using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Cortensor.Portal.Fleet.Simulator;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Fleet.Tests.Simulator;

/// <summary>
/// The simulator's answers without an answer, as routers send after an error or their own task timeout (installer
/// PR #167): an empty 200, a stream of only <c>data: [DONE]</c>, and the same after holding for the task timeout.
/// </summary>
public sealed class RouterSimulatorEmptyReplyTests : IAsyncLifetime
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-12-07T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly RouterSimulatorOptions _options = new();
    private RouterSimulatorServer _server = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _options.TimeProvider = _time;
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
    public async Task Complete_EmptyReplyRateOne_Answers200WithAnEmptyBody()
    {
        _options.EmptyReplyRate = 1;

        using var response = await PostAsync("""{"prompt":"hi","timeout":30}""", stream: false);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("", await response.Content.ReadAsStringAsync());
        Assert.Equal(1, _server.Stats.TotalCompletions);
        Assert.Equal(1, _server.Stats.EmptyReplies);
        Assert.Equal(0, _server.Stats.TimedOutReplies);
        Assert.Equal(0, _server.Stats.InjectedErrors);
    }

    [Fact]
    public async Task Stream_EmptyReplyRateOne_SendsOnlyDone()
    {
        _options.EmptyReplyRate = 1;

        using var response = await PostAsync("""{"prompt":"hi","stream":true}""", stream: true);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("data: [DONE]\n\n", await response.Content.ReadAsStringAsync());
        Assert.Equal(1, _server.Stats.EmptyReplies);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TimeoutRateOne_HoldsForTheRequestsTimeoutThenAnswersEmpty(bool stream)
    {
        _options.TimeoutRate = 1;
        var streamFlag = stream ? "true" : "false";

        var pending = PostAsync($$"""{"prompt":"hi","timeout":30,"stream":{{streamFlag}}}""", stream);
        await WaitUntilAsync(() => _server.Stats.TimedOutReplies == 1);
        _time.Advance(TimeSpan.FromSeconds(29));
        await Task.Delay(200);

        HttpResponseMessage response;
        if (stream)
        {
            // A stream's headers go out at once; its body stays open until the timeout.
            response = await pending;
            var body = response.Content.ReadAsStringAsync();
            await Task.Delay(200);
            Assert.False(body.IsCompleted, "the stream ended before the router's task timeout");
            await AdvanceUntilAsync(body);
            Assert.Equal("data: [DONE]\n\n", await body);
        }
        else
        {
            Assert.False(pending.IsCompleted, "the reply came before the router's task timeout");
            await AdvanceUntilAsync(pending);
            response = await pending;
            Assert.Equal("", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(0, _server.Stats.EmptyReplies);
        response.Dispose();
    }

    [Fact]
    public async Task TimeoutAfter_OverridesTheRequestsTimeout()
    {
        _options.TimeoutRate = 1;
        _options.TimeoutAfter = TimeSpan.FromSeconds(2);

        var pending = PostAsync("""{"prompt":"hi","timeout":600}""", stream: false);
        await WaitUntilAsync(() => _server.Stats.TimedOutReplies == 1);
        _time.Advance(TimeSpan.FromSeconds(1));
        await Task.Delay(200);
        Assert.False(pending.IsCompleted, "the reply came before TimeoutAfter");
        await AdvanceUntilAsync(pending, step: TimeSpan.FromSeconds(1), maxSteps: 10);

        using var response = await pending;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Rates_ShareOneRollPerCompletion_EachOutcomeShowsUp()
    {
        _options.Seed = 11;
        _options.ErrorRate = 0.3;
        _options.EmptyReplyRate = 0.3;
        var outcomes = new List<string>();

        for (var i = 0; i < 30; i++)
        {
            using var response = await PostAsync("""{"prompt":"hi"}""", stream: false);
            var body = await response.Content.ReadAsStringAsync();
            outcomes.Add(response.StatusCode != HttpStatusCode.OK ? "error" : body.Length == 0 ? "empty" : "answer");
        }

        Assert.Contains("error", outcomes);
        Assert.Contains("empty", outcomes);
        Assert.Contains("answer", outcomes);
        Assert.Equal(outcomes.Count(o => o == "error"), _server.Stats.InjectedErrors);
        Assert.Equal(outcomes.Count(o => o == "empty"), _server.Stats.EmptyReplies);
    }

    private Task<HttpResponseMessage> PostAsync(string body, bool stream)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/completions/5") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (stream)
        {
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        }

        return _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    /// <summary>Moves the fake clock a step at a time until <paramref name="task"/> ends (its timer may start after a step).</summary>
    private async Task AdvanceUntilAsync(Task task, TimeSpan? step = null, int maxSteps = 40)
    {
        for (var i = 0; i < maxSteps && !task.IsCompleted; i++)
        {
            _time.Advance(step ?? TimeSpan.FromSeconds(1));
            await Task.WhenAny(task, Task.Delay(100));
        }

        Assert.True(task.IsCompleted, "the held reply never came");
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++)
        {
            await Task.Delay(25);
        }

        Assert.True(condition());
    }
}
