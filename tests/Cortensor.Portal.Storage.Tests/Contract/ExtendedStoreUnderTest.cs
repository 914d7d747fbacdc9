using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Accounts.Organizations;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Metering.Ledger;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>
/// The account, plan, policy, audit, ledger and fleet stores of one freshly migrated, empty database, as seen by
/// <see cref="AccountStoreContractTests"/>, <see cref="PlanStoreContractTests"/>,
/// <see cref="ModelAccessPolicyStoreContractTests"/>, <see cref="AuditLogContractTests"/>,
/// <see cref="LedgerStoreContractTests"/> and <see cref="FleetConfigurationStoreContractTests"/>.
/// Disposing it removes the database (SQLite: the temp file; Postgres: the schema).
/// </summary>
/// <remarks>
/// Every store is optional at construction so that a store implementation can bring its interfaces up one at a
/// time; reading a store that was not supplied throws <see cref="InvalidOperationException"/> (the test fails
/// with a message naming it).
/// </remarks>
public sealed class ExtendedStoreUnderTest : IAsyncDisposable
{
    private readonly IAccountStore? _accounts;
    private readonly IPlanStore? _plans;
    private readonly IModelAccessPolicyStore? _policies;
    private readonly IAuditLog? _audit;
    private readonly ILedgerStore? _ledger;
    private readonly IFleetConfigurationStore? _fleet;
    private int _disposed;

    public IAccountStore Accounts { get => _accounts ?? throw NotSupplied(nameof(Accounts)); init => _accounts = value; }

    public IPlanStore Plans { get => _plans ?? throw NotSupplied(nameof(Plans)); init => _plans = value; }

    public IModelAccessPolicyStore Policies { get => _policies ?? throw NotSupplied(nameof(Policies)); init => _policies = value; }

    public IAuditLog Audit { get => _audit ?? throw NotSupplied(nameof(Audit)); init => _audit = value; }

    public ILedgerStore Ledger { get => _ledger ?? throw NotSupplied(nameof(Ledger)); init => _ledger = value; }

    public IFleetConfigurationStore Fleet { get => _fleet ?? throw NotSupplied(nameof(Fleet)); init => _fleet = value; }

    /// <summary>Removes the database; called once by <see cref="DisposeAsync"/>.</summary>
    public Func<ValueTask>? CleanupAsync { get; init; }

    public ValueTask DisposeAsync() =>
        Interlocked.Exchange(ref _disposed, 1) == 0 && CleanupAsync is { } cleanup ? cleanup() : ValueTask.CompletedTask;

    private static InvalidOperationException NotSupplied(string name) =>
        new($"The store under test did not supply {name}.");
}
