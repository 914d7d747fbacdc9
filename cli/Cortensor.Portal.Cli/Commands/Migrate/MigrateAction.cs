using System.CommandLine;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>Runs the store's own migrator; exit 0 on success, 2 when the database cannot be migrated.</summary>
internal sealed class MigrateAction(MigrateCommandDefinition definition, ParseResult parseResult)
{
    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var output = parseResult.InvocationConfiguration.Output;
        var error = parseResult.InvocationConfiguration.Error;
        var statusOnly = parseResult.GetValue(definition.Status);
        try
        {
            var postgres = parseResult.GetValue(definition.Postgres);
            if (!string.IsNullOrWhiteSpace(postgres))
            {
                var options = Options.Create(new PostgresStorageOptions { ConnectionString = postgres, Schema = parseResult.GetRequiredValue(definition.Schema) });
                await using var dataSource = PostgresDataSourceFactory.Create(options.Value);
                var migrator = new PostgresMigrator(dataSource, options, TimeProvider.System);
                if (statusOnly)
                {
                    await output.WriteLineAsync($"postgres schema '{options.Value.Schema}': version {await migrator.GetSchemaVersionAsync(cancellationToken)}, latest {PostgresMigrator.LatestVersion}");
                    return 0;
                }

                var result = await migrator.MigrateAsync(cancellationToken);
                await output.WriteLineAsync($"postgres schema '{options.Value.Schema}': version {result.PreviousVersion} -> {result.CurrentVersion}"
                    + (result.Applied.Count == 0 ? " (up to date)" : $" (applied {string.Join(", ", result.Applied)})"));
                return 0;
            }

            var database = new SqliteDatabase(parseResult.GetValue(definition.Sqlite)!);
            var sqlite = new SqliteMigrator(database);
            var before = await sqlite.GetSchemaVersionAsync(cancellationToken);
            if (!statusOnly)
            {
                await sqlite.MigrateAsync(cancellationToken);
            }

            var after = await sqlite.GetSchemaVersionAsync(cancellationToken);
            await output.WriteLineAsync(statusOnly
                ? $"sqlite '{database.DatabasePath}': version {before}, latest {sqlite.LatestVersion}"
                : $"sqlite '{database.DatabasePath}': version {before} -> {after}" + (before == after ? " (up to date)" : ""));
            return 0;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IOException or SqliteStorageException)
        {
            // Store exceptions say what to fix and never carry the password.
            await error.WriteLineAsync("migrate failed: " + ex.Message);
            return 2;
        }
    }
}
