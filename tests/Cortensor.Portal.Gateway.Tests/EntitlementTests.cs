using System.Net;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Gateway.Entitlements;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Changes;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>Model access policies (plan, org, key, global) on the hot path, cached and dropped by change notices.</summary>
public sealed class EntitlementTests : IAsyncLifetime
{
    private readonly InMemoryPolicyStore _policies = new();
    private readonly InMemoryPlanStore _plans = new();
    private GatewayHost _host = null!;

    private ModelAccessAdministration Admin => _host.Services.GetRequiredService<ModelAccessAdministration>();

    public async Task InitializeAsync()
    {
        _host = await GatewayHost.StartAsync(services =>
        {
            services.AddSingleton<IModelAccessPolicyStore>(_policies);
            services.AddSingleton<IPlanStore>(_plans);
        });
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task OrgDeny_Is403_AndTheModelLeavesTheList()
    {
        var key = await _host.IssueKeyAsync();
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), key)).StatusCode);

        await Admin.SetPolicyAsync(PolicySubjectType.Org, "org_test", "m1", PolicyEffect.Deny, "admin_1");

        var refused = await _host.ChatAsync(Http.Chat(), key);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal("model_not_allowed", (await refused.ReadErrorAsync()).Code);
        var models = await GetAsync("/v1/models", key);
        Assert.DoesNotContain("\"m1\"", models, StringComparison.Ordinal);
    }

    [Fact]
    public async Task KeyAllow_BeatsOrgDeny()
    {
        var issued = await _host.Keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_test" });
        await Admin.SetPolicyAsync(PolicySubjectType.Org, "org_test", "m1", PolicyEffect.Deny, "admin_1");
        await Admin.SetPolicyAsync(PolicySubjectType.Key, issued.Record.KeyId, "m1", PolicyEffect.Allow, "admin_1");

        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), issued.Secret)).StatusCode);
    }

    [Fact]
    public async Task PlanDeny_AppliesToOrgsOnThatPlan()
    {
        await _plans.UpsertPlanAsync(new Plan { Id = "free", Name = "Free", CreatedAt = _host.Time.GetUtcNow() });
        await _plans.AddSubscriptionAsync(new PlanSubscription { Id = "sub_1", OrgId = "org_free", PlanId = "free", PeriodStart = _host.Time.GetUtcNow(), CreatedAt = _host.Time.GetUtcNow() });
        await Admin.SetPolicyAsync(PolicySubjectType.Plan, "free", "m1", PolicyEffect.Deny, "admin_1");
        var free = await _host.IssueKeyAsync(orgId: "org_free");
        var other = await _host.IssueKeyAsync(orgId: "org_paid");

        Assert.Equal(HttpStatusCode.Forbidden, (await _host.ChatAsync(Http.Chat(), free)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), other)).StatusCode);
    }

    [Fact]
    public async Task GlobalDisable_Is404ForEveryone_EvenWithAKeyAllow_AndEnableRestores()
    {
        var issued = await _host.Keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_test" });
        await Admin.SetPolicyAsync(PolicySubjectType.Key, issued.Record.KeyId, "m1", PolicyEffect.Allow, "admin_1");
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), issued.Secret)).StatusCode);

        await Admin.DisableModelAsync("m1", "admin_1");

        var refused = await _host.ChatAsync(Http.Chat(), issued.Secret);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
        Assert.Equal("model_not_found", (await refused.ReadErrorAsync()).Code);
        Assert.Equal(HttpStatusCode.NotFound, (await SendGetAsync("/v1/models/m1", issued.Secret)).StatusCode);

        Assert.True(await Admin.EnableModelAsync("m1", "admin_1"));
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), issued.Secret)).StatusCode);
    }

    [Fact]
    public async Task Policies_AreCached_OneStoreReadPerKeyUntilAChange()
    {
        var key = await _host.IssueKeyAsync();
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), key)).StatusCode);
        }

        Assert.Equal(1, _policies.Reads);

        await Admin.SetPolicyAsync(PolicySubjectType.Org, "org_other", "m1", PolicyEffect.Deny, "admin_1");
        await _host.ChatAsync(Http.Chat(), key);
        Assert.Equal(1, _policies.Reads); // another org's change does not drop this key's entry

        await _host.Services.GetRequiredService<IHotPathChangeFeed>().PublishAsync(HotPathChange.Everything);
        await _host.ChatAsync(Http.Chat(), key);
        Assert.Equal(2, _policies.Reads);
    }

    [Fact]
    public async Task StoreDown_ServesTheLastKnownAnswer_UnknownKeyGets503()
    {
        var known = await _host.IssueKeyAsync();
        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), known)).StatusCode);
        var unseen = await _host.IssueKeyAsync();
        _policies.Broken = true;
        _host.Time.Advance(TimeSpan.FromMinutes(1)); // past the refresh interval

        Assert.Equal(HttpStatusCode.OK, (await _host.ChatAsync(Http.Chat(), known)).StatusCode);
        var refused = await _host.ChatAsync(Http.Chat(), unseen);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("entitlements_unavailable", (await refused.ReadErrorAsync()).Code);
        Assert.True(refused.Headers.Contains("Retry-After"));
    }

    [Fact]
    public async Task KeysNotUsedForTenRefreshIntervals_AreDropped_KeysInUseStay_EvenWithTheStoreDown()
    {
        var cache = _host.Services.GetRequiredService<EntitlementCache>();
        var refresh = TimeSpan.FromSeconds(30); // the default interval
        ApiKeyPrincipal Principal(string id) => new() { KeyId = id, OrgId = "org_" + id, Environment = ApiKeyEnvironment.Test, DisplayPrefix = "pk_test_x" };
        for (var i = 0; i < 20; i++)
        {
            await cache.GetAsync(Principal("key_idle_" + i), CancellationToken.None);
        }

        await cache.GetAsync(Principal("key_busy"), CancellationToken.None);
        Assert.Equal(21, cache.Count);

        // key_busy is read every interval; for the last few the store is down and the last known copy is served.
        for (var interval = 1; interval <= EntitlementCache.IdleRefreshIntervals + 1; interval++)
        {
            _policies.Broken = interval > EntitlementCache.IdleRefreshIntervals - 3;
            _host.Time.Advance(refresh);
            await cache.GetAsync(Principal("key_busy"), CancellationToken.None);
        }

        _policies.Broken = false;
        await cache.GetAsync(Principal("key_new"), CancellationToken.None); // a store after the sweep came due

        Assert.Equal(2, cache.Count); // key_busy and key_new; the 20 idle keys are gone
        var reads = _policies.Reads;
        await cache.GetAsync(Principal("key_busy"), CancellationToken.None);
        Assert.Equal(reads, _policies.Reads); // still cached, not reloaded
    }

    private async Task<HttpResponseMessage> SendGetAsync(string path, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new("Bearer", key);
        return await _host.Client.SendAsync(request);
    }

    private async Task<string> GetAsync(string path, string key)
    {
        var response = await SendGetAsync(path, key);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task LoadAbandonedByItsCaller_IsNotHandedOutAgainAfterTheRefresh()
    {
        var cache = _host.Services.GetRequiredService<EntitlementCache>();
        var principal = new ApiKeyPrincipal { KeyId = "key_slow", OrgId = "org_slow", Environment = ApiKeyEnvironment.Test, DisplayPrefix = "pk_test_x" };
        _policies.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using (var gone = new CancellationTokenSource())
        {
            var waiting = cache.GetAsync(principal, gone.Token).AsTask();
            await gone.CancelAsync(); // the client went away while the database was slow
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        }

        _policies.Gate.SetResult(); // the abandoned load finishes with "no policies"
        _policies.Gate = null;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (cache.PendingLoads > 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the abandoned load never left the table");
            await Task.Delay(10);
        }

        await Admin.SetPolicyAsync(PolicySubjectType.Org, "org_slow", "m1", PolicyEffect.Deny, "admin_1");
        _host.Time.Advance(TimeSpan.FromMinutes(1));

        var fresh = await cache.GetAsync(principal, CancellationToken.None);

        Assert.False(fresh.IsAllowed("m1"));
    }
}
