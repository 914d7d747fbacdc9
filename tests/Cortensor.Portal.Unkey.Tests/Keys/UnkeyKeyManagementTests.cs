using System.Text.Json;
using System.Text.Json.Nodes;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Unkey.Client;
using Cortensor.Portal.Unkey.Keys;
using Cortensor.Portal.Testing.Unkey;
using Cortensor.Portal.Unkey.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Unkey.Tests.Keys;

/// <summary>Issuance, revocation, update and listing through Unkey, against the stateful stub.</summary>
public sealed class UnkeyKeyManagementTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 5, 1, 16, 0, 0, TimeSpan.Zero));
    private readonly UnkeyStub _stub;
    private readonly UnkeyHarness _harness;
    private readonly List<HotPathChange> _changes = [];

    public UnkeyKeyManagementTests()
    {
        _stub = new UnkeyStub(_time);
        _harness = new UnkeyHarness(_stub.Url, _time);
        _harness.Feed.Subscribe(_changes.Add);
    }

    private UnkeyApiKeyProvider Provider => _harness.Provider;

    public void Dispose()
    {
        _harness.Dispose();
        _stub.Dispose();
    }

    private JsonElement LastBody(string operation)
        => JsonDocument.Parse(_stub.Server.LogEntries.Last(e => e.RequestMessage.Path == "/v2/" + operation).RequestMessage.Body!).RootElement;

    [Fact]
    public async Task Issue_CreatesTheKeyInUnkey_WithOurPrefixTheOrgAsIdentityAndThePolicyInMeta()
    {
        var expiresAt = _time.GetUtcNow().AddDays(30);

        var issued = await Provider.IssueAsync(new IssueApiKeyRequest
        {
            OrgId = "org_acme",
            Name = "ci",
            Environment = ApiKeyEnvironment.Live,
            AllowedModels = ["gpt-oss-20b"],
            Scopes = ["chat"],
            ExpiresAt = expiresAt,
        });

        var body = LastBody("keys.createKey");
        Assert.Equal(UnkeyStub.ApiId, body.GetProperty("apiId").GetString());
        Assert.Equal("pk_live", body.GetProperty("prefix").GetString());
        Assert.Equal("org_acme", body.GetProperty("externalId").GetString());
        Assert.Equal("ci", body.GetProperty("name").GetString());
        Assert.Equal(32, body.GetProperty("byteLength").GetInt32());
        Assert.Equal(expiresAt.ToUnixTimeMilliseconds(), body.GetProperty("expires").GetInt64());
        Assert.Equal("""{"environment":"live","portalApiId":"api_stub1234","allowedModels":["gpt-oss-20b"],"scopes":["chat"]}""", body.GetProperty("meta").GetRawText());

        Assert.Matches("^pk_live_[1-9A-HJ-NP-Za-km-z]{42,45}$", issued.Secret);
        Assert.StartsWith("key_", issued.Record.KeyId, StringComparison.Ordinal);
        Assert.Equal(issued.Secret[..12], issued.Record.DisplayPrefix);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(issued.Secret)), issued.Record.Hash);

        var principal = (await Provider.VerifyAsync(issued.Secret)).Principal!;
        Assert.Equal(["chat"], principal.Scopes);
        Assert.Equal(["gpt-oss-20b"], principal.AllowedModels!);
        Assert.Equal(expiresAt, principal.ExpiresAt);
        Assert.DoesNotContain(issued.Secret, _harness.Logs.AllText, StringComparison.Ordinal);
        Assert.Contains(_harness.Logs.Entries, e => e.EventId.Id == 8300 && e.Text.Contains(issued.Record.KeyId, StringComparison.Ordinal) && e.Text.Contains("req_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Issue_OrgIdThatIsNotAnUnkeyExternalId_ThrowsWithoutCallingUnkey()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org with spaces" }));

        Assert.Equal(0, _stub.Requests);
    }

    [Fact]
    public async Task Issue_UnkeyReturnsAKeyOfAnotherShape_Throws()
    {
        _stub.EnqueueFault(new StubFault(200, """{"meta":{"requestId":"req_x"},"data":{"keyId":"key_1","key":"sk_other_abc"}}""", "application/json"));

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" }));

        Assert.DoesNotContain("sk_other_abc", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Issue_UnkeyFails_IsNotRetried_AndThrowsUnkeyApiException()
    {
        _stub.EnqueueFault(new StubFault(500));

        var ex = await Assert.ThrowsAsync<UnkeyApiException>(() => Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" }));

        Assert.Equal(System.Net.HttpStatusCode.InternalServerError, ex.StatusCode);
        Assert.Equal("application/unexpected_error", ex.ErrorCode);
        Assert.StartsWith("req_", ex.RequestId, StringComparison.Ordinal);
        Assert.Equal(1, _stub.CallsTo("keys.createKey"));
    }

    [Fact]
    public async Task Revoke_SoftDeletesInUnkey_AndAnnouncesTheChange()
    {
        var issued = await Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });

        Assert.True(await Provider.RevokeAsync("org_a", issued.Record.KeyId));

        Assert.True(_stub.IsDeleted(issued.Record.KeyId));
        var body = LastBody("keys.deleteKey");
        Assert.Equal(issued.Record.KeyId, body.GetProperty("keyId").GetString());
        Assert.False(body.TryGetProperty("permanent", out _));
        Assert.Contains(new HotPathChange(HotPathChangeKind.Key, issued.Record.KeyId), _changes);
    }

    [Fact]
    public async Task Revoke_AnotherOrgsKey_NeverCallsDelete()
    {
        var issued = await Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });

        Assert.False(await Provider.RevokeAsync("org_b", issued.Record.KeyId));

        Assert.Equal(0, _stub.CallsTo("keys.deleteKey"));
        Assert.False(_stub.IsDeleted(issued.Record.KeyId));
        Assert.Empty(_changes);
    }

    [Fact]
    public async Task Update_ChangesPolicyInUnkey_KeepsTheRestOfMeta_AndTakesEffectOnVerify()
    {
        var issued = await Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Scopes = ["chat"] });

        Assert.True(await Provider.UpdateAsync("org_a", issued.Record.KeyId, new UnkeyKeyUpdate { AllowedModels = ["m1"], PlanId = "pro", Name = "renamed" }));

        Assert.Equal("""{"environment":"test","portalApiId":"api_stub1234","scopes":["chat"],"allowedModels":["m1"],"plan":"pro"}""", _stub.MetaOf(issued.Record.KeyId)!.ToJsonString());
        var principal = (await Provider.VerifyAsync(issued.Secret)).Principal!;
        Assert.Equal(["m1"], principal.AllowedModels!);
        Assert.Equal("pro", principal.PlanId);
        Assert.Equal("renamed", Assert.Single(await Provider.ListAsync("org_a")).Name);
        Assert.Contains(new HotPathChange(HotPathChangeKind.Key, issued.Record.KeyId), _changes);
    }

    [Fact]
    public async Task Update_DisableThenEnable_AndClearPolicies()
    {
        var issued = await Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", AllowedModels = ["m1"], ExpiresAt = _time.GetUtcNow().AddDays(1) });

        Assert.True(await Provider.UpdateAsync("org_a", issued.Record.KeyId, new UnkeyKeyUpdate { Enabled = false }));
        Assert.Equal(ApiKeyVerificationStatus.Disabled, (await Provider.VerifyAsync(issued.Secret)).Status);

        Assert.True(await Provider.UpdateAsync("org_a", issued.Record.KeyId, new UnkeyKeyUpdate { Enabled = true, AllowAllModels = true, NeverExpires = true }));
        var principal = (await Provider.VerifyAsync(issued.Secret)).Principal!;
        Assert.Null(principal.AllowedModels);
        Assert.Null(principal.ExpiresAt);
        Assert.Equal(JsonValueKind.Null, LastBody("keys.updateKey").GetProperty("expires").ValueKind); // null clears
    }

    [Fact]
    public async Task Update_AnotherOrgsKey_ReturnsFalse()
    {
        var issued = await Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });

        Assert.False(await Provider.UpdateAsync("org_b", issued.Record.KeyId, new UnkeyKeyUpdate { Enabled = false }));
        Assert.Equal(0, _stub.CallsTo("keys.updateKey"));
    }

    [Fact]
    public async Task List_FollowsTheCursorAcrossPages()
    {
        for (var i = 0; i < 105; i++)
        {
            _stub.Seed("org_big", meta: new JsonObject { ["environment"] = "test" });
        }

        _stub.Seed("org_other");

        var keys = await Provider.ListAsync("org_big");

        Assert.Equal(105, keys.Count);
        Assert.Equal(2, _stub.CallsTo("apis.listKeys"));
        var second = LastBody("apis.listKeys");
        Assert.Equal(100, second.GetProperty("limit").GetInt32());
        Assert.Equal("org_big", second.GetProperty("externalId").GetString());
        Assert.True(second.TryGetProperty("cursor", out _));
        Assert.All(keys, k => Assert.Empty(k.Hash));
    }

    [Fact]
    public async Task Verify_KeyWithoutIdentity_IsRefused()
    {
        var (key, _) = _stub.Seed(externalId: null);

        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await Provider.VerifyAsync(key)).Status);
    }

    [Fact]
    public async Task Verify_NamedRateLimit_IsCountedByUnkey_AndReportedBack()
    {
        using var harness = new UnkeyHarness(_stub.Url, _time, o => o.RateLimits.Add(new Configuration.UnkeyRateLimitCheck { Name = "requests" }));
        var (key, _) = _stub.Seed("org_a", meta: UnkeyHarness.PortalMeta(), ratelimits: [("requests", 2, 60_000, false)]);

        var first = await harness.Provider.VerifyAsync(key);
        var second = await harness.Provider.VerifyAsync(key);
        var third = await harness.Provider.VerifyAsync(key);

        Assert.Equal(1, Assert.Single(first.RateLimits).Remaining);
        Assert.Equal(0, Assert.Single(second.RateLimits).Remaining);
        Assert.Equal(ApiKeyVerificationStatus.RateLimited, third.Status);
        Assert.True(third.RetryAfter > TimeSpan.Zero && third.RetryAfter <= TimeSpan.FromMinutes(1));
        Assert.Equal("unkey-requests", Assert.Single(third.RateLimits).Name);
    }

    [Fact]
    public async Task Verify_UnknownRateLimitName_Is412_TreatedAsUnavailable()
    {
        using var harness = new UnkeyHarness(_stub.Url, _time, o => o.RateLimits.Add(new Configuration.UnkeyRateLimitCheck { Name = "nope" }));
        var (key, _) = _stub.Seed("org_a");

        var verification = await harness.Provider.VerifyAsync(key);

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, verification.Status);
        Assert.Equal(1, _stub.CallsTo("keys.verifyKey"));
        Assert.Contains(harness.Logs.Entries, e => e.EventId.Id == 8322 && e.Text.Contains("PreconditionFailed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Verify_CreditsRunOut_IsUsageExceeded()
    {
        var (key, _) = _stub.Seed("org_a", meta: UnkeyHarness.PortalMeta(), credits: 1);

        Assert.True((await Provider.VerifyAsync(key)).IsValid);
        Assert.Equal(ApiKeyVerificationStatus.UsageExceeded, (await Provider.VerifyAsync(key)).Status);
    }

    [Fact]
    public async Task Client_Limit_CountsAgainstAStandaloneLimit()
    {
        var request = new UnkeyRateLimitRequest { Namespace = "tokens", Identifier = "org_a", Limit = 2, Duration = 60_000 };

        var results = new List<UnkeyRateLimitData>();
        for (var i = 0; i < 3; i++)
        {
            results.Add((await _harness.Client.LimitAsync(request)).Data);
        }

        Assert.Equal([true, true, false], results.Select(r => r.Success));
        Assert.Equal([1L, 0L, 0L], results.Select(r => r.Remaining));
    }

    [Fact]
    public async Task Client_BadRootKey_Is401WithUnkeysErrorType()
    {
        using var harness = new UnkeyHarness(_stub.Url, _time, o => o.RootKey = "unkey_wrong");

        var ex = await Assert.ThrowsAsync<UnkeyApiException>(() => harness.Client.GetKeyAsync(new UnkeyGetKeyRequest { KeyId = "key_1" }));

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, ex.StatusCode);
        Assert.Equal("authentication/key_not_found", ex.ErrorCode);
        Assert.DoesNotContain("unkey_wrong", ex.Message, StringComparison.Ordinal);
    }
}
