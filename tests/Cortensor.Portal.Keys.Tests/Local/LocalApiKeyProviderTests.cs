using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Cortensor.Portal.Keys.Local;
using Cortensor.Portal.Keys.Tests.TestDoubles;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Keys.Tests.Local;

public sealed class LocalApiKeyProviderTests
{
    private static readonly DateTimeOffset Start = new(2030, 6, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _time = new(Start);
    private readonly CountingApiKeyStore _store = new();
    private readonly CapturingLogger<LocalApiKeyProvider> _logger = new();
    private readonly LocalApiKeyProvider _provider;

    public LocalApiKeyProviderTests()
    {
        _provider = new LocalApiKeyProvider(_store, ApiKeyFormat.Default, _time, _logger);
    }

    [Fact]
    public async Task IssueAsync_ValidRequest_ReturnsSecretAndStoresOnlyItsHash()
    {
        var issued = await _provider.IssueAsync(new IssueApiKeyRequest
        {
            OrgId = "org_a",
            Name = "ci",
            Environment = ApiKeyEnvironment.Live,
            Scopes = ["chat"],
            AllowedModels = ["llama-3"],
            ExpiresAt = Start.AddDays(30),
        });

        var record = issued.Record;
        Assert.True(ApiKeyFormat.Default.TryParse(issued.Secret, out var parsed));
        Assert.Equal(ApiKeyEnvironment.Live, parsed.Environment);
        Assert.StartsWith("pk_live_", issued.Secret, StringComparison.Ordinal);
        Assert.True(ApiKeyIds.IsWellFormed(record.KeyId));
        Assert.Equal("org_a", record.OrgId);
        Assert.Equal("ci", record.Name);
        Assert.Equal(ApiKeyEnvironment.Live, record.Environment);
        Assert.Equal(ApiKeyHasher.Hash(issued.Secret), record.Hash);
        Assert.Equal(issued.Secret[..16], record.DisplayPrefix);
        Assert.Equal(["chat"], record.Scopes);
        Assert.Equal(["llama-3"], record.AllowedModels!);
        Assert.Equal(Start, record.CreatedAt);
        Assert.Equal(Start.AddDays(30), record.ExpiresAt);
        Assert.Null(record.RevokedAt);
        Assert.DoesNotContain(issued.Secret[16..], record.KeyId, StringComparison.Ordinal);
    }

    [Fact]
    public async Task VerifyAsync_IssuedKey_IsValidWithPrincipalFields()
    {
        var issued = await _provider.IssueAsync(new IssueApiKeyRequest
        {
            OrgId = "org_a",
            Environment = ApiKeyEnvironment.Test,
            Scopes = ["chat", "embeddings"],
            AllowedModels = ["llama-3"],
            ExpiresAt = Start.AddDays(1),
        });

        var result = await _provider.VerifyAsync(issued.Secret);

        Assert.True(result.IsValid);
        Assert.Equal(ApiKeyVerificationStatus.Valid, result.Status);
        var principal = result.Principal!;
        Assert.Equal(issued.Record.KeyId, principal.KeyId);
        Assert.Equal("org_a", principal.OrgId);
        Assert.Equal(ApiKeyEnvironment.Test, principal.Environment);
        Assert.Equal(issued.Record.DisplayPrefix, principal.DisplayPrefix);
        Assert.Equal(["chat", "embeddings"], principal.Scopes);
        Assert.Equal(Start.AddDays(1), principal.ExpiresAt);
        Assert.True(principal.IsModelAllowed("LLAMA-3"));
        Assert.False(principal.IsModelAllowed("gpt-4"));
    }

    [Fact]
    public async Task VerifyAsync_RevokedKey_ReturnsRevoked()
    {
        var issued = await IssueAsync("org_a");

        Assert.True(await _provider.RevokeAsync("org_a", issued.Record.KeyId));
        var result = await _provider.VerifyAsync(issued.Secret);

        Assert.Equal(ApiKeyVerificationStatus.Revoked, result.Status);
        Assert.Null(result.Principal);
        Assert.False(result.IsValid);
    }

    [Fact]
    public async Task VerifyAsync_ClockReachesExpiry_ReturnsExpired()
    {
        var issued = await IssueAsync("org_a", expiresAt: Start.AddHours(1));

        _time.Advance(TimeSpan.FromHours(1) - TimeSpan.FromTicks(1));
        Assert.Equal(ApiKeyVerificationStatus.Valid, (await _provider.VerifyAsync(issued.Secret)).Status);

        _time.Advance(TimeSpan.FromTicks(1));
        var result = await _provider.VerifyAsync(issued.Secret);

        Assert.Equal(ApiKeyVerificationStatus.Expired, result.Status);
        Assert.Null(result.Principal);
    }

    [Fact]
    public async Task VerifyAsync_RevokedAndExpired_ReportsRevoked()
    {
        var issued = await IssueAsync("org_a", expiresAt: Start.AddMinutes(1));
        await _provider.RevokeAsync("org_a", issued.Record.KeyId);
        _time.Advance(TimeSpan.FromHours(1));

        Assert.Equal(ApiKeyVerificationStatus.Revoked, (await _provider.VerifyAsync(issued.Secret)).Status);
    }

    [Fact]
    public async Task VerifyAsync_UnknownWellFormedKey_ReturnsNotFoundAfterOneLookup()
    {
        await IssueAsync("org_a");
        var unknown = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);

        var result = await _provider.VerifyAsync(unknown);

        Assert.Equal(ApiKeyVerificationStatus.NotFound, result.Status);
        Assert.Null(result.Principal);
        Assert.Equal(1, _store.FindCalls);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("Bearer x")]
    [InlineData("sk_live_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg05wdfO")]
    [InlineData("pk_live_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg05wdfo")] // bad checksum
    [InlineData("pk_live_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg05wdf")] // truncated
    [InlineData("pk_live_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdéfg05wdfO")] // non-ASCII
    public async Task VerifyAsync_MalformedKey_ReturnsMalformedWithoutTouchingStore(string? key)
    {
        var result = await _provider.VerifyAsync(key!);

        Assert.Equal(ApiKeyVerificationStatus.Malformed, result.Status);
        Assert.Null(result.Principal);
        Assert.Equal(0, _store.TotalCalls);
    }

