using System.Net;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>Rate limits through the gateway, in-process limiter on the fake clock: 429 shape and headers.</summary>
public sealed class RateLimitingTests : IAsyncLifetime
{
    private GatewayHost _host = null!;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
    }

    private async Task<GatewayHost> StartAsync(Action<RateLimitingOptions> limits)
    {
        _host = await GatewayHost.StartAsync(services => services.Configure(limits));
        return _host;
    }

    [Fact]
    public async Task KeyRpm_ThirdOfThreeAdmitted_FourthGets429WithRetryAfterAndHeaders()
    {
        var host = await StartAsync(o => o.Defaults.Key.RequestsPerMinute = 3);
        var key = await host.IssueKeyAsync();

        for (var i = 0; i < 3; i++)
        {
            var ok = await host.ChatAsync(Http.Chat(), key);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("\"key-rpm\";q=3;w=60", ok.Headers.GetValues("RateLimit-Policy").Single());
            Assert.Equal($"\"key-rpm\";r={2 - i};t={20 * (i + 1)}", ok.Headers.GetValues("RateLimit").Single());
            Assert.Equal((2 - i).ToString(System.Globalization.CultureInfo.InvariantCulture), ok.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        var limited = await host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        var error = await limited.ReadErrorAsync();
        Assert.Equal("requests", error.Type);
        Assert.Equal("rate_limit_exceeded", error.Code);
        Assert.Contains("requests per min (RPM): Limit 3", error.Message, StringComparison.Ordinal);
        Assert.Equal("20", limited.Headers.GetValues("Retry-After").Single()); // GCRA: one request every 20 s
        Assert.Equal("20000", limited.Headers.GetValues("retry-after-ms").Single());
        Assert.Equal("\"key-rpm\";q=3;w=60", limited.Headers.GetValues("RateLimit-Policy").Single());
        Assert.StartsWith("\"key-rpm\";r=0;", limited.Headers.GetValues("RateLimit").Single(), StringComparison.Ordinal);
        Assert.Equal("3", limited.Headers.GetValues("x-ratelimit-limit-requests").Single());
        Assert.Equal(3, host.Router.Calls); // the refused request never reached a router
    }

    [Fact]
    public async Task After429_WaitingRetryAfter_IsAdmittedAgain()
    {
        var host = await StartAsync(o => o.Defaults.Key.RequestsPerMinute = 2);
        var key = await host.IssueKeyAsync();
        await host.ChatAsync(Http.Chat(), key);
        await host.ChatAsync(Http.Chat(), key);
        var limited = await host.ChatAsync(Http.Chat(), key);
        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);

        host.Time.Advance(TimeSpan.FromSeconds(int.Parse(limited.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture)));

        Assert.Equal(HttpStatusCode.OK, (await host.ChatAsync(Http.Chat(), key)).StatusCode);
    }

    [Fact]
    public async Task OrgLimit_IsSharedByTheOrgsKeys()
    {
        _host = await GatewayHost.StartAsync(services => services.Configure<RateLimitingOptions>(o => o.Defaults.Org.RequestsPerMinute = 3));
        var a = await _host.IssueKeyAsync();
        var b = await _host.IssueKeyAsync();

        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), a)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), b)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), a)).StatusCode);
        var limited = await _host.ChatAsync(Http.Chat(), b);

        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Contains("organization org_test", (await limited.ReadErrorAsync()).Message, StringComparison.Ordinal);
        Assert.Equal("\"org-rpm\";q=3;w=60", limited.Headers.GetValues("RateLimit-Policy").Single());
    }

    [Fact]
    public async Task PerKeyOverride_ReplacesThePlanValue()
    {
        var host = await StartAsync(o => o.Defaults.Key.RequestsPerMinute = 100);
        var issued = await host.Keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_test" });
        host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptionsMonitor<RateLimitingOptions>>().CurrentValue.Keys[issued.Record.KeyId] = new RateLimitLimits { RequestsPerMinute = 1 };

        Assert.Equal(HttpStatusCode.OK, (await host.ChatAsync(Http.Chat(), issued.Secret)).StatusCode);
        var limited = await host.ChatAsync(Http.Chat(), issued.Secret);

        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.Equal("\"key-rpm\";q=1;w=60", limited.Headers.GetValues("RateLimit-Policy").Single());
    }

    [Fact]
    public async Task InvalidRequest_CostsNoQuota()
    {
        var host = await StartAsync(o => o.Defaults.Key.RequestsPerMinute = 1);
        var key = await host.IssueKeyAsync();

        var bad = await host.ChatAsync("""{"model":"m1","messages":[]}""", key);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.False(bad.Headers.Contains("RateLimit"));

        Assert.Equal(HttpStatusCode.OK, (await host.ChatAsync(Http.Chat(), key)).StatusCode);
    }

    [Fact]
    public async Task NoLimitsConfigured_NoRateLimitHeaders()
    {
        var host = await StartAsync(_ => { });
        var key = await host.IssueKeyAsync();

        var ok = await host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.False(ok.Headers.Contains("RateLimit-Policy"));
        Assert.False(ok.Headers.Contains("RateLimit"));
    }

    [Fact]
    public async Task TokensPerMinute_PromptLargerThanQuota_IsRequestTooLarge_NotRetryable()
    {
        var host = await StartAsync(o => o.Defaults.Key.TokensPerMinute = 5);
        var key = await host.IssueKeyAsync();

        var response = await host.ChatAsync(Http.Chat(content: new string('x', 400)), key);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var error = await response.ReadErrorAsync();
        Assert.Equal("tokens", error.Type);
        Assert.StartsWith("Request too large", error.Message, StringComparison.Ordinal);
        Assert.Equal("false", response.Headers.GetValues("x-should-retry").Single());
        Assert.Contains("qu=\"tokens\"", response.Headers.GetValues("RateLimit-Policy").Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task TokensPerMinute_ActualUsageIsSettled_SoTheNextRequestWaits()
    {
        var host = await StartAsync(o => o.Defaults.Key.TokensPerMinute = 60);
        host.Router.Usage = new Fleet.Protocols.RouterUsage(10, 55); // 65 tokens used in total: more than the minute's 60
        var key = await host.IssueKeyAsync();

        Assert.Equal(HttpStatusCode.OK, (await host.ChatAsync(Http.Chat(), key)).StatusCode);
        await WaitForAsync(async () => (await host.ChatAsync(Http.Chat(), key)).StatusCode == HttpStatusCode.TooManyRequests);
    }

    [Fact]
    public async Task ConcurrencyCap_HoldsWhileRequestsAreInFlight_AndFreesWhenTheyEnd()
    {
        var host = await StartAsync(o => o.Defaults.Key.ConcurrentRequests = 2);
        var key = await host.IssueKeyAsync();
        host.Router.Hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var first = host.ChatAsync(Http.Chat(), key);
        var second = host.ChatAsync(Http.Chat(), key);
        await WaitForAsync(() => Task.FromResult(host.Router.Calls == 2));
        var third = await host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.Contains("concurrent", (await third.ReadErrorAsync()).Message, StringComparison.Ordinal);
        Assert.Contains("\"key-concurrency\";q=2;qu=\"concurrent-requests\"", third.Headers.GetValues("RateLimit-Policy").Single(), StringComparison.Ordinal);

        host.Router.Hold.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await first).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await second).StatusCode);
        host.Router.Hold = null;
        await WaitForAsync(async () => (await host.ChatAsync(Http.Chat(), key)).StatusCode == HttpStatusCode.OK);
    }

    [Fact]
    public async Task Stream_CarriesRateLimitHeaders()
    {
        var host = await StartAsync(o => o.Defaults.Key.RequestsPerSecond = 5);
        var key = await host.IssueKeyAsync();

        var response = await host.ChatAsync(Http.Chat(extra: ",\"stream\":true"), key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"key-rps\";q=5;w=1", response.Headers.GetValues("RateLimit-Policy").Single());
    }

    [Fact]
    public async Task Limited_RequestStillGetsExactlyOneUsageRecord_Rejected()
    {
        var host = await StartAsync(o => o.Defaults.Key.RequestsPerMinute = 1);
        var key = await host.IssueKeyAsync();
        await host.ChatAsync(Http.Chat(), key);
        var limited = await host.ChatAsync(Http.Chat(), key);
        var id = limited.Headers.GetValues("X-Request-Id").Single();
        var sink = (InMemoryUsageSink)host.Services.GetRequiredService<IUsageSink>();

        UsageRecord? record = null;
        await WaitForAsync(() =>
        {
            host.Time.Advance(TimeSpan.FromMilliseconds(250));
            return Task.FromResult(sink.TryGet(id, out record));
        });

        Assert.Equal(UsageOutcome.Rejected, record!.Usage.Outcome);
        Assert.Equal(429, record.Log.StatusCode);
        Assert.Equal("rate_limit_exceeded", record.Log.ErrorCode);
        Assert.Equal(0, record.Usage.PromptTokens);
    }

    [Fact]
    public void GoDuration_FormatsLikeOpenAI()
    {
        Assert.Equal("0s", Enforcement.RateLimitHeaders.GoDuration(TimeSpan.Zero));
        Assert.Equal("12ms", Enforcement.RateLimitHeaders.GoDuration(TimeSpan.FromMilliseconds(12)));
        Assert.Equal("1s", Enforcement.RateLimitHeaders.GoDuration(TimeSpan.FromSeconds(1)));
        Assert.Equal("1.5s", Enforcement.RateLimitHeaders.GoDuration(TimeSpan.FromSeconds(1.5)));
        Assert.Equal("6m0s", Enforcement.RateLimitHeaders.GoDuration(TimeSpan.FromMinutes(6)));
        Assert.Equal("1h2m3.5s", Enforcement.RateLimitHeaders.GoDuration(new TimeSpan(0, 1, 2, 3, 500)));
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 10 s");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task EveryRuleClass_HeadersListEachPolicyInOrder_AndOpenAIHeadersPickTheTightest()
    {
        var host = await StartAsync(o =>
        {
            o.Defaults.Key.RequestsPerSecond = 10;
            o.Defaults.Key.RequestsPerMinute = 600;
            o.Defaults.Key.TokensPerMinute = 100_000;
            o.Defaults.Key.ConcurrentRequests = 4;
            o.Defaults.Org.RequestsPerMinute = 1200;
        });
        var key = await host.IssueKeyAsync();

        var ok = await host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(
            "\"key-rps\";q=10;w=1, \"key-rpm\";q=600;w=60, \"key-tpm\";q=100000;qu=\"tokens\";w=60, \"key-concurrency\";q=4;qu=\"concurrent-requests\", \"org-rpm\";q=1200;w=60",
            ok.Headers.GetValues("RateLimit-Policy").Single());
        Assert.Matches(
            "^\"key-rps\";r=9;t=1, \"key-rpm\";r=599;t=1, \"key-tpm\";r=[0-9]+;t=[0-9]+, \"key-concurrency\";r=3, \"org-rpm\";r=1199;t=1$",
            ok.Headers.GetValues("RateLimit").Single());
        Assert.Equal("10", ok.Headers.GetValues("x-ratelimit-limit-requests").Single()); // rps has the fewest left
        Assert.Equal("9", ok.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.Equal("100ms", ok.Headers.GetValues("x-ratelimit-reset-requests").Single());
        Assert.Equal("100000", ok.Headers.GetValues("x-ratelimit-limit-tokens").Single());
    }
}
