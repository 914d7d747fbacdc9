using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Unkey.Configuration;
using Cortensor.Portal.Testing.Unkey;
using Cortensor.Portal.Unkey.Tests.Support;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Unkey.Tests.Gateway;

/// <summary>
/// The gateway with the Unkey provider in front of the stateful stub: each Unkey outcome becomes the HTTP answer an
/// OpenAI client expects, and Unkey's rate limits show up in the RateLimit headers next to the gateway's own.
/// </summary>
public sealed class UnkeyGatewayTests : IAsyncLifetime
{
    private readonly UnkeyStub _stub = new();
    private readonly CapturingLoggerProvider _logs = new();
    private WebApplication _app = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace);
        builder.Services.AddCortensorGateway().Fleet.UseSimulatedRouters();
        builder.Services.Configure<RateLimitingOptions>(o => o.Defaults.Key.RequestsPerMinute = 100);
        builder.Services.AddCortensorUnkey(o =>
        {
            o.BaseUrl = _stub.Url;
            o.ApiId = UnkeyStub.ApiId;
            o.RootKey = UnkeyStub.RootKey;
            o.AttemptTimeout = TimeSpan.FromSeconds(10);
            o.TotalTimeout = TimeSpan.FromSeconds(20);
            o.RateLimits.Add(new UnkeyRateLimitCheck { Name = "requests" });
        });
        _app = builder.Build();
        _app.MapCortensorGateway();
        await _app.StartAsync();
        _http = _app.GetTestClient();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _stub.Dispose();
    }

    private string Seed(long limit = 5, string? forcedCode = null, bool enabled = true, long? credits = null, long? expiresMs = null)
        => _stub.Seed("org_acme", meta: UnkeyHarness.PortalMeta(), ratelimits: [("requests", limit, 60_000, false)], forcedCode: forcedCode, enabled: enabled, credits: credits, expiresMs: expiresMs).Key;

    private async Task<HttpResponseMessage> ModelsAsync(string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await _http.SendAsync(request);
    }

    private async Task<HttpResponseMessage> ChatAsync(string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"qwen-3.5-9b","messages":[{"role":"user","content":"hi"}],"max_tokens":4}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return await _http.SendAsync(request);
    }

    private static async Task<(string Type, string? Code)> ErrorOf(HttpResponseMessage response)
    {
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = doc.RootElement.GetProperty("error");
        return (error.GetProperty("type").GetString()!, error.GetProperty("code").GetString());
    }

    private static string Header(HttpResponseMessage response, string name)
        => response.Headers.TryGetValues(name, out var values) ? string.Join(", ", values) : "";

    [Fact]
    public async Task ValidKey_Models_200_WithUnkeysLimitInTheRateLimitHeaders()
    {
        var key = Seed();

        var response = await ModelsAsync(key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"unkey-requests\";q=5;w=60", Header(response, "RateLimit-Policy"));
        Assert.Matches("^\"unkey-requests\";r=4;t=[0-9]+$", Header(response, "RateLimit"));
    }

    [Fact]
    public async Task ValidKey_Chat_200_MergesGatewayAndUnkeyPolicies()
    {
        var key = Seed();

        var response = await ChatAsync(key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("\"key-rpm\";q=100;w=60, \"unkey-requests\";q=5;w=60", Header(response, "RateLimit-Policy"));
        Assert.Matches("^\"key-rpm\";r=99;t=1, \"unkey-requests\";r=4;t=[0-9]+$", Header(response, "RateLimit"));
        Assert.Equal("100", Header(response, "x-ratelimit-limit-requests")); // OpenAI's headers stay the gateway's
    }

    [Fact]
    public async Task RateLimitedByUnkey_429_WithRetryAfterAndTheExhaustedLimit()
    {
        var key = Seed(limit: 1);
        // The stub counts Unkey's windows aligned to the clock's minutes (on the real clock here): two calls that
        // straddle a minute boundary land in two windows. Start well inside one.
        var toBoundary = 60_000 - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() % 60_000;
        if (toBoundary < 10_000)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(toBoundary + 100));
        }

        Assert.Equal(HttpStatusCode.OK, (await ModelsAsync(key)).StatusCode);

        var response = await ChatAsync(key);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(("requests", "rate_limit_exceeded"), await ErrorOf(response));
        Assert.InRange(int.Parse(Header(response, "Retry-After"), System.Globalization.CultureInfo.InvariantCulture), 1, 60);
        Assert.NotEmpty(Header(response, "retry-after-ms"));
        Assert.Matches("^\"unkey-requests\";r=0;t=[0-9]+$", Header(response, "RateLimit"));
    }

    [Fact]
    public async Task UsageExceeded_429InsufficientQuota_NotRetryable()
    {
        var key = Seed(credits: 0);

        var response = await ChatAsync(key);

        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal(("insufficient_quota", "insufficient_quota"), await ErrorOf(response));
        Assert.Equal("false", Header(response, "x-should-retry"));
        Assert.False(response.Headers.Contains("Retry-After"));
    }

    [Theory]
    [InlineData("FORBIDDEN", HttpStatusCode.Forbidden, "api_key_forbidden")]
    [InlineData("INSUFFICIENT_PERMISSIONS", HttpStatusCode.Forbidden, "insufficient_permissions")]
    [InlineData("NOT_FOUND", HttpStatusCode.Unauthorized, "invalid_api_key")]
    [InlineData("A_CODE_FROM_THE_FUTURE", HttpStatusCode.Unauthorized, "invalid_api_key")]
    public async Task UnkeyCodes_MapToOpenAIStatuses(string code, HttpStatusCode status, string errorCode)
    {
        var key = Seed(forcedCode: code);

        var response = await ChatAsync(key);

        Assert.Equal(status, response.StatusCode);
        Assert.Equal(errorCode, (await ErrorOf(response)).Code);
    }

    [Fact]
    public async Task DisabledAndExpiredKeys_401()
    {
        var disabled = Seed(enabled: false);
        var expired = Seed(expiresMs: DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds());

        var disabledResponse = await ChatAsync(disabled);
        var expiredResponse = await ChatAsync(expired);

        Assert.Equal(HttpStatusCode.Unauthorized, disabledResponse.StatusCode);
        Assert.Equal("api_key_disabled", (await ErrorOf(disabledResponse)).Code);
        Assert.Equal(HttpStatusCode.Unauthorized, expiredResponse.StatusCode);
        Assert.Equal("api_key_expired", (await ErrorOf(expiredResponse)).Code);
    }

    [Fact]
    public async Task UnknownAndMalformedKeys_401_MalformedNeverReachesUnkey()
    {
        var unknown = await ChatAsync("pk_test_" + UnkeyStub.RandomBase58(32));
        var before = _stub.Requests;
        var malformed = await ChatAsync("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s"); // a local-format key: '0' is not base58

        Assert.Equal(HttpStatusCode.Unauthorized, unknown.StatusCode);
        Assert.Equal("invalid_api_key", (await ErrorOf(unknown)).Code);
        Assert.Equal(HttpStatusCode.Unauthorized, malformed.StatusCode);
        Assert.Equal("invalid_api_key", (await ErrorOf(malformed)).Code);
        Assert.Equal(before, _stub.Requests);
    }

    [Fact]
    public async Task UnkeyDown_UnseenKey503WithRetryAfter_RecentlySeenKeyKeepsWorking()
    {
        var seen = Seed();
        var unseen = Seed();
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(seen)).StatusCode);
        _stub.Outage = new StubFault(503);

        var refused = await ChatAsync(unseen);
        var served = await ChatAsync(seen);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(("service_unavailable_error", "key_verification_unavailable"), await ErrorOf(refused));
        Assert.Equal("2", Header(refused, "Retry-After"));
        Assert.Equal("2000", Header(refused, "retry-after-ms"));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task Refusals_LogUnkeysRequestId_NeverTheKey()
    {
        var key = Seed(forcedCode: "FORBIDDEN");

        await ChatAsync(key);

        var line = Assert.Single(_logs.Entries, e => e.EventId.Id == 1400);
        Assert.Contains("Forbidden", line.Text, StringComparison.Ordinal);
        Assert.Contains("req_", line.Text, StringComparison.Ordinal);
        Assert.DoesNotContain(key, _logs.AllText, StringComparison.Ordinal);
        Assert.DoesNotContain(UnkeyStub.RootKey, _logs.AllText, StringComparison.Ordinal);
    }
}
