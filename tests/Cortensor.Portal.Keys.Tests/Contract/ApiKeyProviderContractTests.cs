using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Keys.Tests.Contract;

/// <summary>
/// What every <see cref="IApiKeyProvider"/> promises, whatever it stores keys in: issue → verify → revoke, listing per
/// org, expiry against the injected clock, malformed keys refused with no I/O, and another org's key id treated as
/// "not found". Subclasses: the local and caching providers (here), the Redis provider (Redis tests, linked) and the
/// Unkey provider (Unkey tests, linked). Keys use the default prefixes <c>pk_live_</c>/<c>pk_test_</c>.
/// </summary>
/// <remarks>
/// Provider-specific latitude, on purpose: a revoked key answers <see cref="ApiKeyVerificationStatus.Revoked"/> or
/// <see cref="ApiKeyVerificationStatus.NotFound"/> (Unkey soft-deletes) and is either listed with
/// <see cref="ApiKeyRecord.RevokedAt"/> set or no longer listed; a tampered key that keeps the provider's shape is
/// <see cref="ApiKeyVerificationStatus.NotFound"/> rather than malformed when the provider's keys carry no checksum.
/// </remarks>
public abstract class ApiKeyProviderContractTests : IAsyncLifetime
{
    /// <summary>The fake clock's start (whole seconds, so expiries survive millisecond storage).</summary>
    protected static readonly DateTimeOffset Start = new(2030, 6, 1, 12, 0, 0, TimeSpan.Zero);

    /// <summary>The clock the provider (and whatever stands behind it) must use.</summary>
    protected FakeTimeProvider Time { get; } = new(Start);

    /// <summary>The provider under test.</summary>
    protected IApiKeyProvider Provider { get; private set; } = null!;

    /// <summary>Calls that reached the provider's backend so far (store, Redis, HTTP), or null when the subclass cannot tell.</summary>
    protected virtual int? BackendCalls => null;

    /// <summary>Builds the provider, using <paramref name="time"/> for every clock reading.</summary>
    /// <param name="time">The fake clock.</param>
    /// <returns>The provider under test.</returns>
    protected abstract Task<IApiKeyProvider> CreateProviderAsync(FakeTimeProvider time);

    /// <summary>A key with this provider's shape (it passes the format check) that was never issued.</summary>
    /// <param name="environment">Live or test.</param>
    /// <returns>The key.</returns>
    protected abstract string NewUnissuedKey(ApiKeyEnvironment environment);

    /// <summary>Releases what <see cref="CreateProviderAsync"/> made.</summary>
    /// <returns>A task.</returns>
    protected virtual Task DisposeProviderAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => Provider = await CreateProviderAsync(Time);

    public Task DisposeAsync() => DisposeProviderAsync();

    private Task<IssuedApiKey> IssueAsync(string orgId = "org_a", ApiKeyEnvironment environment = ApiKeyEnvironment.Test, IReadOnlyList<string>? allowedModels = null, DateTimeOffset? expiresAt = null)
        => Provider.IssueAsync(new IssueApiKeyRequest { OrgId = orgId, Name = "contract", Environment = environment, AllowedModels = allowedModels, ExpiresAt = expiresAt });

    [Fact]
    public async Task Contract_Issue_ThenVerify_ReturnsPrincipalOfTheOrg()
    {
        var issued = await IssueAsync("org_a", ApiKeyEnvironment.Live, allowedModels: ["m1", "m2"]);

        var verification = await Provider.VerifyAsync(issued.Secret);

        Assert.Equal(ApiKeyVerificationStatus.Valid, verification.Status);
        Assert.True(verification.IsValid);
        var principal = verification.Principal!;
        Assert.Equal(issued.Record.KeyId, principal.KeyId);
        Assert.Equal("org_a", principal.OrgId);
        Assert.Equal(ApiKeyEnvironment.Live, principal.Environment);
        Assert.Equal(issued.Record.DisplayPrefix, principal.DisplayPrefix);
        Assert.Equal(["m1", "m2"], principal.AllowedModels!);
        Assert.True(principal.IsModelAllowed("M1"));
        Assert.False(principal.IsModelAllowed("m3"));
        Assert.Null(principal.ExpiresAt);
    }

