using Cortensor.Portal.Accounts.Audit;
using Cortensor.Portal.Accounts.Organizations;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Metering.Ledger;
using Cortensor.Portal.Storage.Postgres.Accounts;
using Cortensor.Portal.Storage.Postgres.Fleet;
using Cortensor.Portal.Storage.Postgres.Ledger;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Storage.Tests.Postgres;

public sealed class PostgresAccountStoreRegistrationTests
{
    private const string AnyConnection = "Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres";

    [Fact]
    public void AddCortensorPostgresStorage_RegistersEveryAccountAndFleetStoreOnce_EvenWhenCalledTwice()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IAuditLog, NoAudit>(); // an earlier registration is replaced
        services.AddCortensorPostgresStorage(o => o.ConnectionString = AnyConnection);
        services.AddCortensorPostgresStorage(o => o.Schema = "other");
        using var provider = services.BuildServiceProvider();

        Assert.IsType<PostgresAccountStore>(provider.GetRequiredService<IAccountStore>());
        Assert.IsType<PostgresPlanStore>(provider.GetRequiredService<IPlanStore>());
        Assert.IsType<PostgresModelAccessPolicyStore>(provider.GetRequiredService<IModelAccessPolicyStore>());
        Assert.IsType<PostgresAuditLog>(provider.GetRequiredService<IAuditLog>());
        Assert.IsType<PostgresLedgerStore>(provider.GetRequiredService<ILedgerStore>());
        Assert.IsType<PostgresFleetConfigurationStore>(provider.GetRequiredService<IFleetConfigurationStore>());
        Assert.Same(provider.GetRequiredService<PostgresLedgerStore>(), provider.GetRequiredService<ILedgerStore>());
        foreach (var type in new[] { typeof(IAccountStore), typeof(IPlanStore), typeof(IModelAccessPolicyStore), typeof(IAuditLog), typeof(ILedgerStore), typeof(IFleetConfigurationStore) })
        {
            Assert.Single(services, d => d.ServiceType == type);
        }
    }

    private sealed class NoAudit : IAuditLog
    {
        public Task AppendAsync(AuditEntry entry, CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task<IReadOnlyList<AuditEntry>> ListAsync(string orgId, DateTimeOffset from, DateTimeOffset to, int limit = 100, CancellationToken cancellationToken = default) =>
            Task.FromResult<IReadOnlyList<AuditEntry>>([]);
    }
}
