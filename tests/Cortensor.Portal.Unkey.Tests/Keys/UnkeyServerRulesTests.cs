using System.Diagnostics.Metrics;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Unkey.Client;
using Cortensor.Portal.Unkey.Configuration;
using Cortensor.Portal.Unkey.Keys;
using Cortensor.Portal.Unkey.Telemetry;
using Cortensor.Portal.Testing.Unkey;
using Cortensor.Portal.Unkey.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Unkey.Tests.Keys;

/// <summary>
/// The provider against rules of Unkey's real server that a friendlier stub hid: the default credit charge, NOT_FOUND
/// for a root key without <c>verify_key</c>, 412 for a limit the key lacks, verifyKey and getKey looking across the
/// whole workspace, and the createKey/updateKey field limits.
/// </summary>
public sealed class UnkeyServerRulesTests : IDisposable
{
    private const string WideRootKey = "unkey_workspaceWideRootKey";
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 5, 1, 16, 0, 0, TimeSpan.Zero));
    private readonly UnkeyStub _stub;
    private readonly List<UnkeyHarness> _harnesses = [];

    public UnkeyServerRulesTests() => _stub = new UnkeyStub(_time);

    public void Dispose()
    {
        foreach (var harness in _harnesses)
        {
            harness.Dispose();
        }

        _stub.Dispose();
    }

    private UnkeyHarness Harness(Action<UnkeyOptions>? configure = null)
    {
        var harness = new UnkeyHarness(_stub.Url, _time, configure);
        _harnesses.Add(harness);
        return harness;
    }

    // (1) A verification whose answer is lost after Unkey charged it must not be sent again.

    [Fact]
    public async Task Verify_KeyWithCredits_AnswerLostToATimeout_IsChargedOnce()
    {
        var (key, keyId) = _stub.Seed("org_a", meta: UnkeyHarness.PortalMeta(), credits: 10);
        var harness = Harness(o =>
        {
            o.AttemptTimeout = TimeSpan.FromSeconds(1); // roomy enough for a cold first call on a loaded machine
            o.TotalTimeout = TimeSpan.FromSeconds(6);
        });
        Assert.True((await harness.Provider.VerifyAsync(key)).IsValid); // remembered: the key has credits
        _stub.EnqueueFault(new StubFault(null, Delay: TimeSpan.FromSeconds(2.5), AfterHandling: true));

        var verification = await harness.Provider.VerifyAsync(key);

        Assert.True(verification.IsStale); // served from the first answer while Unkey's is late
        Assert.Equal(2, _stub.Requests); // the late answer is not in WireMock's log yet: count arrivals
        Assert.Equal(8, _stub.CreditsOf(keyId)); // one charge per verification the Portal made
    }

    [Fact]
    public async Task Verify_UnseenKeyWithAnAutoApplyLimit_AnswerLost_IsCountedOnce()
    {
        var (key, _) = _stub.Seed("org_a", meta: UnkeyHarness.PortalMeta(), ratelimits: [("requests", 2, 60_000, true)]);
        var harness = Harness(o =>
        {
            o.AttemptTimeout = TimeSpan.FromSeconds(1); // roomy enough for a cold first call on a loaded machine
            o.TotalTimeout = TimeSpan.FromSeconds(6);
        });
        _stub.EnqueueFault(new StubFault(null, Delay: TimeSpan.FromSeconds(2.5), AfterHandling: true));

        Assert.Equal(ApiKeyVerificationStatus.Unavailable, (await harness.Provider.VerifyAsync(key)).Status);
        var next = await harness.Provider.VerifyAsync(key);

        Assert.True(next.IsValid); // 2 allowed: the lost call and this one; a retry would have used this one up
        Assert.Equal(0, Assert.Single(next.RateLimits).Remaining);
    }

    [Fact]
    public async Task Verify_KeyProvenFree_IsRetriedAfterAFailure()
    {
        var (key, _) = _stub.Seed("org_a", meta: UnkeyHarness.PortalMeta());
        var harness = Harness();
        Assert.True((await harness.Provider.VerifyAsync(key)).IsValid);
        _stub.EnqueueFault(new StubFault(503));

        var verification = await harness.Provider.VerifyAsync(key);

        Assert.True(verification.IsValid);
        Assert.False(verification.IsStale);
        Assert.Equal(3, _stub.CallsTo("keys.verifyKey"));
    }

    // (2) A root key without verify_key gets 200 NOT_FOUND for every key.

    [Fact]
    public async Task Verify_RootKeyLosesVerifyKey_KnownKeyIsNotLockedOut_AndTheCauseIsNamed()
    {
        var harness = Harness();
        var issued = await harness.Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        Assert.True((await harness.Provider.VerifyAsync(issued.Secret)).IsValid);
        using var degraded = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), UnkeyMetrics.MeterName, UnkeyMetrics.DegradedName);
        using var notFound = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), UnkeyMetrics.MeterName, UnkeyMetrics.NotFoundName);
        _stub.SetRootKeyPermissions([.. UnkeyStub.PortalPermissions.Where(p => !p.EndsWith(".verify_key", StringComparison.Ordinal))]);

        var verification = await harness.Provider.VerifyAsync(issued.Secret);

        Assert.True(verification.IsValid);
        Assert.True(verification.IsStale);
        Assert.Equal("verify_permission", degraded.LastMeasurement!.Tags["reason"]);
        Assert.Equal("true", notFound.LastMeasurement!.Tags["known_key"]);
        Assert.Contains(harness.Logs.Entries, e => e.EventId.Id == 8323 && e.Level == LogLevel.Error && e.Text.Contains($"api.{UnkeyStub.ApiId}.verify_key", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Verify_KnownKeyDeletedInUnkey_IsNotFound()
    {
        var (key, keyId) = _stub.Seed("org_a", meta: UnkeyHarness.PortalMeta());
        var harness = Harness();
        Assert.True((await harness.Provider.VerifyAsync(key)).IsValid);
        await harness.Client.DeleteKeyAsync(new UnkeyDeleteKeyRequest { KeyId = keyId }); // in Unkey, not through the Portal

        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await harness.Provider.VerifyAsync(key)).Status);
        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await harness.Provider.VerifyAsync(key)).Status);
    }

    [Fact]
    public async Task Verify_NotFoundSpike_LogsOneWarningPerWindow()
    {
        var harness = Harness(o => o.NotFoundSpikeThreshold = 3);

        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(ApiKeyVerificationStatus.NotFound, (await harness.Provider.VerifyAsync("pk_test_" + UnkeyStub.RandomBase58(32))).Status);
        }

        var warning = Assert.Single(harness.Logs.Entries, e => e.EventId.Id == 8325);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("verify_key", warning.Text, StringComparison.Ordinal);
    }

    // (3) Named limits a key does not have are a 412.

    [Fact]
    public async Task Verify_LimitAttachedAtIssue_PortalIssuedKeyIsLimitedByIt()
    {
        var harness = Harness(o => o.RateLimits.Add(new UnkeyRateLimitCheck { Name = "requests", Limit = 2, Duration = TimeSpan.FromMinutes(1), AttachToIssuedKeys = true }));
        var issued = await harness.Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });

        var first = await harness.Provider.VerifyAsync(issued.Secret);
        await harness.Provider.VerifyAsync(issued.Secret);
        var third = await harness.Provider.VerifyAsync(issued.Secret);

        Assert.True(first.IsValid);
        Assert.Equal(("requests", 2L, 60_000L, false), Assert.Single(_stub.RateLimitsOf(issued.Record.KeyId)));
        Assert.Equal(ApiKeyVerificationStatus.RateLimited, third.Status);
        var sent = _stub.VerifyBodies[^1]["ratelimits"]![0]!.AsObject();
        Assert.False(sent.ContainsKey("limit")); // named only: the key's own limit applies, not an ad-hoc one
    }

    [Fact]
    public void Options_AttachToIssuedKeysWithoutLimit_FailsValidation()
    {
        var options = new UnkeyOptions { ApiId = "api_1234", RootKey = "unkey_x" };
        options.RateLimits.Add(new UnkeyRateLimitCheck { Name = "requests", AttachToIssuedKeys = true });

        var result = new UnkeyOptionsCustomValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains("AttachToIssuedKeys", result.FailureMessage, StringComparison.Ordinal);
    }

    // (4) verifyKey and getKey look across the whole workspace.

    [Fact]
    public async Task Verify_KeyOfAnotherApiInTheWorkspace_WithAWorkspaceWideRootKey_IsRefused()
    {
        _stub.AddApi("api_other");
        _stub.SetRootKey(WideRootKey, ["api.*.verify_key", "api.*.create_key", "api.*.read_key", "api.*.update_key", "api.*.delete_key", "api.*.read_api"]);
        var (otherKey, _) = _stub.Seed("org_a", meta: new System.Text.Json.Nodes.JsonObject { ["environment"] = "test" }, apiId: "api_other");
        var harness = Harness(o => o.RootKey = WideRootKey);
        var ours = await harness.Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });

        Assert.Equal(ApiKeyVerificationStatus.NotFound, (await harness.Provider.VerifyAsync(otherKey)).Status);
        Assert.True((await harness.Provider.VerifyAsync(ours.Secret)).IsValid);
        Assert.Contains(harness.Logs.Entries, e => e.EventId.Id == 8315);
    }

    [Fact]
    public async Task RevokeAndUpdate_KeyOfAnotherApi_AreNotFound_WithAScopedOrAWideRootKey()
    {
        _stub.AddApi("api_other");
        _stub.SetRootKey(WideRootKey, ["api.*.read_key", "api.*.update_key", "api.*.delete_key"]);
        var (_, otherKeyId) = _stub.Seed("org_a", meta: UnkeyHarness.PortalMeta().Also(m => m.Remove(UnkeyApiKeyProvider.ApiIdMetaField)), apiId: "api_other");
        var scoped = Harness().Provider;
        var wide = Harness(o => o.RootKey = WideRootKey).Provider;

        Assert.False(await scoped.RevokeAsync("org_a", otherKeyId)); // getKey answers 403
        Assert.False(await scoped.UpdateAsync("org_a", otherKeyId, new UnkeyKeyUpdate { Enabled = false }));
        Assert.False(await wide.RevokeAsync("org_a", otherKeyId)); // getKey answers, but without our marker
        Assert.False(await wide.UpdateAsync("org_a", otherKeyId, new UnkeyKeyUpdate { Enabled = false }));

        Assert.False(_stub.IsDeleted(otherKeyId));
        Assert.Equal(0, _stub.CallsTo("keys.deleteKey") + _stub.CallsTo("keys.updateKey"));
    }

    // (5) createKey and updateKey field limits.

    [Fact]
    public async Task Update_EmptyName_ClearsTheName()
    {
        var harness = Harness();
        var issued = await harness.Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Name = "ci" });

        Assert.True(await harness.Provider.UpdateAsync("org_a", issued.Record.KeyId, new UnkeyKeyUpdate { Name = "" }));

        Assert.Null(_stub.NameOf(issued.Record.KeyId));
    }

    [Fact]
    public async Task IssueAndUpdate_ExpiryAfter2100_AreRefusedBeforeCallingUnkey()
    {
        var harness = Harness();
        var late = UnkeyApiKeyProvider.MaxExpiresAt.AddDays(1);
        var issued = await harness.Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a" });
        var calls = _stub.Requests;

        await Assert.ThrowsAsync<ArgumentException>(() => harness.Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", ExpiresAt = late }));
        await Assert.ThrowsAsync<ArgumentException>(() => harness.Provider.UpdateAsync("org_a", issued.Record.KeyId, new UnkeyKeyUpdate { ExpiresAt = late }));

        Assert.Equal(calls, _stub.Requests);
        Assert.NotNull(await harness.Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", ExpiresAt = UnkeyApiKeyProvider.MaxExpiresAt }));
    }

    [Fact]
    public async Task Issue_LongestPortalPrefixes_AreAcceptedByUnkeysPrefixRule()
    {
        // Portal prefixes are at most 16 characters with the trailing '_', so Unkey gets at most 15 of [a-z0-9_].
        var format = new Cortensor.Portal.Keys.Format.ApiKeyFormat(new Cortensor.Portal.Keys.Format.ApiKeyFormatOptions { LivePrefix = "abcdefghijklmno_", TestPrefix = "abcdefghijklmnt_" });
        var harness = Harness();
        using var provider = new UnkeyApiKeyProvider(harness.Client, format, _time, Microsoft.Extensions.Options.Options.Create(harness.Options), harness.Feed, harness.Metrics, Microsoft.Extensions.Logging.Abstractions.NullLogger<UnkeyApiKeyProvider>.Instance);

        var issued = await provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Environment = ApiKeyEnvironment.Live });

        Assert.StartsWith("abcdefghijklmno_", issued.Secret, StringComparison.Ordinal);
        Assert.True((await provider.VerifyAsync(issued.Secret)).IsValid);
    }
}

internal static class JsonObjectExtensions
{
    public static System.Text.Json.Nodes.JsonObject Also(this System.Text.Json.Nodes.JsonObject value, Action<System.Text.Json.Nodes.JsonObject> change)
    {
        change(value);
        return value;
    }
}
