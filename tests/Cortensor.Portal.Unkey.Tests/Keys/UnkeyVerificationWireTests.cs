using System.Text.Json;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Unkey.Configuration;
using Cortensor.Portal.Unkey.Telemetry;
using Cortensor.Portal.Testing.Unkey;
using Cortensor.Portal.Unkey.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace Cortensor.Portal.Unkey.Tests.Keys;

/// <summary>
/// <c>keys.verifyKey</c> against literal WireMock stubs in Unkey's v2 wire format: the <c>{meta, data}</c> envelope,
/// HTTP 200 with <c>valid:false</c> for each code (zero values left out), errors as problem+json and as plain JSON,
/// 400/401/403/412/429/5xx, a proxy's plain-text error, and slow responses.
/// </summary>
public sealed class UnkeyVerificationWireTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 5, 1, 16, 0, 0, TimeSpan.Zero);
    private readonly FakeTimeProvider _time = new(Now);
    private readonly WireMockServer _server = WireMockServer.Start(new WireMockServerSettings { Urls = ["http://127.0.0.1:0"] });
    private readonly string _key = "pk_test_" + UnkeyStub.RandomBase58(32);
    private UnkeyHarness? _harness;

    public void Dispose()
    {
        _harness?.Dispose();
        _server.Stop();
    }

    private UnkeyHarness Harness(Action<UnkeyOptions>? configure = null) => _harness ??= new UnkeyHarness(new Uri(_server.Url!), _time, configure);

    private void StubVerify(int status, string body, string contentType = "application/json", TimeSpan? delay = null, params (string Name, string Value)[] headers)
    {
        var response = Response.Create().WithStatusCode(status).WithHeader("Content-Type", contentType).WithBody(body);
        foreach (var (name, value) in headers)
        {
            response = response.WithHeader(name, value);
        }

        if (delay is { } wait)
        {
            response = response.WithDelay(wait);
        }

        _server.Given(Request.Create().WithPath("/v2/keys.verifyKey").UsingPost()).RespondWith(response);
    }

    private int VerifyCalls => _server.LogEntries.Count(e => e.RequestMessage.Path == "/v2/keys.verifyKey");

    private static string Valid(long resetMs) => $$$"""
        {"meta":{"requestId":"req_2cGKbMxRyIzhCxo1Idjz8q"},"data":{"valid":true,"code":"VALID","keyId":"key_1234abcd","name":"ci","enabled":true,
         "credits":950,"expires":1893456000000,"meta":{"plan":"pro","allowedModels":["gpt-oss-20b","qwen-3.5-9b"],"environment":"test","portalApiId":"api_stub1234"},
         "permissions":["documents.read"],"roles":["editor"],
         "identity":{"id":"id_1234","externalId":"org_acme","meta":{}},
         "ratelimits":[{"id":"rl_1","name":"requests","limit":100,"duration":60000,"reset":{{{resetMs}}},"remaining":99,"exceeded":false,"autoApply":true}]}}
        """;

    [Fact]
    public async Task Verify_Valid_MapsDataToPrincipal_RateLimitsAndRequestId()
    {
        StubVerify(200, Valid(Now.AddSeconds(42).ToUnixTimeMilliseconds()));

        var verification = await Harness().Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.Valid, verification.Status);
        var principal = verification.Principal!;
        Assert.Equal("key_1234abcd", principal.KeyId);
        Assert.Equal("org_acme", principal.OrgId);
        Assert.Equal(ApiKeyEnvironment.Test, principal.Environment);
        Assert.Equal(_key[..12], principal.DisplayPrefix);
        Assert.Equal("pro", principal.PlanId);
        Assert.Equal(["gpt-oss-20b", "qwen-3.5-9b"], principal.AllowedModels!);
        Assert.Equal(["documents.read"], principal.Scopes);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1893456000000), principal.ExpiresAt);
        Assert.Equal("req_2cGKbMxRyIzhCxo1Idjz8q", verification.ProviderRequestId);
        Assert.Equal("VALID", verification.ProviderCode);
        Assert.False(verification.IsStale);
        var limit = Assert.Single(verification.RateLimits);
        Assert.Equal(new ApiKeyRateLimit("unkey-requests", 100, 99, TimeSpan.FromMinutes(1), TimeSpan.FromSeconds(42), false), limit);
    }

    [Fact]
    public async Task Verify_SendsTheV2RequestShape_RootKeyAsBearer_NoApiId()
    {
        StubVerify(200, Valid(Now.ToUnixTimeMilliseconds()));

        await Harness().Provider.VerifyAsync(_key);

        var request = Assert.Single(_server.LogEntries).RequestMessage;
        Assert.Equal("POST", request.Method);
        Assert.Equal("Bearer " + UnkeyStub.RootKey, request.Headers!["Authorization"].Single());
        Assert.StartsWith("application/json", request.Headers["Content-Type"].Single(), StringComparison.Ordinal);
        using var body = JsonDocument.Parse(request.Body!);
        Assert.Equal(_key, body.RootElement.GetProperty("key").GetString());
        Assert.Equal(["key"], body.RootElement.EnumerateObject().Select(p => p.Name)); // no apiId: v2 rejects it
    }

    [Fact]
    public async Task Verify_ConfiguredRateLimitsAndCost_AreSentAsRatelimitsAndCredits()
    {
        StubVerify(200, Valid(Now.ToUnixTimeMilliseconds()));
        var harness = Harness(o =>
        {
            o.RateLimits.Add(new UnkeyRateLimitCheck { Name = "requests" });
            o.RateLimits.Add(new UnkeyRateLimitCheck { Name = "burst", Cost = 2, Limit = 10, Duration = TimeSpan.FromSeconds(1) });
            o.CreditCost = 3;
        });

        await harness.Provider.VerifyAsync(_key);

        using var body = JsonDocument.Parse(Assert.Single(_server.LogEntries).RequestMessage.Body!);
        Assert.Equal(3, body.RootElement.GetProperty("credits").GetProperty("cost").GetInt64());
        var limits = body.RootElement.GetProperty("ratelimits").EnumerateArray().ToList();
        Assert.Equal("""{"name":"requests","cost":1}""", limits[0].GetRawText());
        Assert.Equal("""{"name":"burst","cost":2,"limit":10,"duration":1000}""", limits[1].GetRawText());
    }

    [Theory]
    [InlineData("""{"valid":false,"code":"NOT_FOUND"}""", ApiKeyVerificationStatus.NotFound)]
    [InlineData("""{"valid":false,"code":"DISABLED","keyId":"key_1","enabled":false,"identity":{"id":"id_1","externalId":"org_acme"}}""", ApiKeyVerificationStatus.Disabled)]
    [InlineData("""{"valid":false,"code":"EXPIRED","keyId":"key_1","expires":1700000000000,"enabled":true}""", ApiKeyVerificationStatus.Expired)]
    [InlineData("""{"valid":false,"code":"FORBIDDEN","keyId":"key_1","enabled":true}""", ApiKeyVerificationStatus.Forbidden)]
    [InlineData("""{"valid":false,"code":"INSUFFICIENT_PERMISSIONS","keyId":"key_1","enabled":true,"permissions":["a.read"]}""", ApiKeyVerificationStatus.Forbidden)]
    [InlineData("""{"valid":false,"code":"USAGE_EXCEEDED","keyId":"key_1","enabled":true}""", ApiKeyVerificationStatus.UsageExceeded)]
    [InlineData("""{"valid":false,"code":"RATE_LIMITED","keyId":"key_1","enabled":true,"ratelimits":[{"id":"rl_1","name":"requests","limit":10,"duration":60000,"reset":RESET,"exceeded":true,"autoApply":false}]}""", ApiKeyVerificationStatus.RateLimited)]
    [InlineData("""{"valid":false,"code":"INSUFFICIENT_CREDITS","keyId":"key_1"}""", ApiKeyVerificationStatus.NotFound)]
    [InlineData("""{"valid":false,"code":"SOMETHING_NEWER","keyId":"key_1"}""", ApiKeyVerificationStatus.NotFound)]
    [InlineData("""{"valid":true,"code":"SOMETHING_NEWER","keyId":"key_1","identity":{"id":"id_1","externalId":"org_acme"}}""", ApiKeyVerificationStatus.NotFound)]
    [InlineData("""{"valid":true,"code":"VALID","keyId":"key_1","enabled":true}""", ApiKeyVerificationStatus.NotFound)]
    public async Task Verify_Http200WithEachCode_MapsToStatus(string data, ApiKeyVerificationStatus expected)
    {
        var reset = Now.AddSeconds(12.5).ToUnixTimeMilliseconds();
        var json = System.Text.Json.Nodes.JsonNode.Parse(data.Replace("RESET", reset.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal))!.AsObject();
        if (json["keyId"] is not null)
        {
            json["meta"] = new System.Text.Json.Nodes.JsonObject { ["portalApiId"] = UnkeyStub.ApiId }; // a key the Portal issued
        }

        StubVerify(200, $$$"""{"meta":{"requestId":"req_code"},"data":{{{json.ToJsonString()}}}}""");

        var verification = await Harness().Provider.VerifyAsync(_key);

        Assert.Equal(expected, verification.Status);
        Assert.Null(verification.Principal);
        Assert.Equal("req_code", verification.ProviderRequestId);
        if (expected == ApiKeyVerificationStatus.RateLimited)
        {
            Assert.Equal(TimeSpan.FromSeconds(12.5), verification.RetryAfter);
            var limit = Assert.Single(verification.RateLimits);
            Assert.True(limit.Exceeded);
            Assert.Equal(0, limit.Remaining); // left out (zero) on the wire
        }

        Assert.Equal(1, VerifyCalls); // a key outcome is an answer, never retried
    }

    [Fact]
    public async Task Verify_MetaEnvironmentDisagreesWithPrefix_IsRefused()
    {
        StubVerify(200, Valid(Now.ToUnixTimeMilliseconds()).Replace("\"environment\":\"test\"", "\"environment\":\"live\"", StringComparison.Ordinal));

        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await Harness().Provider.VerifyAsync(_key)).Status);
    }

    public static TheoryData<int, string, string, string> ErrorResponses => new()
    {
        { 400, "application/json", "unkey/authentication/missing", "" },
        { 400, "application/json", "unkey/application/invalid_input", ""","errors":[{"location":"body.apiId","message":"additional property not allowed"}]""" },
        { 401, "application/problem+json", "unkey/authentication/key_not_found", "" },
        { 401, "application/json", "unkey/authentication/key_not_found", "" },
        { 403, "application/problem+json", "unkey/authorization/insufficient_permissions", "" },
        { 403, "application/json", "unkey/authorization/key_disabled", "" },
        { 412, "application/json", "unkey/application/precondition_failed", "" },
        { 500, "application/problem+json", "unkey/application/unexpected_error", "" },
        { 500, "application/json", "unkey/application/service_unavailable", "" },
    };

    [Theory]
    [MemberData(nameof(ErrorResponses))]
    public async Task Verify_ErrorStatus_UnseenKey_IsUnavailableWithRetryAfterAndRequestId(int status, string contentType, string type, string extra)
    {
        StubVerify(status, $$$"""{"meta":{"requestId":"req_err{{{status}}}"},"error":{"title":"Error","detail":"It failed.","status":{{{status}}},"type":"https://unkey.com/docs/errors/{{{type}}}"{{{extra}}}}}""", contentType);
        var harness = Harness();
        using var degraded = new MetricCollector<long>(harness.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), UnkeyMetrics.MeterName, UnkeyMetrics.DegradedName);

        var verification = await harness.Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, verification.Status);
        Assert.Equal(TimeSpan.FromSeconds(2), verification.RetryAfter);
        Assert.Equal($"req_err{status}", verification.ProviderRequestId);
        Assert.Equal(1, VerifyCalls); // an unseen key may be charged by Unkey: never sent twice, not even after a 5xx
        var measurement = Assert.Single(degraded.GetMeasurementSnapshot());
        Assert.Equal("refused", measurement.Tags["result"]);
        Assert.Equal(status >= 500 ? "http_5xx" : "http_4xx", measurement.Tags["reason"]);
        if (status < 500)
        {
            Assert.Contains(harness.Logs.Entries, e => e.EventId.Id == 8322 && e.Level == Microsoft.Extensions.Logging.LogLevel.Error && e.Text.Contains($"req_err{status}", StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Verify_WorkspaceRateLimited429_UsesItsRetryAfter_NotRetried()
    {
        StubVerify(
            429,
            """{"meta":{"requestId":"req_429"},"error":{"title":"Too Many Requests","detail":"Workspace rate limit exceeded.","status":429,"type":"https://unkey.com/docs/errors/user/too_many_requests/workspace_rate_limited"}}""",
            headers: [("Retry-After", "7"), ("RateLimit-Limit", "100"), ("RateLimit-Remaining", "0"), ("RateLimit-Reset", "7")]);

        var verification = await Harness().Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, verification.Status);
        Assert.Equal(TimeSpan.FromSeconds(7), verification.RetryAfter);
        Assert.Equal("http_429", verification.ProviderCode);
        Assert.Equal(1, VerifyCalls);
    }

    [Fact]
    public async Task Verify_ProxyPlainTextError_IsUnavailable()
    {
        StubVerify(502, "<html><body>502 Bad Gateway</body></html>", "text/html");

        var verification = await Harness().Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, verification.Status);
        Assert.Equal(1, VerifyCalls); // an unseen key: nothing proves a second call would be free
    }

    [Fact]
    public async Task Verify_Http200WithoutEnvelope_IsUnavailable()
    {
        StubVerify(200, """{"valid":true,"code":"VALID"}""");

        var verification = await Harness().Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, verification.Status);
        Assert.Equal("bad_response", verification.ProviderCode);
    }

    [Fact]
    public async Task Verify_SlowResponse_TimesOutAsUnavailable_WithinTheTotalTimeout()
    {
        StubVerify(200, Valid(Now.ToUnixTimeMilliseconds()), delay: TimeSpan.FromSeconds(5));
        var harness = Harness(o =>
        {
            o.AttemptTimeout = TimeSpan.FromMilliseconds(150);
            o.TotalTimeout = TimeSpan.FromMilliseconds(600);
        });
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var verification = await harness.Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, verification.Status);
        Assert.Equal("timeout", verification.ProviderCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task Verify_SpendingVerification_IsNotRetriedAfterA5xx()
    {
        StubVerify(503, UnkeyStub.ErrorBody(503, "Service Unavailable", "unkey/application/service_unavailable"));
        var harness = Harness(o => o.RateLimits.Add(new UnkeyRateLimitCheck { Name = "requests" }));

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, (await harness.Provider.VerifyAsync(_key)).Status);

        Assert.Equal(1, VerifyCalls);
    }

    [Theory]
    [InlineData(null, true, false, false, 3)] // the key's last answer showed no credits and no limits: free, retried
    [InlineData(0L, true, true, false, 3)] // credits on the key, but a cost of 0 is sent: free, retried
    [InlineData(null, true, true, false, 1)] // credits on the key: Unkey charges 1 by default
    [InlineData(null, true, false, true, 1)] // limits on the key: an autoApply one counts every call
    [InlineData(5L, true, false, false, 1)] // a cost is sent
    [InlineData(null, false, false, false, 1)] // retries turned off
    public async Task Verify_RetriesAfterA5xx_OnlyWhenTheKeysLastAnswerProvesItFree(long? creditCost, bool retryPlain, bool keyHasCredits, bool keyHasLimits, int expectedCalls)
    {
        var answer = System.Text.Json.Nodes.JsonNode.Parse(Valid(Now.AddSeconds(42).ToUnixTimeMilliseconds()))!;
        if (!keyHasCredits)
        {
            answer["data"]!.AsObject().Remove("credits");
        }

        if (!keyHasLimits)
        {
            answer["data"]!.AsObject().Remove("ratelimits");
        }

        StubVerify(200, answer.ToJsonString());
        var harness = Harness(o =>
        {
            o.CreditCost = creditCost;
            o.RetryPlainVerifications = retryPlain;
        });
        Assert.True((await harness.Provider.VerifyAsync(_key)).IsValid);
        _server.Reset();
        StubVerify(500, UnkeyStub.ErrorBody(500, "Internal Server Error", "unkey/application/unexpected_error"));

        await harness.Provider.VerifyAsync(_key);

        Assert.Equal(expectedCalls, VerifyCalls);
    }

    [Fact]
    public async Task Verify_CircuitOpen_FailsFastWithoutCallingUnkey()
    {
        StubVerify(500, UnkeyStub.ErrorBody(500, "Internal Server Error", "unkey/application/unexpected_error"));
        var harness = Harness(o =>
        {
            o.CircuitBreakerMinimumThroughput = 2;
            o.CircuitBreakerFailureRatio = 0.5;
            o.MaxRetryAttempts = 0;
        });
        await harness.Provider.VerifyAsync(_key);
        await harness.Provider.VerifyAsync(_key);
        var callsWhenOpen = VerifyCalls;

        var verification = await harness.Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, verification.Status);
        Assert.Equal("circuit_open", verification.ProviderCode);
        Assert.Equal(callsWhenOpen, VerifyCalls);
    }

    [Fact]
    public async Task Verify_WrongPrefixOrAlphabet_IsMalformedWithoutAnyCall()
    {
        var harness = Harness();

        foreach (var key in new[] { "pk_test_" + new string('0', 40), "pk_test_" + new string('l', 40), "unkey_" + UnkeyStub.RandomBase58(32), _key[..20] })
        {
            Assert.Equal(ApiKeyVerificationStatus.Malformed, (await harness.Provider.VerifyAsync(key)).Status);
        }

        Assert.Empty(_server.LogEntries);
    }

    [Fact]
    public async Task Verify_RootAndCustomerKeys_NeverReachTheLogs()
    {
        StubVerify(500, UnkeyStub.ErrorBody(500, "Internal Server Error", "unkey/application/unexpected_error"));
        var harness = Harness();

        await harness.Provider.VerifyAsync(_key);
        _server.Reset();
        StubVerify(200, Valid(Now.ToUnixTimeMilliseconds()));
        await harness.Provider.VerifyAsync(_key);

        var text = harness.Logs.AllText;
        Assert.Contains("System.Net.Http.HttpClient", text, StringComparison.Ordinal); // HttpClient logged at Trace…
        Assert.DoesNotContain(UnkeyStub.RootKey, text, StringComparison.Ordinal); // …but never the root key
        Assert.DoesNotContain(_key, text, StringComparison.Ordinal);
        Assert.DoesNotContain(_key[12..], text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_StatusCodeOfAnswers_AreNotHttpErrors()
    {
        // 200 with valid:false is an answer: no warning, no degraded metric.
        StubVerify(200, """{"meta":{"requestId":"req_nf"},"data":{"valid":false,"code":"NOT_FOUND"}}""");
        var harness = Harness();
        using var degraded = new MetricCollector<long>(harness.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), UnkeyMetrics.MeterName, UnkeyMetrics.DegradedName);
        using var verifications = new MetricCollector<long>(harness.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), UnkeyMetrics.MeterName, UnkeyMetrics.VerificationsName);

        await harness.Provider.VerifyAsync(_key);

        Assert.Empty(degraded.GetMeasurementSnapshot());
        Assert.Equal("NOT_FOUND", Assert.Single(verifications.GetMeasurementSnapshot()).Tags["code"]);
        Assert.DoesNotContain(harness.Logs.Entries, e => e.Level is Microsoft.Extensions.Logging.LogLevel.Warning or Microsoft.Extensions.Logging.LogLevel.Error);
        Assert.Equal(200, Convert.ToInt32(_server.LogEntries.Single().ResponseMessage.StatusCode, System.Globalization.CultureInfo.InvariantCulture));
    }
}
