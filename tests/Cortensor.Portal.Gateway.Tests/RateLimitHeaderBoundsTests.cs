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
public sealed partial class RateLimitHeaderBoundsTests : IAsyncLifetime
{
    private GatewayHost _host = null!;

    public async Task InitializeAsync() => _host = await GatewayHost.StartAsync();

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
                    AssertHeadersWithinLimits(response);
                }
            },
            iter: 60,
            threads: 1,
            print: static c => $"key {Describe(c.Item1)}, org {Describe(c.Item2)}, steps [{string.Join(", ", c.Item3.Select(static s => $"wait {s.Item1} ms, {s.Item2} words"))}]");
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

    private async Task<string> IssueKeyAsync(RateLimitLimits? keyLimits, RateLimitLimits? orgLimits)
    {
        var orgId = "org_" + Guid.NewGuid().ToString("N")[..8];
        var issued = await _host.Keys.IssueAsync(new IssueApiKeyRequest { OrgId = orgId });
        var options = _host.Services.GetRequiredService<IOptionsMonitor<RateLimitingOptions>>().CurrentValue;
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

    private static void AssertHeadersWithinLimits(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("RateLimit-Policy", out var policyValues))
        {
            Assert.False(response.Headers.Contains("RateLimit"));
            return;
        }

        var quotas = PolicyItem().Matches(policyValues.Single()).ToDictionary(static m => m.Groups["name"].Value, static m => long.Parse(m.Groups["q"].Value, CultureInfo.InvariantCulture));
        var states = StateItem().Matches(response.Headers.GetValues("RateLimit").Single()).ToList();
        Assert.Equal(quotas.Count, states.Count);
        foreach (var state in states)
        {
            var remaining = long.Parse(state.Groups["r"].Value, CultureInfo.InvariantCulture);
            Assert.InRange(remaining, 0, quotas[state.Groups["name"].Value]);
        }

        foreach (var unit in new[] { "requests", "tokens" })
        {
            if (response.Headers.TryGetValues("x-ratelimit-limit-" + unit, out var limitValues))
            {
                var remaining = long.Parse(response.Headers.GetValues("x-ratelimit-remaining-" + unit).Single(), CultureInfo.InvariantCulture);
                Assert.InRange(remaining, 0, long.Parse(limitValues.Single(), CultureInfo.InvariantCulture));
            }
        }
    }

    [GeneratedRegex("\"(?<name>[^\"]+)\";q=(?<q>\\d+)")]
    private static partial Regex PolicyItem();

    [GeneratedRegex("\"(?<name>[^\"]+)\";r=(?<r>-?\\d+)")]
    private static partial Regex StateItem();
}
