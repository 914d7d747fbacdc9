using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using CsCheck;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// The RateLimit headers never show more remaining than the quota they advertise: <c>r ≤ q</c> for each policy of
/// <c>RateLimit</c> / <c>RateLimit-Policy</c>, and <c>x-ratelimit-remaining-*</c> ≤ <c>x-ratelimit-limit-*</c>.
/// </summary>
/// <remarks>
/// The header writer clamps remaining to 0..quota, so reading the headers alone would pass even for a limiter that
/// over-reports. The gateway's limiter is therefore wrapped in a <see cref="RecordingRateLimiter"/>: the limiter's own
/// remaining must already lie within 0..quota and the headers must show it unchanged (the clamp never acts for our
/// limiters); a separate test plays a limiter that over-reports and checks the clamp.
/// </remarks>
public sealed partial class RateLimitHeaderBoundsTests : IAsyncLifetime
{
    private GatewayHost _host = null!;
    private RecordingRateLimiter _limiter = null!;

    public async Task InitializeAsync()
    {
        _host = await GatewayHost.StartAsync(static services => RecordingRateLimiter.Decorate(services));
        _limiter = _host.Services.GetRequiredService<RecordingRateLimiter>();
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task FiftyMillionTokensPerMinute_RemainingNeverAboveTheLimit()
    {
        // The reported case: q=50000000 came with r=59999993.
        var key = await IssueKeyAsync(new RateLimitLimits { TokensPerMinute = 50_000_000 }, null);

        var response = await _host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"key-tpm\";q=50000000;qu=\"tokens\";w=60", response.Headers.GetValues("RateLimit-Policy").Single());
        var remaining = long.Parse(response.Headers.GetValues("x-ratelimit-remaining-tokens").Single(), CultureInfo.InvariantCulture);
        Assert.Equal("50000000", response.Headers.GetValues("x-ratelimit-limit-tokens").Single());
        Assert.InRange(remaining, 50_000_000 - 1000, 50_000_000 - 1); // the admission estimate was charged
        Assert.Equal($"\"key-tpm\";r={remaining};t=1", response.Headers.GetValues("RateLimit").Single());
    }