    [Fact]
    public async Task VerifyAsync_IssuedKeyWithOneCharFlipped_IsMalformedNotLookedUp()
    {
        var issued = await IssueAsync("org_a");
        var chars = issued.Secret.ToCharArray();
        chars[20] = chars[20] == 'a' ? 'b' : 'a';
        var callsBefore = _store.TotalCalls;

        var result = await _provider.VerifyAsync(new string(chars));

        Assert.Equal(ApiKeyVerificationStatus.Malformed, result.Status);
        Assert.Equal(callsBefore, _store.TotalCalls);
    }

    [Fact]
    public async Task VerifyAsync_StoreReturnsRecordWithOtherHash_ReturnsNotFound()
    {
        var issued = await IssueAsync("org_a");
        var lyingStore = new SingleRecordStore(issued.Record with { Hash = ApiKeyHasher.Hash("something else") });
        var provider = new LocalApiKeyProvider(lyingStore, ApiKeyFormat.Default, _time, _logger);

        var result = await provider.VerifyAsync(issued.Secret);

        Assert.Equal(ApiKeyVerificationStatus.NotFound, result.Status);
    }

    [Fact]
    public async Task RevokeAsync_OtherOrg_ReturnsFalseAndKeyStaysValid()
    {
        var issued = await IssueAsync("org_a");

        Assert.False(await _provider.RevokeAsync("org_b", issued.Record.KeyId));

        Assert.True((await _provider.VerifyAsync(issued.Secret)).IsValid);
        Assert.Null(Assert.Single(await _provider.ListAsync("org_a")).RevokedAt);
    }

    [Fact]
    public async Task RevokeAsync_SetsRevokedAtFromTimeProvider()
    {
        var issued = await IssueAsync("org_a");
        _time.Advance(TimeSpan.FromMinutes(5));

        await _provider.RevokeAsync("org_a", issued.Record.KeyId);

        Assert.Equal(Start.AddMinutes(5), Assert.Single(await _provider.ListAsync("org_a")).RevokedAt);
    }

