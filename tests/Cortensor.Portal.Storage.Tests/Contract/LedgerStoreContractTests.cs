using Cortensor.Portal.Metering.Ledger;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>The behaviour every durable <see cref="ILedgerStore"/> must show.</summary>
/// <remarks>
/// Beyond the interface docs: ids are assigned by the store and increase in append order (the
/// <see cref="LedgerEntry.Id"/> passed in is ignored); entries without a request id are never duplicates; a negative
/// amount on a grant, debit or credit throws <see cref="ArgumentOutOfRangeException"/> (adjustments are signed);
/// <see cref="ILedgerStore.ListAsync"/> orders by time, then id.
/// </remarks>
public abstract class LedgerStoreContractTests : ExtendedStoreContractTests
{
    [Fact]
    public async Task Append_ThenList_RoundTripsAllFields_IdsAssigned()
    {
        await using var store = await CreateAsync();
        var grant = NewEntry("org_a", LedgerEntryKind.Grant, 10_000, BaseTime.AddTicks(1234560).ToOffset(TimeSpan.FromHours(1))) with
        {
            Id = 999, // ignored
            Description = "welcome credit",
        };
        var debit = NewEntry("org_a", LedgerEntryKind.Debit, 25, BaseTime.AddSeconds(1)) with { RequestId = "req_1", Description = "" };

        Assert.True(await store.Ledger.AppendAsync(grant));
        Assert.True(await store.Ledger.AppendAsync(debit));

        var listed = await store.Ledger.ListAsync("org_a", BaseTime, BaseTime.AddHours(1));

        Assert.Equal(2, listed.Count);
        Assert.True(listed[0].Id > 0);
        Assert.True(listed[1].Id > listed[0].Id);
        AssertSameEntry(grant, listed[0]);
        AssertSameEntry(debit, listed[1]);
    }