    /// <summary>Random key and org limits of every class, and random request / wait sequences through the gateway.</summary>
    [Fact]
    public async Task RandomLimitsAndSequences_HeadersNeverShowRemainingAboveLimit()
    {
        var limit = Gen.Frequency(
            (2, Gen.Const((int?)null)),
            (2, Gen.Int[1, 5].Select(static v => (int?)v)),
            (2, Gen.Int[1, int.MaxValue].Select(static v => (int?)v)),
            (1, Gen.OneOf<int?>(50_000_000, 90_000, 7, 400_000)));
        var limits = Gen.Select(limit, limit, limit, limit)
            .Select(static l => new RateLimitLimits { RequestsPerSecond = l.Item1, RequestsPerMinute = l.Item2, TokensPerMinute = l.Item3, ConcurrentRequests = l.Item4 });
        var steps = Gen.Select(Gen.Int[0, 2_000_000], Gen.Int[1, 40]).Array[1, 6]; // (wait ms, prompt words)

        await Gen.Select(limits, limits, steps).SampleAsync(
            async (keyLimits, orgLimits, sequence) =>
            {
                var key = await IssueKeyAsync(keyLimits, orgLimits);
                foreach (var (waitMs, words) in sequence)
                {
                    _host.Time.Advance(TimeSpan.FromMilliseconds(waitMs));
                    var response = await _host.ChatAsync(Http.Chat(content: string.Join(' ', Enumerable.Repeat("word", words))), key);
                    Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, response.StatusCode.ToString());
                    AssertHeadersShowTheLimiterUnclamped(response, _limiter.TakeDecisions());
                }
            },
            iter: 60,
            threads: 1,
            print: static c => $"key {Describe(c.Item1)}, org {Describe(c.Item2)}, steps [{string.Join(", ", c.Item3.Select(static s => $"wait {s.Item1} ms, {s.Item2} words"))}]");
    }

    [Fact]
    public async Task OverReportingLimiter_HeadersAreClampedToTheQuota()
    {
        // A limiter that is not ours (or a broken one) says 1,000,000 more than it has: the headers still hold to q.
        await using var host = await GatewayHost.StartAsync(static services => RecordingRateLimiter.Decorate(
            services,
            static counter => counter with { Remaining = counter.Remaining + 1_000_000 }));
        var limiter = host.Services.GetRequiredService<RecordingRateLimiter>();
        var key = await IssueKeyAsync(host, new RateLimitLimits { RequestsPerMinute = 7, TokensPerMinute = 90_000 }, null);

        var response = await host.ChatAsync(Http.Chat(), key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var decision = Assert.Single(limiter.TakeDecisions());
        Assert.All(decision.Counters, static c => Assert.True(c.Remaining > c.Rule.Quota, $"{c.Policy} was not over-reported"));
        var shown = StateItem().Matches(response.Headers.GetValues("RateLimit").Single())
            .ToDictionary(static m => m.Groups["name"].Value, static m => m.Groups["r"].Value);
        Assert.Equal(new Dictionary<string, string> { ["key-rpm"] = "7", ["key-tpm"] = "90000" }, shown);
        Assert.Equal("7", response.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.Equal("90000", response.Headers.GetValues("x-ratelimit-remaining-tokens").Single());
    }

    [Fact]
    public void Writer_ClampsARemainingAboveItsQuota()
    {
        // A limiter (or key provider) that over-reports must still not advertise more than its own quota.
        var rule = new RateLimitRule("tpm", RateLimitClass.Tokens, 50_000_000, TimeSpan.FromMinutes(1));
        RateLimitCounter[] counters = [new("key-tpm", rule, 59_999_993, TimeSpan.Zero), new("key-rpm", rule with { Name = "rpm", Class = RateLimitClass.Requests, Quota = 5 }, -3, TimeSpan.Zero)];

        Assert.Equal("\"key-tpm\";r=50000000;t=0, \"key-rpm\";r=0;t=0", RateLimitHeaders.FormatState(counters));
        Assert.Equal(
            "\"unkey-requests\";r=100;t=60",
            RateLimitHeaders.FormatProviderState([new ApiKeyRateLimit("unkey-requests", 100, 250, TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(1), false)]));
    }

    private static string Describe(RateLimitLimits l) =>
        $"rps {l.RequestsPerSecond}, rpm {l.RequestsPerMinute}, tpm {l.TokensPerMinute}, concurrency {l.ConcurrentRequests}";

    private Task<string> IssueKeyAsync(RateLimitLimits? keyLimits, RateLimitLimits? orgLimits) => IssueKeyAsync(_host, keyLimits, orgLimits);

    private static async Task<string> IssueKeyAsync(GatewayHost host, RateLimitLimits? keyLimits, RateLimitLimits? orgLimits)
    {
        var orgId = "org_" + Guid.NewGuid().ToString("N")[..8];
        var issued = await host.Keys.IssueAsync(new IssueApiKeyRequest { OrgId = orgId });
        var options = host.Services.GetRequiredService<IOptionsMonitor<RateLimitingOptions>>().CurrentValue;
        if (keyLimits is not null)
        {
            options.Keys[issued.Record.KeyId] = keyLimits;
        }

        if (orgLimits is not null)
        {
            options.Orgs[orgId] = orgLimits;
        }

        return issued.Secret;
    }

    /// <summary>
    /// The headers show exactly what the limiter decided (<paramref name="decisions"/>: this request's, at most one):
    /// each policy's quota, its remaining unchanged by the writer's clamp, and for <c>x-ratelimit-*</c> the tightest
    /// policy of the class; and the limiter's own remaining lies within 0..quota.
    /// </summary>
    private static void AssertHeadersShowTheLimiterUnclamped(HttpResponseMessage response, IReadOnlyList<RateLimitDecision> decisions)
    {
        Assert.True(decisions.Count <= 1, $"{decisions.Count} decisions for one request");
        var counters = decisions.Count == 1 ? decisions[0].Counters : [];
        if (!response.Headers.TryGetValues("RateLimit-Policy", out var policyValues))
        {
            Assert.Empty(counters);
            Assert.False(response.Headers.Contains("RateLimit"));
            return;
        }

        var policies = PolicyItem().Matches(policyValues.Single()).ToList();
        var states = StateItem().Matches(response.Headers.GetValues("RateLimit").Single()).ToList();
        Assert.Equal(counters.Count, policies.Count);
        Assert.Equal(counters.Count, states.Count);
        for (var i = 0; i < counters.Count; i++)
        {
            var counter = counters[i];
            Assert.InRange(counter.Remaining, 0, counter.Rule.Quota); // the limiter itself, before any clamp
            Assert.Equal(counter.Policy, policies[i].Groups["name"].Value);
            Assert.Equal(counter.Rule.Quota, long.Parse(policies[i].Groups["q"].Value, CultureInfo.InvariantCulture));
            Assert.Equal(counter.Policy, states[i].Groups["name"].Value);
            Assert.Equal(counter.Remaining, long.Parse(states[i].Groups["r"].Value, CultureInfo.InvariantCulture));
        }

        foreach (var (unit, rateClass) in new[] { ("requests", RateLimitClass.Requests), ("tokens", RateLimitClass.Tokens) })
        {
            // The writer shows the first policy of the class with the least remaining.
            var tightest = counters.Where(c => c.Rule.Class == rateClass).MinBy(static c => c.Remaining);
            if (tightest is null)
            {
                Assert.False(response.Headers.Contains("x-ratelimit-limit-" + unit));
                continue;
            }

            Assert.Equal(tightest.Rule.Quota, long.Parse(response.Headers.GetValues("x-ratelimit-limit-" + unit).Single(), CultureInfo.InvariantCulture));
            Assert.Equal(tightest.Remaining, long.Parse(response.Headers.GetValues("x-ratelimit-remaining-" + unit).Single(), CultureInfo.InvariantCulture));
        }
    }

    [GeneratedRegex("\"(?<name>[^\"]+)\";q=(?<q>\\d+)")]
    private static partial Regex PolicyItem();

    [GeneratedRegex("\"(?<name>[^\"]+)\";r=(?<r>-?\\d+)")]
    private static partial Regex StateItem();
}