    [Fact]
    public async Task RevokeAsync_UnknownKey_ReturnsFalse()
    {
        Assert.False(await _provider.RevokeAsync("org_a", "key_doesnotexist000000000000"));
    }

    [Fact]
    public async Task ListAsync_KeysInTwoOrgs_ReturnsOnlyCallersInCreationOrder()
    {
        var first = await IssueAsync("org_a");
        _time.Advance(TimeSpan.FromSeconds(1));
        var other = await IssueAsync("org_b");
        _time.Advance(TimeSpan.FromSeconds(1));
        var second = await IssueAsync("org_a");

        var listA = await _provider.ListAsync("org_a");
        var listB = await _provider.ListAsync("org_b");

        Assert.Equal([first.Record.KeyId, second.Record.KeyId], listA.Select(r => r.KeyId).ToArray());
        Assert.Equal(other.Record.KeyId, Assert.Single(listB).KeyId);
    }

    [Fact]
    public async Task IssueAsync_EmptyOrgId_Throws()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _provider.IssueAsync(new IssueApiKeyRequest { OrgId = " " }));
        Assert.Equal(0, _store.TotalCalls);
    }

    [Fact]
    public async Task IssueAsync_NameOver100Chars_Throws()
    {
        await _provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Name = new string('n', 100) });

        await Assert.ThrowsAsync<ArgumentException>(
            () => _provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Name = new string('n', 101) }));
    }

    [Fact]
    public async Task IssueAsync_ExpiryNotInFuture_Throws()
    {
        await Assert.ThrowsAsync<ArgumentException>(
            () => _provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", ExpiresAt = Start }));
        await Assert.ThrowsAsync<ArgumentException>(
            () => _provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", ExpiresAt = Start.AddSeconds(-1) }));
        Assert.Equal(0, _store.TotalCalls);
    }

    [Fact]
    public async Task IssueAsync_UnknownEnvironment_Throws()
    {
        await Assert.ThrowsAsync<ArgumentException>(
            () => _provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Environment = (ApiKeyEnvironment)7 }));
    }

    [Fact]
    public async Task IssueAsync_RequestListsMutatedLater_RecordUnaffected()
    {
        var scopes = new List<string> { "chat" };
        var issued = await _provider.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Scopes = scopes });

        scopes.Add("admin");

        Assert.Equal(["chat"], issued.Record.Scopes);
    }

    [Fact]
    public async Task Lifecycle_Logs_NeverContainSecretButNameKeyId()
    {
        var issued = await IssueAsync("org_a");
        await _provider.VerifyAsync(issued.Secret);
        await _provider.VerifyAsync(issued.Secret[..^1] + "0");
        await _provider.VerifyAsync(ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test));
        await _provider.RevokeAsync("org_a", issued.Record.KeyId);
        await _provider.VerifyAsync(issued.Secret);

        var text = _logger.AllText();

        Assert.DoesNotContain(issued.Secret[16..], text, StringComparison.Ordinal);
        Assert.Empty(ApiKeyFormat.Default.FindKeys(text));
        Assert.Contains(issued.Record.KeyId, text, StringComparison.Ordinal);
        Assert.All(_logger.Entries, e => Assert.InRange(e.EventId.Id, 3000, 3099));
        Assert.Contains(_logger.Entries, e => e.EventId.Name == "KeyIssued" && e.Level == LogLevel.Information);
    }

    private Task<IssuedApiKey> IssueAsync(string orgId, DateTimeOffset? expiresAt = null) =>
        _provider.IssueAsync(new IssueApiKeyRequest { OrgId = orgId, ExpiresAt = expiresAt });

    /// <summary>A store that answers every lookup with one record, as a store matching on a selector might.</summary>
    private sealed class SingleRecordStore(ApiKeyRecord record) : IApiKeyStore
    {
        public ValueTask<ApiKeyRecord?> FindByHashAsync(ReadOnlyMemory<byte> hash, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<ApiKeyRecord?>(record);

        public Task AddAsync(ApiKeyRecord record, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task<bool> RevokeAsync(string orgId, string keyId, DateTimeOffset revokedAt, CancellationToken cancellationToken = default) =>
            Task.FromResult(false);

        public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<ApiKeyRecord>>([record]);
    }
}