    [Theory]
    [InlineData(ApiKeyEnvironment.Live, "pk_live_")]
    [InlineData(ApiKeyEnvironment.Test, "pk_test_")]
    public async Task Contract_Issue_SecretCarriesTheEnvironmentPrefix_RecordHoldsNoSecret(ApiKeyEnvironment environment, string prefix)
    {
        var issued = await IssueAsync(environment: environment);

        Assert.StartsWith(prefix, issued.Secret, StringComparison.Ordinal);
        Assert.Equal(environment, issued.Record.Environment);
        Assert.Equal("org_a", issued.Record.OrgId);
        Assert.Equal("contract", issued.Record.Name);
        Assert.StartsWith(issued.Record.DisplayPrefix, issued.Secret, StringComparison.Ordinal);
        Assert.True(issued.Record.DisplayPrefix.Length < issued.Secret.Length - 8, "the display prefix must not reveal the key");
        Assert.DoesNotContain(issued.Secret, issued.Record.KeyId, StringComparison.Ordinal);
        Assert.Equal(environment, (await Provider.VerifyAsync(issued.Secret)).Principal!.Environment);
    }

    [Fact]
    public async Task Contract_Issue_TwoKeys_AreDistinct()
    {
        var first = await IssueAsync();
        var second = await IssueAsync();

        Assert.NotEqual(first.Secret, second.Secret);
        Assert.NotEqual(first.Record.KeyId, second.Record.KeyId);
        Assert.Equal(second.Record.KeyId, (await Provider.VerifyAsync(second.Secret)).Principal!.KeyId);
    }

    [Fact]
    public async Task Contract_Issue_InvalidRequests_Throw()
    {
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "" }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", ExpiresAt = Start }));
        await Assert.ThrowsAnyAsync<ArgumentException>(() => Provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", ExpiresAt = Start.AddMinutes(-1) }));
    }

    [Fact]
    public async Task Contract_Verify_WellFormedUnknownKey_IsNotFound()
    {
        await IssueAsync();

        var verification = await Provider.VerifyAsync(NewUnissuedKey(ApiKeyEnvironment.Test));

        Assert.Equal(ApiKeyVerificationStatus.NotFound, verification.Status);
        Assert.Null(verification.Principal);
        Assert.False(verification.IsValid);
    }

    [Fact]
    public async Task Contract_Verify_MalformedKeys_AreRefusedWithoutIo()
    {
        var issued = await IssueAsync();
        var body = issued.Secret["pk_test_".Length..];
        var before = BackendCalls;
        string[] malformed =
        [
            "",
            "   ",
            "hello",
            "pk_test_",
            "Bearer " + issued.Secret,
            " " + issued.Secret,
            issued.Secret + " ",
            issued.Secret + "\n",
            "sk_test_" + body,
            "PK_TEST_" + body,
            "pk_test_" + new string('A', 600),
            issued.Secret[..^4] + "!!!!",
            issued.Secret[..^4] + "ÄÖÜé",
            "pk_test_" + body[..5],
        ];

        foreach (var key in malformed)
        {
            var verification = await Provider.VerifyAsync(key);
            Assert.True(verification.Status == ApiKeyVerificationStatus.Malformed, $"'{key}' gave {verification.Status}");
            Assert.Null(verification.Principal);
        }

        Assert.Equal(before, BackendCalls);
    }

    [Fact]
    public async Task Contract_Verify_TamperedKey_IsNotValid()
    {
        var issued = await IssueAsync();
        var tampered = issued.Secret[..^1] + (issued.Secret[^1] == 'z' ? 'y' : 'z');

        var verification = await Provider.VerifyAsync(tampered);

        Assert.Contains(verification.Status, new[] { ApiKeyVerificationStatus.Malformed, ApiKeyVerificationStatus.NotFound });
        Assert.Null(verification.Principal);
        Assert.True((await Provider.VerifyAsync(issued.Secret)).IsValid);
    }

    [Fact]
    public async Task Contract_Revoke_ThenVerify_IsNotValid_EvenRightAfterAValidVerification()
    {
        var issued = await IssueAsync();
        Assert.True((await Provider.VerifyAsync(issued.Secret)).IsValid); // warms every cache on the way

        Assert.True(await Provider.RevokeAsync("org_a", issued.Record.KeyId));

        var verification = await Provider.VerifyAsync(issued.Secret);
        Assert.Contains(verification.Status, new[] { ApiKeyVerificationStatus.Revoked, ApiKeyVerificationStatus.NotFound });
        Assert.Null(verification.Principal);
    }

