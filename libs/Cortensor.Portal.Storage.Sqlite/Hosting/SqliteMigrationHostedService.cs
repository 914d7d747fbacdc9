using Cortensor.Portal.Storage.Sqlite.Configuration;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Sqlite.Hosting;

/// <summary>
/// Migrates the SQLite database in <see cref="IHostedLifecycleService.StartingAsync"/>, which the host runs
/// before any hosted service's <see cref="IHostedService.StartAsync"/>, so nothing touches the store before
/// its schema is current. With <see cref="SqliteStorageOptions.ApplyMigrationsOnStart"/> off it only checks
/// the version. A failure stops the host with the migrator's exception.
/// </summary>
internal sealed class SqliteMigrationHostedService : IHostedLifecycleService
{
    private readonly SqliteMigrator _migrator;
    private readonly IOptions<SqliteStorageOptions> _options;

    public SqliteMigrationHostedService(SqliteMigrator migrator, IOptions<SqliteStorageOptions> options)
    {
        _migrator = migrator;
        _options = options;
    }

    public Task StartingAsync(CancellationToken cancellationToken) =>
        _options.Value.ApplyMigrationsOnStart
            ? _migrator.MigrateAsync(cancellationToken)
            : _migrator.EnsureCurrentAsync(cancellationToken);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
