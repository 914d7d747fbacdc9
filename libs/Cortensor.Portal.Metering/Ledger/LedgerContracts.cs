namespace Cortensor.Portal.Metering.Ledger;

public enum LedgerEntryKind
{
    /// <summary>Free allowance or purchased credit added (positive).</summary>
    Grant,

    /// <summary>Usage charged (subtracted from the balance).</summary>
    Debit,

    /// <summary>A refund or goodwill credit (added).</summary>
    Credit,

    /// <summary>A manual correction; its amount is signed.</summary>
    Adjustment,
}

/// <summary>
/// One append-only ledger line. Amounts are integer minor units; <see cref="AmountMinor"/> is positive for grants,
/// debits and credits, signed for adjustments. Balance = grants + credits + adjustments − debits.
/// </summary>
public sealed record LedgerEntry
{
    /// <summary>Assigned by the store; ignored on append.</summary>
    public long Id { get; init; }

    public required string OrgId { get; init; }

    public required DateTimeOffset OccurredAt { get; init; }

    public required LedgerEntryKind Kind { get; init; }

    public required long AmountMinor { get; init; }

    /// <summary>ISO 4217 code, or a unit such as <c>CRD</c> for credits.</summary>
    public required string Currency { get; init; }

    /// <summary>The request a debit is for; (kind, request id) is unique, so a replayed debit is not charged twice.</summary>
    public string? RequestId { get; init; }

    public string Description { get; init; } = "";
}

public interface ILedgerStore
{
    /// <summary>Appends; returns false (and changes nothing) when an entry of this kind for this request id exists.</summary>
    Task<bool> AppendAsync(LedgerEntry entry, CancellationToken cancellationToken = default);

    Task<long> GetBalanceAsync(string orgId, string currency, CancellationToken cancellationToken = default);

    /// <summary>Entries with <c>from &lt;= occurred_at &lt; to</c>, oldest first.</summary>
    Task<IReadOnlyList<LedgerEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken = default);
}

/// <summary>The text every durable store writes for <see cref="LedgerEntryKind"/> (billing_ledger.kind).</summary>
public static class LedgerStoredNames
{
    public static string Of(LedgerEntryKind kind) => kind switch
    {
        LedgerEntryKind.Grant => "grant",
        LedgerEntryKind.Debit => "debit",
        LedgerEntryKind.Credit => "credit",
        LedgerEntryKind.Adjustment => "adjustment",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown ledger entry kind."),
    };

    public static LedgerEntryKind Parse(string stored) => stored switch
    {
        "grant" => LedgerEntryKind.Grant,
        "debit" => LedgerEntryKind.Debit,
        "credit" => LedgerEntryKind.Credit,
        "adjustment" => LedgerEntryKind.Adjustment,
        _ => throw new InvalidOperationException($"billing_ledger.kind holds an unknown value '{stored}'."),
    };
}