    [Fact]
    public async Task Contract_Revoke_Twice_SecondReturnsFalse()
    {
        var issued = await IssueAsync();

        Assert.True(await Provider.RevokeAsync("org_a", issued.Record.KeyId));
        Assert.False(await Provider.RevokeAsync("org_a", issued.Record.KeyId));
    }

    [Fact]
    public async Task Contract_Revoke_AnotherOrgsKey_ReturnsFalse_AndTheKeyKeepsWorking()
    {
        var issued = await IssueAsync("org_a");
        await IssueAsync("org_b");

        Assert.False(await Provider.RevokeAsync("org_b", issued.Record.KeyId));

        var verification = await Provider.VerifyAsync(issued.Secret);
        Assert.True(verification.IsValid);
        Assert.Equal("org_a", verification.Principal!.OrgId);
    }

    [Fact]
    public async Task Contract_Revoke_UnknownKeyIds_ReturnFalse()
    {
        await IssueAsync();

        Assert.False(await Provider.RevokeAsync("org_a", "key_doesnotexist0000000000"));
        Assert.False(await Provider.RevokeAsync("org_a", ""));
    }

    [Fact]
    public async Task Contract_List_ReturnsOnlyTheOrgsKeys_WithoutSecrets()
    {
        var a1 = await IssueAsync("org_a");
        var a2 = await IssueAsync("org_a", ApiKeyEnvironment.Live);
        var b1 = await IssueAsync("org_b");

        var listA = await Provider.ListAsync("org_a");
        var listB = await Provider.ListAsync("org_b");

        Assert.Equal(new[] { a1.Record.KeyId, a2.Record.KeyId }.Order(StringComparer.Ordinal), listA.Select(r => r.KeyId).Order(StringComparer.Ordinal));
        Assert.All(listA, r => Assert.Equal("org_a", r.OrgId));
        Assert.Equal(b1.Record.KeyId, Assert.Single(listB).KeyId);
        Assert.Empty(await Provider.ListAsync("org_nobody"));

        foreach (var (issued, record) in new[] { (a1, listA.Single(r => r.KeyId == a1.Record.KeyId)), (a2, listA.Single(r => r.KeyId == a2.Record.KeyId)) })
        {
            Assert.Equal(issued.Record.Environment, record.Environment);
            Assert.Equal("contract", record.Name);
            Assert.StartsWith(record.DisplayPrefix, issued.Secret, StringComparison.Ordinal);
            Assert.True(record.DisplayPrefix.Length < issued.Secret.Length - 8);
            Assert.Null(record.RevokedAt);
        }
    }

    [Fact]
    public async Task Contract_List_AfterRevoke_KeyIsGoneOrMarkedRevoked()
    {
        var kept = await IssueAsync();
        var revoked = await IssueAsync();
        Assert.True(await Provider.RevokeAsync("org_a", revoked.Record.KeyId));

        var list = await Provider.ListAsync("org_a");

        Assert.Null(Assert.Single(list, r => r.KeyId == kept.Record.KeyId).RevokedAt);
        var gone = list.SingleOrDefault(r => r.KeyId == revoked.Record.KeyId);
        Assert.True(gone is null || gone.RevokedAt is not null);
    }

    [Fact]
    public async Task Contract_Expiry_KeyWorksUntilItsExpiryThenIsExpired()
    {
        var expiresAt = Start.AddHours(1);
        var issued = await IssueAsync(expiresAt: expiresAt);
        Assert.Equal(expiresAt, issued.Record.ExpiresAt);

        var before = await Provider.VerifyAsync(issued.Secret);
        Assert.True(before.IsValid);
        Assert.Equal(expiresAt, before.Principal!.ExpiresAt);

        Time.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));

        var after = await Provider.VerifyAsync(issued.Secret);
        Assert.Equal(ApiKeyVerificationStatus.Expired, after.Status);
        Assert.Null(after.Principal);
    }

    [Fact]
    public async Task Contract_Verify_NoAllowList_AllowsEveryModel()
    {
        var issued = await IssueAsync();

        var principal = (await Provider.VerifyAsync(issued.Secret)).Principal!;

        Assert.Null(principal.AllowedModels);
        Assert.True(principal.IsModelAllowed("anything"));
    }

    [Fact]
    public async Task Contract_Verify_ConcurrentCallsForOneKey_AllValid()
    {
        var issued = await IssueAsync();

        var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Provider.VerifyAsync(issued.Secret).AsTask()));

        Assert.All(results, r => Assert.Equal(issued.Record.KeyId, r.Principal?.KeyId));
    }
}
