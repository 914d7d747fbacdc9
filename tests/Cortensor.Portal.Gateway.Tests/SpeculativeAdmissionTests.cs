using System.Diagnostics.Metrics;
using System.Net;
using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Telemetry;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// Speculative admission: with a limiter that answers asynchronously, the router call of a key with ample room
/// starts while the decision is in flight; the client still gets exactly the limiter's answer.
/// </summary>
public sealed class SpeculativeAdmissionTests : IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private GatewayHost _host = null!;
    private GatedLimiter _limiter = null!;
    private MetricCollector<long> _speculative = null!;
    private string _key = null!;

    // Set by the router: whether the limiter's decision had been released when the router call began.
    private bool? _decidedAtCall;

    public Task InitializeAsync() => StartAsync(requestsPerMinute: 100);

    public async Task DisposeAsync()
    {
        _speculative?.Dispose();
        await _host.DisposeAsync();
    }

    private async Task StartAsync(int requestsPerMinute, Action<CortensorGatewayOptions>? gateway = null)
    {
        if (_host is not null)
        {
            _speculative.Dispose();
            await _host.DisposeAsync();
        }

        _host = await GatewayHost.StartAsync(services =>
        {
            services.Configure<RateLimitingOptions>(o => o.Defaults.Key.RequestsPerMinute = requestsPerMinute);
            services.AddSingleton<IRateLimiter>(sp => new GatedLimiter(new InProcessRateLimiter(new RateLimitingOptions(), sp.GetRequiredService<TimeProvider>())));
            if (gateway is not null)
            {
                services.Configure(gateway);
            }
        });
        _limiter = (GatedLimiter)_host.Services.GetRequiredService<IRateLimiter>();
        _speculative = new MetricCollector<long>(_host.Services.GetRequiredService<IMeterFactory>(), GatewayTelemetry.Name, "cortensor.gateway.admission.speculative");
        _key = await _host.IssueKeyAsync();
        _host.Router.OnCall = () => _decidedAtCall = _limiter.Gate is not { } gate || gate.Task.IsCompleted;
    }

    /// <summary>Sends one request whose decision waits at the gate; returns once the limiter has been asked.</summary>
    private async Task<Task<HttpResponseMessage>> SendGatedAsync(string json)
    {
        _limiter.Gate = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _limiter.Entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var response = _host.ChatAsync(json, _key);
        await _limiter.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        return response;
    }

    private static async Task UntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(5);
        }
    }

    private long Count(string outcome) => _speculative.GetMeasurementSnapshot()
        .Where(m => Equals(m.Tags["cortensor.admission.outcome"], outcome)).Sum(m => m.Value);

    [Fact]
    public async Task FirstRequestOfAKey_WaitsForItsDecision()
    {
        var pending = await SendGatedAsync(Http.Chat());
        _limiter.Gate!.SetResult(true);

        Assert.Equal(HttpStatusCode.OK, (await pending.WaitAsync(Timeout)).StatusCode);
        Assert.True(_decidedAtCall); // nothing known about the key yet: the router call came after the decision
        Assert.Equal(0, Count("admitted") + Count("discarded"));
    }

    [Fact]
    public async Task AfterAnAmpleDecision_RouterCallStartsBeforeTheDecision_AndItsAnswerIsServedOnceAdmitted()
    {
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode); // 99 of 100 left

        var pending = await SendGatedAsync(Http.Chat());
        await UntilAsync(() => _host.Router.Calls == 2);
        Assert.False(_decidedAtCall);
        Assert.False(pending.IsCompleted); // held until the decision arrives
        _limiter.Gate!.SetResult(true);

        var response = await pending.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("Hello there.", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("\"key-rpm\";r=98;t=2", response.Headers.GetValues("RateLimit").Single());
        Assert.Matches("limits;dur=[0-9.]+", response.Headers.GetValues("Server-Timing").Single());
        Assert.Equal(1, Count("admitted"));
        Assert.Equal(0, Count("discarded"));
    }

    [Fact]
    public async Task RefusedWhileTheRouterCallRuns_CallIsCancelled_ClientGetsThe429_AndUsageIsRejected()
    {
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);
        _host.Router.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously); // never answers by itself

        var pending = await SendGatedAsync(Http.Chat());
        await UntilAsync(() => _host.Router.Calls == 2);
        _limiter.Gate!.SetResult(false); // another replica used the room up meanwhile

        var response = await pending.WaitAsync(Timeout); // bounded: a refusal that waited for the held router call would never answer
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("rate_limit_exceeded", error.Code);
        Assert.Equal("5", response.Headers.GetValues("Retry-After").Single());
        Assert.Equal(1, _host.Router.Canceled);
        Assert.Equal(1, Count("discarded"));

        var record = await RecordForAsync(response);
        Assert.Equal(UsageOutcome.Rejected, record.Usage.Outcome); // not UpstreamFailed: the cancelled call is not the router's fault
        Assert.Null(record.Usage.Pool);
        Assert.Null(record.Log.RouterId);
        Assert.Equal(429, record.Log.StatusCode);
        Assert.Equal(0, record.Usage.PromptTokens + record.Usage.CompletionTokens);
    }

    [Fact]
    public async Task RefusedWhileARouterStreamOpens_StreamIsDisposed_AndTheClientGetsJson429()
    {
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);

        var pending = await SendGatedAsync(Http.Chat(extra: ",\"stream\":true"));
        await UntilAsync(() => _host.Router.Calls == 2);
        _limiter.Gate!.SetResult(false);

        var response = await pending.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("rate_limit_exceeded", (await response.ReadErrorAsync()).Code); // JSON, not an SSE body
        await UntilAsync(() => _host.Router.StreamsEnded == 1);
        Assert.Equal(1, Count("discarded"));
    }

    [Fact]
    public async Task Stream_AdmittedSpeculatively_StreamsAsUsual()
    {
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);

        var pending = await SendGatedAsync(Http.Chat(extra: ",\"stream\":true"));
        await UntilAsync(() => _host.Router.Calls == 2);
        _limiter.Gate!.SetResult(true);

        var response = await pending.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("there.", body, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
        Assert.Equal(1, Count("admitted"));
    }

    [Fact]
    public async Task ClientLeavesDuringTheDecision_SpeculativeCallIsCancelled()
    {
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);
        _host.Router.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var leave = new CancellationTokenSource();
        _limiter.Gate = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        _limiter.Entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Http.Chat(), System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", _key);
        var pending = _host.Client.SendAsync(request, leave.Token);
        await _limiter.Entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await UntilAsync(() => _host.Router.Calls == 2);

        await leave.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending.WaitAsync(Timeout));
        await UntilAsync(() => _host.Router.Canceled == 1);
        await UntilAsync(() => Count("discarded") == 1);
    }

    [Fact]
    public async Task LastDecisionWithinTheMargin_NextRequestWaits()
    {
        await StartAsync(requestsPerMinute: 5); // margin: 1 (20 % of 5)
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);
        }

        // 2 left > margin 1: the fourth still speculates.
        var fourth = await SendGatedAsync(Http.Chat());
        await UntilAsync(() => _host.Router.Calls == 4);
        Assert.False(_decidedAtCall);
        _limiter.Gate!.SetResult(true);
        Assert.Equal(HttpStatusCode.OK, (await fourth.WaitAsync(Timeout)).StatusCode);

        // 1 left = margin: the fifth waits for its decision.
        var fifth = await SendGatedAsync(Http.Chat());
        _limiter.Gate!.SetResult(true);
        Assert.Equal(HttpStatusCode.OK, (await fifth.WaitAsync(Timeout)).StatusCode);
        Assert.True(_decidedAtCall);
        Assert.Equal(3, Count("admitted")); // the second, third and fourth
    }

    [Fact]
    public async Task LastDecisionOlderThanMaxAge_NextRequestWaits()
    {
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);
        _host.Time.Advance(TimeSpan.FromSeconds(1.001));

        var pending = await SendGatedAsync(Http.Chat());
        _limiter.Gate!.SetResult(true);

        Assert.Equal(HttpStatusCode.OK, (await pending.WaitAsync(Timeout)).StatusCode);
        Assert.True(_decidedAtCall);
        Assert.Equal(1, _host.Services.GetRequiredService<AdmissionHeadroom>().Count); // the fresh decision replaced the stale one
    }

    [Fact]
    public void StaleEntries_AreDroppedWhenLookedUp()
    {
        var headroom = _host.Services.GetRequiredService<AdmissionHeadroom>();
        headroom.Observe("key_a", Allowed(Counter("key-rpm", RateLimitClass.Requests, 100, 90)));
        Assert.True(headroom.MaySpeculate("key_a", 0));

        _host.Time.Advance(TimeSpan.FromSeconds(1.001));

        Assert.False(headroom.MaySpeculate("key_a", 0));
        Assert.Equal(0, headroom.Count);
    }

    [Fact]
    public void KeysThatStopSending_AreSweptWhenAnotherKeyArrives()
    {
        var headroom = _host.Services.GetRequiredService<AdmissionHeadroom>();
        var ample = Allowed(Counter("key-rpm", RateLimitClass.Requests, 100, 90));
        for (var i = 0; i < 50; i++)
        {
            headroom.Observe("key_old_" + i, ample);
        }

        _host.Time.Advance(AdmissionHeadroom.SweepInterval - TimeSpan.FromSeconds(0.5));
        headroom.Observe("key_recent", ample);
        Assert.Equal(51, headroom.Count); // not due yet: nothing swept

        _host.Time.Advance(TimeSpan.FromSeconds(0.5));
        headroom.Observe("key_new", ample);

        Assert.Equal(2, headroom.Count); // the 50 older than MaxAge are gone; key_recent (0.5 s old) and key_new stay
        Assert.True(headroom.MaySpeculate("key_recent", 0));
        Assert.True(headroom.MaySpeculate("key_new", 0));
    }

    [Fact]
    public async Task Disabled_EveryRequestWaits()
    {
        await StartAsync(requestsPerMinute: 100, o => o.SpeculativeAdmission.Enabled = false);
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);

        var pending = await SendGatedAsync(Http.Chat());
        _limiter.Gate!.SetResult(true);

        Assert.Equal(HttpStatusCode.OK, (await pending.WaitAsync(Timeout)).StatusCode);
        Assert.True(_decidedAtCall);
        Assert.Equal(0, _host.Services.GetRequiredService<AdmissionHeadroom>().Count);
    }

    [Fact]
    public async Task SynchronousLimiter_NeverSpeculates()
    {
        // The in-process limiter answers before the router call could start: nothing to overlap, nothing remembered.
        _limiter.Synchronous = true;
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), _key)).StatusCode);
            Assert.True(_decidedAtCall);
        }

        Assert.Equal(0, Count("admitted") + Count("discarded"));
        Assert.Equal(0, _host.Services.GetRequiredService<AdmissionHeadroom>().Count);
    }

    [Fact]
    public void TokenSlack_IsTheSmallestRoomAboveTheMarginOfTheTokenRules()
    {
        var decision = Allowed(
            Counter("key-rpm", RateLimitClass.Requests, quota: 100, remaining: 50),
            Counter("key-tpm", RateLimitClass.Tokens, quota: 1000, remaining: 500),
            Counter("org-tpm", RateLimitClass.Tokens, quota: 10_000, remaining: 2_400));

        Assert.Equal(300, AdmissionHeadroom.TokenSlack(decision, 0.2)); // key: 500 - 200; org: 2,400 - 2,000
        Assert.Equal(long.MaxValue, AdmissionHeadroom.TokenSlack(Allowed(Counter("key-rpm", RateLimitClass.Requests, 100, 50)), 0.2));
        Assert.Equal(-1, AdmissionHeadroom.TokenSlack(Allowed(Counter("key-tpm", RateLimitClass.Tokens, 1000, 199)), 0.2));
    }

    [Theory]
    [InlineData(RateLimitClass.Requests, 10, 2, false)] // margin 2: the next request would eat into it
    [InlineData(RateLimitClass.Requests, 10, 3, true)]
    [InlineData(RateLimitClass.Concurrency, 10, 2, false)]
    [InlineData(RateLimitClass.Concurrency, 4, 2, true)] // margin 1 (20 % of 4, rounded up)
    [InlineData(RateLimitClass.Requests, 1, 1, false)] // a quota of one never speculates
    public void RequestAndConcurrencyRules_NeedMoreThanTheMargin(RateLimitClass rateClass, long quota, long remaining, bool ample)
    {
        var decision = Allowed(Counter("key-x", rateClass, quota, remaining));

        Assert.Equal(ample, AdmissionHeadroom.TokenSlack(decision, 0.2) >= 0);
    }

    [Fact]
    public void RefusedOrDegradedDecisions_AreNeverAmple()
    {
        var counter = Counter("key-rpm", RateLimitClass.Requests, 100, 90);

        Assert.Equal(-1, AdmissionHeadroom.TokenSlack(Allowed(counter) with { IsAllowed = false }, 0.2));
        Assert.Equal(-1, AdmissionHeadroom.TokenSlack(Allowed(counter) with { Degraded = true }, 0.2));
    }

    [Fact]
    public void MaySpeculate_OnlyForRequestsThatFitTheTokenSlack_AndForgetsAKeyWhenRoomRunsLow()
    {
        var headroom = _host.Services.GetRequiredService<AdmissionHeadroom>();
        headroom.Observe("key_a", Allowed(Counter("key-tpm", RateLimitClass.Tokens, 1000, 500)));

        Assert.True(headroom.MaySpeculate("key_a", 300));
        Assert.False(headroom.MaySpeculate("key_a", 301));
        Assert.False(headroom.MaySpeculate("key_b", 0));

        headroom.Observe("key_a", Allowed(Counter("key-tpm", RateLimitClass.Tokens, 1000, 100)));
        Assert.False(headroom.MaySpeculate("key_a", 0));
        Assert.Equal(0, headroom.Count);
    }

    private static RateLimitCounter Counter(string policy, RateLimitClass rateClass, long quota, long remaining) =>
        new(policy, new RateLimitRule(policy[4..], rateClass, quota, TimeSpan.FromMinutes(1)), remaining, TimeSpan.Zero);

    private static RateLimitDecision Allowed(params RateLimitCounter[] counters) => new() { IsAllowed = true, Counters = counters };

    [Theory]
    [InlineData(0.0, true)]
    [InlineData(1.0, true)]
    [InlineData(1.5, false)]
    [InlineData(-0.1, false)]
    public void Headroom_IsAShareOfTheQuota(double headroom, bool valid)
    {
        var options = new CortensorGatewayOptions { SpeculativeAdmission = { Headroom = headroom } };

        Assert.Equal(valid, new CortensorGatewayOptionsValidator().Validate(null, options).Succeeded);
    }

    [Theory]
    [InlineData(0.0, false)]
    [InlineData(0.001, true)]
    [InlineData(60.0, true)]
    [InlineData(60.001, false)]
    public void MaxAge_IsBetweenOneMillisecondAndOneMinute(double seconds, bool valid)
    {
        var options = new CortensorGatewayOptions { SpeculativeAdmission = { MaxAge = TimeSpan.FromSeconds(seconds) } };

        var result = new SpeculativeAdmissionOptionsValidator().Validate(null, options);

        Assert.Equal(valid, result.Succeeded);
        if (!valid)
        {
            Assert.Contains("SpeculativeAdmission:MaxAge", result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task InvalidSettings_FailOnStart()
    {
        var start = GatewayHost.StartAsync(services => services.Configure<CortensorGatewayOptions>(o => o.SpeculativeAdmission.MaxAge = TimeSpan.Zero));

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => start);
        Assert.Contains("MaxAge", error.Message, StringComparison.Ordinal);
    }

    private async Task<UsageRecord> RecordForAsync(HttpResponseMessage response)
    {
        var sink = (InMemoryUsageSink)_host.Services.GetRequiredService<IUsageSink>();
        var requestId = response.Headers.GetValues("X-Request-Id").Single();
        UsageRecord? record = null;
        await UntilAsync(() =>
        {
            _host.Time.Advance(TimeSpan.FromMilliseconds(250)); // the writer batches on the (fake) clock
            return sink.TryGet(requestId, out record);
        });
        return record!;
    }

    /// <summary>
    /// The in-process limiter behind a gate: while <see cref="Gate"/> is set, each decision waits for it, as a Redis
    /// round trip would; releasing it with false refuses the request as if another replica had used the quota up.
    /// </summary>
    private sealed class GatedLimiter(IRateLimiter inner) : IRateLimiter
    {
        public TaskCompletionSource<bool>? Gate { get; set; }

        public TaskCompletionSource? Entered { get; set; }

        /// <summary>Answer ungated requests at once, as the in-process limiter does (by default they yield first, as Redis would).</summary>
        public bool Synchronous { get; set; }

        public async ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
        {
            if (Gate is null && !Synchronous)
            {
                await Task.Yield();
            }

            if (Gate is { } gate)
            {
                Entered?.TrySetResult();
                if (!await gate.Task.WaitAsync(cancellationToken))
                {
                    var (partition, rule) = request.Partitions[0].Rules is [var first, ..] ? (request.Partitions[0], first) : throw new InvalidOperationException("no rule");
                    var counter = new RateLimitCounter($"{partition.Scope}-{rule.Name}", rule, 0, TimeSpan.FromSeconds(5));
                    return new RateLimitDecision { IsAllowed = false, Counters = [counter], LimitedBy = counter, RetryAfter = TimeSpan.FromSeconds(5) };
                }
            }

            return await inner.AcquireAsync(request, cancellationToken);
        }

        public ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default) =>
            inner.ReleaseAsync(lease, actualTokens, cancellationToken);
    }
}