    [Fact]
    public async Task Append_SameDebitTwice_SecondReturnsFalse_ChargedOnce()
    {
        await using var store = await CreateAsync();
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 1_000, BaseTime));
        var debit = NewEntry("org_a", LedgerEntryKind.Debit, 40, BaseTime.AddSeconds(1)) with { RequestId = "req_1" };

        Assert.True(await store.Ledger.AppendAsync(debit));
        Assert.False(await store.Ledger.AppendAsync(debit));
        Assert.False(await store.Ledger.AppendAsync(debit with { AmountMinor = 999, OccurredAt = BaseTime.AddSeconds(5), Description = "replay" }));

        Assert.Equal(960, await store.Ledger.GetBalanceAsync("org_a", "USD"));
        var debits = (await store.Ledger.ListAsync("org_a", BaseTime, BaseTime.AddHours(1))).Where(e => e.Kind == LedgerEntryKind.Debit).ToList();
        Assert.Equal(40, Assert.Single(debits).AmountMinor);
    }

    [Fact]
    public async Task Append_SameRequestIdOtherKind_IsNotADuplicate()
    {
        await using var store = await CreateAsync();
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 1_000, BaseTime));

        Assert.True(await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Debit, 100, BaseTime) with { RequestId = "req_1" }));
        Assert.True(await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Credit, 100, BaseTime) with { RequestId = "req_1", Description = "refund" }));
        Assert.False(await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Credit, 100, BaseTime) with { RequestId = "req_1" }));

        Assert.Equal(1_000, await store.Ledger.GetBalanceAsync("org_a", "USD"));
    }

    [Fact]
    public async Task Append_WithoutRequestId_NeverDuplicate()
    {
        await using var store = await CreateAsync();
        var grant = NewEntry("org_a", LedgerEntryKind.Grant, 500, BaseTime);

        Assert.True(await store.Ledger.AppendAsync(grant));
        Assert.True(await store.Ledger.AppendAsync(grant));

        Assert.Equal(1_000, await store.Ledger.GetBalanceAsync("org_a", "USD"));
        Assert.Equal(2, (await store.Ledger.ListAsync("org_a", BaseTime, BaseTime.AddSeconds(1))).Count);
    }

    [Fact]
    public async Task Balance_GrantsPlusCreditsPlusSignedAdjustmentsMinusDebits()
    {
        await using var store = await CreateAsync();
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 1_000, BaseTime));
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 250, BaseTime.AddMinutes(1)));
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Debit, 300, BaseTime.AddMinutes(2)) with { RequestId = "req_1" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Debit, 45, BaseTime.AddMinutes(3)) with { RequestId = "req_2" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Credit, 50, BaseTime.AddMinutes(4)));
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Adjustment, -20, BaseTime.AddMinutes(5)));
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Adjustment, 5, BaseTime.AddMinutes(6)));

        // 1000 + 250 + 50 - 20 + 5 - 300 - 45
        Assert.Equal(940, await store.Ledger.GetBalanceAsync("org_a", "USD"));
    }

    [Fact]
    public async Task Balance_PerOrgAndPerCurrency_CanGoNegative()
    {
        await using var store = await CreateAsync();
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 1_000, BaseTime));
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 70, BaseTime) with { Currency = "CRD" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Debit, 100, BaseTime) with { Currency = "CRD", RequestId = "req_1" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Debit, 10, BaseTime) with { Currency = "EUR", RequestId = "req_2" });
        await store.Ledger.AppendAsync(NewEntry("org_b", LedgerEntryKind.Grant, 5, BaseTime));

        Assert.Equal(1_000, await store.Ledger.GetBalanceAsync("org_a", "USD"));
        Assert.Equal(-30, await store.Ledger.GetBalanceAsync("org_a", "CRD"));
        Assert.Equal(-10, await store.Ledger.GetBalanceAsync("org_a", "EUR"));
        Assert.Equal(5, await store.Ledger.GetBalanceAsync("org_b", "USD"));
        Assert.Equal(0, await store.Ledger.GetBalanceAsync("org_b", "CRD"));
        Assert.Equal(0, await store.Ledger.GetBalanceAsync("org_none", "USD"));
    }

    [Fact]
    public async Task List_FromInclusiveToExclusive_OldestFirst_OnlyThatOrg()
    {
        await using var store = await CreateAsync();
        var from = BaseTime;
        var to = BaseTime.AddHours(1);
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 1, from.AddTicks(-10)) with { Description = "before" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 2, to.AddTicks(-10)) with { Description = "last" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 3, from) with { Description = "at_from" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 4, from.AddMinutes(30)) with { Description = "middle" });
        await store.Ledger.AppendAsync(NewEntry("org_a", LedgerEntryKind.Grant, 5, to) with { Description = "at_to" });
        await store.Ledger.AppendAsync(NewEntry("org_b", LedgerEntryKind.Grant, 6, from.AddMinutes(1)) with { Description = "other_org" });

        Assert.Equal(["at_from", "middle", "last"], (await store.Ledger.ListAsync("org_a", from, to)).Select(e => e.Description));
        Assert.Empty(await store.Ledger.ListAsync("org_a", from, from));
        Assert.Empty(await store.Ledger.ListAsync("org_none", from, to));
        // The balance ignores time: every entry counts.
        Assert.Equal(15, await store.Ledger.GetBalanceAsync("org_a", "USD"));
    }

    [Theory]
    [InlineData(LedgerEntryKind.Grant)]
    [InlineData(LedgerEntryKind.Debit)]
    [InlineData(LedgerEntryKind.Credit)]
    public async Task Append_NegativeUnsignedAmount_Throws(LedgerEntryKind kind)
    {
        await using var store = await CreateAsync();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => store.Ledger.AppendAsync(NewEntry("org_a", kind, -1, BaseTime)));

        Assert.Empty(await store.Ledger.ListAsync("org_a", BaseTime, BaseTime.AddHours(1)));
    }

    [Fact]
    public async Task Append_ConcurrentReplaysOfOneDebit_ChargeOnce()
    {
        await using var store = await CreateAsync();
        var debit = NewEntry("org_a", LedgerEntryKind.Debit, 7, BaseTime) with { RequestId = "req_race" };
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var appends = Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            return await store.Ledger.AppendAsync(debit);
        })).ToArray();
        start.SetResult();
        var results = await Task.WhenAll(appends);

        Assert.Equal(1, results.Count(r => r));
        Assert.Equal(-7, await store.Ledger.GetBalanceAsync("org_a", "USD"));
    }

    // ---------------------------------------------------------------- helpers

    protected static LedgerEntry NewEntry(string orgId, LedgerEntryKind kind, long amountMinor, DateTimeOffset at) => new()
    {
        OrgId = orgId,
        OccurredAt = at,
        Kind = kind,
        AmountMinor = amountMinor,
        Currency = "USD",
        Description = kind.ToString(),
    };

    protected static void AssertSameEntry(LedgerEntry expected, LedgerEntry actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        Assert.Equal(expected with { Id = actual.Id, OccurredAt = actual.OccurredAt }, actual);
        AssertUtcInstant(expected.OccurredAt, actual.OccurredAt);
    }
}
