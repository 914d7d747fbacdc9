using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Cortensor.Portal.Keys.Stores;

namespace Cortensor.Portal.Keys.Tests.Stores;

public sealed class InMemoryApiKeyStoreTests
{
    private static readonly DateTimeOffset T0 = new(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private static readonly string Secret = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);

    private static ApiKeyRecord NewRecord(string orgId, DateTimeOffset createdAt, string? secret = null)
    {
        secret ??= ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);
        return new ApiKeyRecord
        {
            KeyId = ApiKeyIds.NewKeyId(),
            OrgId = orgId,
            Environment = ApiKeyEnvironment.Test,
            Hash = ApiKeyHasher.Hash(secret),
            DisplayPrefix = secret[..16],
            CreatedAt = createdAt,
        };
    }

    [Fact]
    public async Task FindByHashAsync_StoredRecord_FoundByEqualHashInOtherArray()
    {
        var store = new InMemoryApiKeyStore();
        var record = NewRecord("org_a", T0, Secret);
        await store.AddAsync(record);

        var found = await store.FindByHashAsync(ApiKeyHasher.Hash(Secret));

        Assert.NotNull(found);
        Assert.Equal(record.KeyId, found.KeyId);
    }

    [Fact]
    public async Task FindByHashAsync_UnknownHash_ReturnsNull()
    {
        var store = new InMemoryApiKeyStore();
        await store.AddAsync(NewRecord("org_a", T0));

        Assert.Null(await store.FindByHashAsync(ApiKeyHasher.Hash(ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test))));
    }

    [Fact]
    public async Task AddAsync_CallerMutatesHashArrayAfterwards_StoreUnaffected()
    {
        var store = new InMemoryApiKeyStore();
        var record = NewRecord("org_a", T0, Secret);
        await store.AddAsync(record);

        record.Hash[0] ^= 0xFF;

        Assert.NotNull(await store.FindByHashAsync(ApiKeyHasher.Hash(Secret)));
    }

    [Fact]
    public async Task AddAsync_DuplicateKeyIdOrHash_Throws()
    {
        var store = new InMemoryApiKeyStore();
        var record = NewRecord("org_a", T0, Secret);
        await store.AddAsync(record);

        await Assert.ThrowsAsync<InvalidOperationException>(() => store.AddAsync(record with { Hash = ApiKeyHasher.Hash("x") }));
        await Assert.ThrowsAsync<InvalidOperationException>(() => store.AddAsync(record with { KeyId = ApiKeyIds.NewKeyId() }));
        Assert.Equal(1, store.Count);
    }

    [Fact]
    public async Task AddAsync_HashNot32Bytes_Throws()
    {
        var store = new InMemoryApiKeyStore();

        await Assert.ThrowsAsync<ArgumentException>(() => store.AddAsync(NewRecord("org_a", T0) with { Hash = new byte[16] }));
    }

    [Fact]
    public async Task RevokeAsync_SameOrg_ReplacesRecordWithRevokedCopy()
    {
        var store = new InMemoryApiKeyStore();
        var record = NewRecord("org_a", T0, Secret);
        await store.AddAsync(record);

        Assert.True(await store.RevokeAsync("org_a", record.KeyId, T0.AddHours(1)));

        var found = await store.FindByHashAsync(ApiKeyHasher.Hash(Secret));
        Assert.Equal(T0.AddHours(1), found!.RevokedAt);
        Assert.Null(record.RevokedAt); // the original instance is untouched
        Assert.Equal(T0.AddHours(1), Assert.Single(await store.ListAsync("org_a")).RevokedAt);
    }

    [Fact]
    public async Task RevokeAsync_OtherOrg_ReturnsFalseAndLeavesRecord()
    {
        var store = new InMemoryApiKeyStore();
        var record = NewRecord("org_a", T0, Secret);
        await store.AddAsync(record);

        Assert.False(await store.RevokeAsync("org_b", record.KeyId, T0));

        Assert.Null((await store.FindByHashAsync(ApiKeyHasher.Hash(Secret)))!.RevokedAt);
    }

    [Fact]
    public async Task RevokeAsync_AlreadyRevokedOrUnknown_ReturnsFalseAndKeepsFirstTime()
    {
        var store = new InMemoryApiKeyStore();
        var record = NewRecord("org_a", T0);
        await store.AddAsync(record);

        Assert.True(await store.RevokeAsync("org_a", record.KeyId, T0));
        Assert.False(await store.RevokeAsync("org_a", record.KeyId, T0.AddDays(1)));
        Assert.False(await store.RevokeAsync("org_a", "key_missing", T0));
        Assert.Equal(T0, Assert.Single(await store.ListAsync("org_a")).RevokedAt);
    }

    [Fact]
    public async Task ListAsync_SeveralOrgs_ReturnsOnlyOrgOrderedByCreatedAt()
    {
        var store = new InMemoryApiKeyStore();
        var late = NewRecord("org_a", T0.AddMinutes(2));
        var early = NewRecord("org_a", T0);
        var middle = NewRecord("org_a", T0.AddMinutes(1));
        var other = NewRecord("org_b", T0);
        foreach (var record in new[] { late, other, early, middle })
        {
            await store.AddAsync(record);
        }

        var listed = await store.ListAsync("org_a");

        Assert.Equal([early.KeyId, middle.KeyId, late.KeyId], listed.Select(r => r.KeyId).ToArray());
        Assert.Equal([other.KeyId], (await store.ListAsync("org_b")).Select(r => r.KeyId).ToArray());
        Assert.Empty(await store.ListAsync("org_c"));
    }

    [Fact]
    public async Task Store_ConcurrentAddsRevokesAndReads_StaysConsistent()
    {
        var store = new InMemoryApiKeyStore();
        var records = Enumerable.Range(0, 500).Select(i => NewRecord($"org_{i % 5}", T0.AddSeconds(i))).ToArray();

        await Parallel.ForEachAsync(records, async (record, ct) => await store.AddAsync(record, ct));
        var revoked = 0;
        await Parallel.ForEachAsync(records, async (record, ct) =>
        {
            if (await store.RevokeAsync(record.OrgId, record.KeyId, T0, ct))
            {
                Interlocked.Increment(ref revoked);
            }

            // A second concurrent revoke of the same key must lose.
            Assert.False(await store.RevokeAsync(record.OrgId, record.KeyId, T0, ct));
            Assert.NotNull((await store.FindByHashAsync(record.Hash, ct))!.RevokedAt);
        });

        Assert.Equal(500, revoked);
        Assert.Equal(500, store.Count);
        Assert.Equal(100, (await store.ListAsync("org_3")).Count);
    }

    [Fact]
    public async Task FindByHashAsync_CanceledToken_IsCanceled()
    {
        var store = new InMemoryApiKeyStore();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            async () => await store.FindByHashAsync(new byte[32], new CancellationToken(canceled: true)));
    }
}
