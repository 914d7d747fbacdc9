using Cortensor.Portal.Keys;
using Cortensor.Portal.Testing.Unkey;
using Cortensor.Portal.Unkey.Tests.Support;
using Microsoft.Extensions.Time.Testing;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Settings;

namespace Cortensor.Portal.Unkey.Tests.Keys;

/// <summary>
/// The API marker (<c>meta.portalApiId</c>) on <c>keys.verifyKey</c> answers: a VALID answer must carry it; a refusal
/// (RATE_LIMITED, DISABLED…) without <c>meta</c> keeps its own status, since Unkey leaves <c>meta</c> out for a key
/// without one (v2_keys_verify_key/handler.go sets it only when the key's meta is set and parses).
/// </summary>
public sealed class UnkeyApiMarkerTests : IDisposable
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

    private UnkeyHarness Harness => _harness ??= new UnkeyHarness(new Uri(_server.Url!), _time);

    private void StubVerify(string data)
        => _server.Given(Request.Create().WithPath("/v2/keys.verifyKey").UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody($$$"""{"meta":{"requestId":"req_marker"},"data":{{{data}}}}"""));

    [Theory]
    [InlineData("RATE_LIMITED", ApiKeyVerificationStatus.RateLimited)]
    [InlineData("DISABLED", ApiKeyVerificationStatus.Disabled)]
    [InlineData("EXPIRED", ApiKeyVerificationStatus.Expired)]
    [InlineData("USAGE_EXCEEDED", ApiKeyVerificationStatus.UsageExceeded)]
    [InlineData("INSUFFICIENT_PERMISSIONS", ApiKeyVerificationStatus.Forbidden)]
    public async Task Refusal_WithoutMeta_KeepsItsStatus(string code, ApiKeyVerificationStatus expected)
    {
        var reset = Now.AddSeconds(5).ToUnixTimeMilliseconds();
        StubVerify($$$"""
            {"valid":false,"code":"{{{code}}}","keyId":"key_own1","enabled":true,"identity":{"id":"id_1","externalId":"org_acme"},
             "ratelimits":[{"id":"rl_1","name":"requests","limit":10,"duration":60000,"reset":{{{reset}}},"exceeded":{{{(code == "RATE_LIMITED" ? "true" : "false")}}},"autoApply":true}]}
            """);

        var verification = await Harness.Provider.VerifyAsync(_key);

        Assert.Equal(expected, verification.Status);
        Assert.Equal(code, verification.ProviderCode);
        Assert.Null(verification.Principal);
    }

    [Fact]
    public async Task Refusal_WithMetaOfAnotherApi_IsNotFound()
    {
        StubVerify("""{"valid":false,"code":"RATE_LIMITED","keyId":"key_other1","meta":{"portalApiId":"api_other"}}""");

        var verification = await Harness.Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.NotFound, verification.Status);
    }

    [Fact]
    public async Task Refusal_WithMetaButNoMarker_IsNotFound()
    {
        StubVerify("""{"valid":false,"code":"DISABLED","keyId":"key_other2","meta":{"plan":"pro"}}""");

        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await Harness.Provider.VerifyAsync(_key)).Status);
    }

    [Fact]
    public async Task Valid_WithoutMeta_IsStillNotFound()
    {
        StubVerify("""{"valid":true,"code":"VALID","keyId":"key_other3","enabled":true,"identity":{"id":"id_1","externalId":"org_acme"}}""");

        var verification = await Harness.Provider.VerifyAsync(_key);

        Assert.Equal(ApiKeyVerificationStatus.NotFound, verification.Status);
        Assert.Null(verification.Principal);
    }
}
