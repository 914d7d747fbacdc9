using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cortensor.Portal.Testing.Unkey;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Unkey.Tests.Stubs;

/// <summary>
/// The stub answers as Unkey's server does (unkeyed/unkey at fc99b6b925), checked with raw HTTP so the provider's
/// own assumptions play no part: the permission model, schema checks, rate limit rules and the default credit charge.
/// </summary>
public sealed class UnkeyStubTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 5, 1, 16, 0, 0, TimeSpan.Zero));
    private readonly UnkeyStub _stub;
    private readonly HttpClient _http = new();

    public UnkeyStubTests() => _stub = new UnkeyStub(_time);

    public void Dispose()
    {
        _http.Dispose();
        _stub.Dispose();
    }

    private async Task<(int Status, JsonElement Body)> PostAsync(string operation, string json, string rootKey = UnkeyStub.RootKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_stub.Url, "/v2/" + operation)) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", rootKey);
        using var response = await _http.SendAsync(request);
        return ((int)response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone());
    }

    private async Task<JsonElement> VerifyAsync(string key, string extra = "", string rootKey = UnkeyStub.RootKey)
    {
        var (status, body) = await PostAsync("keys.verifyKey", $$"""{"key":"{{key}}"{{extra}}}""", rootKey);
        Assert.Equal(200, status);
        return body.GetProperty("data");
    }

    private static string Code(JsonElement data) => data.GetProperty("code").GetString()!;

    private static string ErrorType(JsonElement body) => body.GetProperty("error").GetProperty("type").GetString()!;

    [Fact]
    public async Task Verify_RootKeyWithoutVerifyKey_Answers200NotFound_NotA403()
    {
        var (key, _) = _stub.Seed("org_a");
        _stub.SetRootKeyPermissions($"api.{UnkeyStub.ApiId}.read_key");

        var data = await VerifyAsync(key);

        Assert.Equal("NOT_FOUND", Code(data));
        Assert.False(data.TryGetProperty("keyId", out _));
    }

    [Fact]
    public async Task Verify_KeyOfAnotherApi_IsValidOnlyForAWorkspaceWideRootKey()
    {
        _stub.AddApi("api_other");
        var (key, _) = _stub.Seed("org_a", apiId: "api_other");
        _stub.SetRootKey("unkey_wide", ["api.*.verify_key"]);

        Assert.Equal("NOT_FOUND", Code(await VerifyAsync(key))); // scoped to api_stub1234
        var wide = await VerifyAsync(key, rootKey: "unkey_wide");
        Assert.Equal("VALID", Code(wide));
        Assert.False(wide.TryGetProperty("apiId", out _)); // nothing in the answer says which API
    }

    [Fact]
    public async Task ManagementOutsideTheRootKeysApis_GetKey403_ListAndCreate404()
    {
        _stub.AddApi("api_other");
        var (_, keyId) = _stub.Seed("org_a", apiId: "api_other");

        var (getStatus, getBody) = await PostAsync("keys.getKey", $$"""{"keyId":"{{keyId}}"}""");
        var (deleteStatus, _) = await PostAsync("keys.deleteKey", $$"""{"keyId":"{{keyId}}"}""");
        var (listStatus, listBody) = await PostAsync("apis.listKeys", """{"apiId":"api_other"}""");
        var (createStatus, createBody) = await PostAsync("keys.createKey", """{"apiId":"api_other"}""");
        var (apiStatus, apiBody) = await PostAsync("apis.getApi", """{"apiId":"api_other"}""");

        Assert.Equal(403, getStatus);
        Assert.EndsWith("authorization/insufficient_permissions", ErrorType(getBody), StringComparison.Ordinal);
        Assert.Contains("api.api_other.read_key", getBody.GetProperty("error").GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(403, deleteStatus);
        Assert.False(_stub.IsDeleted(keyId));
        Assert.Equal(404, listStatus);
        Assert.EndsWith("data/api_not_found", ErrorType(listBody), StringComparison.Ordinal);
        Assert.Equal(404, createStatus);
        Assert.EndsWith("data/api_not_found", ErrorType(createBody), StringComparison.Ordinal);
        Assert.Equal(403, apiStatus);
        Assert.Contains("read_api", apiBody.GetProperty("error").GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("keys.verifyKey", """{"key":"pk_test_x","apiId":"api_stub1234"}""", "body.apiId")]
    [InlineData("keys.verifyKey", """{}""", "body.key")]
    [InlineData("keys.verifyKey", """{"key":"pk_test_x","ratelimits":[{"cost":1}]}""", "body.ratelimits[0].name")]
    [InlineData("keys.createKey", """{"apiId":"api_stub1234","prefix":"much_too_long_prefix"}""", "body.prefix")]
    [InlineData("keys.createKey", """{"apiId":"api_stub1234","expires":4102444800001}""", "body.expires")]
    [InlineData("keys.createKey", """{"apiId":"api_stub1234","ownerId":"org_a"}""", "body.ownerId")]
    [InlineData("keys.updateKey", """{"keyId":"key_1234","name":""}""", "body.name")]
    [InlineData("keys.getKey", """{}""", "body.keyId")]
    [InlineData("keys.deleteKey", """{"keyId":"key 1"}""", "body.keyId")]
    [InlineData("apis.listKeys", """{"apiId":"api_stub1234","limit":101}""", "body.limit")]
    [InlineData("ratelimit.limit", """{"namespace":"n","identifier":"i","limit":1}""", "body.duration")]
    [InlineData("ratelimit.limit", """{"namespace":"n","identifier":"i","limit":1,"duration":1000,"async":true}""", "body.async")]
    public async Task SchemaViolations_Are400InvalidInput_WithTheLocation(string operation, string json, string location)
    {
        var (status, body) = await PostAsync(operation, json);

        Assert.Equal(400, status);
        Assert.EndsWith("application/invalid_input", ErrorType(body), StringComparison.Ordinal);
        Assert.Equal(location, body.GetProperty("error").GetProperty("errors")[0].GetProperty("location").GetString());
    }

    [Fact]
    public async Task Verify_CreditsOmitted_ChargesOne_OnlyWhenTheKeyHasCredits()
    {
        var (withCredits, withId) = _stub.Seed("org_a", credits: 5);
        var (unlimited, unlimitedId) = _stub.Seed("org_a");

        await VerifyAsync(withCredits);
        await VerifyAsync(withCredits, ""","credits":{"cost":0}""");
        await VerifyAsync(unlimited);

        Assert.Equal(4, _stub.CreditsOf(withId));
        Assert.Null(_stub.CreditsOf(unlimitedId));
    }

    [Fact]
    public async Task Verify_AutoApplyLimitCounts_EvenWhenNotNamed()
    {
        var (key, _) = _stub.Seed("org_a", ratelimits: [("auto", 1, 60_000, true)]);

        var first = await VerifyAsync(key);
        var second = await VerifyAsync(key);

        Assert.Equal("VALID", Code(first));
        Assert.True(first.GetProperty("ratelimits")[0].GetProperty("autoApply").GetBoolean());
        Assert.Equal("RATE_LIMITED", Code(second));
    }

    [Fact]
    public async Task Verify_AdHocLimit_ReplacesTheConfiguredOneOfTheSameName()
    {
        var (key, _) = _stub.Seed("org_a", ratelimits: [("requests", 1, 60_000, true)]);

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal("VALID", Code(await VerifyAsync(key, ""","ratelimits":[{"name":"requests","limit":3,"duration":60000}]""")));
        }

        var state = (await VerifyAsync(key, ""","ratelimits":[{"name":"requests","limit":3,"duration":60000}]""")).GetProperty("ratelimits")[0];
        Assert.Equal("", state.GetProperty("id").GetString()); // ad hoc: no id
        Assert.True(state.GetProperty("exceeded").GetBoolean());
    }

    [Fact]
    public async Task Verify_KeyLimitBeatsIdentityLimit_AndUnknownNameIs412()
    {
        _stub.SetIdentityRateLimit("org_a", "requests", 1, 60_000, autoApply: false);
        var (keyWithOwn, _) = _stub.Seed("org_a", ratelimits: [("requests", 5, 60_000, false)]);
        var (identityOnly, _) = _stub.Seed("org_a");

        Assert.Equal(5, (await VerifyAsync(keyWithOwn, ""","ratelimits":[{"name":"requests"}]""")).GetProperty("ratelimits")[0].GetProperty("limit").GetInt64());
        Assert.Equal(1, (await VerifyAsync(identityOnly, ""","ratelimits":[{"name":"requests"}]""")).GetProperty("ratelimits")[0].GetProperty("limit").GetInt64());

        var (status, body) = await PostAsync("keys.verifyKey", $$"""{"key":"{{identityOnly}}","ratelimits":[{"name":"tokens"}]}""");
        Assert.Equal(412, status);
        Assert.EndsWith("application/precondition_failed", ErrorType(body), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_SeveralLimits_AreAllOrNothing()
    {
        var (key, _) = _stub.Seed("org_a", credits: 10);
        const string Limits = ""","ratelimits":[{"name":"small","limit":1,"duration":60000},{"name":"large","limit":100,"duration":60000}]""";

        Assert.Equal("VALID", Code(await VerifyAsync(key, Limits)));
        var denied = await VerifyAsync(key, Limits);

        Assert.Equal("RATE_LIMITED", Code(denied));
        var large = denied.GetProperty("ratelimits").EnumerateArray().Single(l => l.GetProperty("name").GetString() == "large");
        Assert.Equal(99, large.GetProperty("remaining").GetInt64()); // the denied call consumed nothing from "large"
        Assert.Equal(9, denied.GetProperty("credits").GetInt64()); // and no credit
    }

    [Fact]
    public async Task Verify_SlidingWindow_CountsPartOfThePreviousWindow()
    {
        var (key, _) = _stub.Seed("org_a");
        const string Limit = ""","ratelimits":[{"name":"requests","limit":4,"duration":60000}]""";
        _time.SetUtcNow(new DateTimeOffset(2026, 5, 1, 16, 0, 0, TimeSpan.Zero));
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("VALID", Code(await VerifyAsync(key, Limit)));
        }

        // A quarter into the next window, 3 of the previous 4 still count: one more fits, a second does not.
        _time.SetUtcNow(new DateTimeOffset(2026, 5, 1, 16, 1, 15, TimeSpan.Zero));

        Assert.Equal("VALID", Code(await VerifyAsync(key, Limit)));
        Assert.Equal("RATE_LIMITED", Code(await VerifyAsync(key, Limit)));
    }

    [Fact]
    public async Task Verify_PermissionsQuery_UsesTheKeysAndItsRolesPermissions()
    {
        _stub.DefineRole("editor", "documents.write");
        var (key, _) = _stub.Seed("org_a", permissions: ["documents.read"], roles: ["editor"]);

        var granted = await VerifyAsync(key, ""","permissions":"documents.read AND (documents.write OR admin)" """);
        var denied = await VerifyAsync(key, ""","permissions":"documents.read and admin" """);
        var (status, body) = await PostAsync("keys.verifyKey", $$"""{"key":"{{key}}","permissions":"documents.read AND ("}""");

        Assert.Equal("VALID", Code(granted));
        Assert.Equal(["editor"], granted.GetProperty("roles").EnumerateArray().Select(r => r.GetString()));
        Assert.Equal("INSUFFICIENT_PERMISSIONS", Code(denied));
        Assert.Equal(400, status);
        Assert.EndsWith("bad_request/permissions_query_syntax_error", ErrorType(body), StringComparison.Ordinal);
    }

    [Fact]
    public async Task RootKeys_UnknownIs401()
    {
        var (status, body) = await PostAsync("keys.getKey", """{"keyId":"key_1234"}""", rootKey: "unkey_nope");

        Assert.Equal(401, status);
        Assert.EndsWith("authentication/key_not_found", ErrorType(body), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LostAnswer_TheWorkIsDoneAnyway()
    {
        var (key, keyId) = _stub.Seed("org_a", credits: 3);
        _stub.EnqueueFault(new StubFault(null, Delay: TimeSpan.FromMilliseconds(300), AfterHandling: true));
        using var http = new HttpClient { Timeout = TimeSpan.FromMilliseconds(50) };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_stub.Url, "/v2/keys.verifyKey")) { Content = new StringContent(new JsonObject { ["key"] = key }.ToJsonString(), Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", UnkeyStub.RootKey);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => http.SendAsync(request));

        Assert.Equal(2, _stub.CreditsOf(keyId));
    }
}
