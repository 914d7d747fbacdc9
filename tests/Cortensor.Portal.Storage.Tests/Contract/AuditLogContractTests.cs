using System.Text.Json.Nodes;
using Cortensor.Portal.Accounts.Audit;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>The behaviour every durable <see cref="IAuditLog"/> must show.</summary>
/// <remarks>
/// Beyond the interface docs: a duplicate entry id throws <see cref="InvalidOperationException"/>; entries with the same
/// time come newest-id first; a limit below 1 throws <see cref="ArgumentOutOfRangeException"/>;
/// <see cref="AuditEntry.DetailsJson"/> comes back as the same JSON value (whitespace and key order may differ, as in
/// Postgres <c>jsonb</c>).
/// </remarks>
public abstract class AuditLogContractTests : ExtendedStoreContractTests
{
    [Fact]
    public async Task Append_ThenList_RoundTripsAllFields()
    {
        await using var store = await CreateAsync();
        var full = new AuditEntry
        {
            Id = "aud_1",
            OccurredAt = BaseTime.AddTicks(1234560).ToOffset(TimeSpan.FromHours(-3)),
            ActorType = AuditActorType.Admin,
            ActorId = "usr_admin",
            Action = "key.revoked",
            OrgId = "org_a",
            TargetId = "key_1",
            DetailsJson = """{"reason": "leaked", "count": 2, "nested": {"ok": true}}""",
        };
        var sparse = new AuditEntry
        {
            Id = "aud_2",
            OccurredAt = BaseTime.AddSeconds(1),
            ActorType = AuditActorType.System,
            ActorId = "metering",
            Action = "model.disabled",
            OrgId = "org_a",
        };
        var user = sparse with { Id = "aud_3", OccurredAt = BaseTime.AddSeconds(2), ActorType = AuditActorType.User, ActorId = "usr_1" };

        await store.Audit.AppendAsync(full);
        await store.Audit.AppendAsync(sparse);
        await store.Audit.AppendAsync(user);

        var listed = await store.Audit.ListAsync("org_a", BaseTime.AddHours(-1), BaseTime.AddHours(1));

        Assert.Equal(3, listed.Count);
        AssertSameEntry(user, listed[0]);
        AssertSameEntry(sparse, listed[1]);
        AssertSameEntry(full, listed[2]);
    }

    [Fact]
    public async Task List_NewestFirst_WithLimit()
    {
        await using var store = await CreateAsync();
        for (var i = 0; i < 10; i++)
        {
            // Appended out of time order on purpose.
            var minute = (i * 7) % 10;
            await store.Audit.AppendAsync(NewEntry($"aud_{minute:00}", "org_a", BaseTime.AddMinutes(minute)));
        }

        var top3 = await store.Audit.ListAsync("org_a", BaseTime, BaseTime.AddHours(1), limit: 3);
        var all = await store.Audit.ListAsync("org_a", BaseTime, BaseTime.AddHours(1));

        Assert.Equal(["aud_09", "aud_08", "aud_07"], top3.Select(e => e.Id));
        Assert.Equal(Enumerable.Range(0, 10).Reverse().Select(i => $"aud_{i:00}"), all.Select(e => e.Id));
        Assert.Single(await store.Audit.ListAsync("org_a", BaseTime, BaseTime.AddHours(1), limit: 1));
    }

    [Fact]
    public async Task List_FromInclusiveToExclusive_OnlyThatOrg()
    {
        await using var store = await CreateAsync();
        var from = BaseTime;
        var to = BaseTime.AddHours(1);
        await store.Audit.AppendAsync(NewEntry("before", "org_a", from.AddTicks(-10)));
        await store.Audit.AppendAsync(NewEntry("at_from", "org_a", from));
        await store.Audit.AppendAsync(NewEntry("last", "org_a", to.AddTicks(-10)));
        await store.Audit.AppendAsync(NewEntry("at_to", "org_a", to));
        await store.Audit.AppendAsync(NewEntry("other_org", "org_b", from.AddMinutes(1)));
        await store.Audit.AppendAsync(NewEntry("no_org", null, from.AddMinutes(1)));

        Assert.Equal(["last", "at_from"], (await store.Audit.ListAsync("org_a", from, to)).Select(e => e.Id));
        Assert.Equal(["other_org"], (await store.Audit.ListAsync("org_b", from, to)).Select(e => e.Id));
        Assert.Empty(await store.Audit.ListAsync("org_a", from, from));
        Assert.Empty(await store.Audit.ListAsync("org_none", from, to));
    }

    [Fact]
    public async Task Append_DuplicateId_ThrowsAndKeepsFirst()
    {
        await using var store = await CreateAsync();
        await store.Audit.AppendAsync(NewEntry("aud_1", "org_a", BaseTime) with { Action = "key.created" });

        await Assert.ThrowsAnyAsync<InvalidOperationException>(
            () => store.Audit.AppendAsync(NewEntry("aud_1", "org_a", BaseTime.AddSeconds(1)) with { Action = "key.revoked" }));

        var only = Assert.Single(await store.Audit.ListAsync("org_a", BaseTime, BaseTime.AddHours(1)));
        Assert.Equal("key.created", only.Action);
    }

    [Fact]
    public async Task List_LimitBelowOne_Throws()
    {
        await using var store = await CreateAsync();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.Audit.ListAsync("org_a", BaseTime, BaseTime.AddHours(1), limit: 0));
    }

    // ---------------------------------------------------------------- helpers

    protected static AuditEntry NewEntry(string id, string? orgId, DateTimeOffset at) => new()
    {
        Id = id,
        OccurredAt = at,
        ActorType = AuditActorType.User,
        ActorId = "usr_1",
        Action = "key.created",
        OrgId = orgId,
        TargetId = "key_1",
        DetailsJson = """{"name":"ci"}""",
    };

    protected static void AssertSameEntry(AuditEntry expected, AuditEntry actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(expected with { OccurredAt = actual.OccurredAt, DetailsJson = actual.DetailsJson }, actual);
        AssertUtcInstant(expected.OccurredAt, actual.OccurredAt);
        if (expected.DetailsJson is null)
        {
            Assert.Null(actual.DetailsJson);
        }
        else
        {
            Assert.NotNull(actual.DetailsJson);
            Assert.True(
                JsonNode.DeepEquals(JsonNode.Parse(expected.DetailsJson), JsonNode.Parse(actual.DetailsJson)),
                $"Details differ: expected {expected.DetailsJson}, got {actual.DetailsJson}.");
        }
    }
}
