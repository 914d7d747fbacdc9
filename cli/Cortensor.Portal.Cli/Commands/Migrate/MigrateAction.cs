using System.CommandLine;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>
/// Runs the store's own migrator (or only reads its version, for --status and --check) and turns every outcome
/// into one line and an exit code from <see cref="MigrateExitCodes"/>.
/// </summary>
internal sealed class MigrateAction(MigrateCommandDefinition definition, ParseResult parseResult, Func<string, string?> environment)
{
    private readonly TextWriter _output = parseResult.InvocationConfiguration.Output;
    private readonly TextWriter _error = parseResult.InvocationConfiguration.Error;
    private readonly ConnectionStringSecrets _secrets = new();

    private enum Mode
    {
        Apply,
        Status,
        Check,
    }

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        // Everything that may hold a password, whichever of them ends up used.
        _secrets.Add(parseResult.GetValue(definition.Postgres));
        _secrets.Add(parseResult.GetValue(definition.Sqlite));
        _secrets.Add(environment(MigrateTarget.PortalPostgresVariable));
        _secrets.Add(environment(MigrateTarget.HostConnectionStringVariable));

        var target = MigrateTarget.Resolve(definition, parseResult, environment);
        if (target is null)
        {
            return await UsageErrorAsync(
                $"no database given. Use --postgres or --sqlite, or set {MigrateTarget.PortalPostgresVariable} or {MigrateTarget.HostConnectionStringVariable} (see --help).");
        }

        var mode = parseResult.GetValue(definition.Check) ? Mode.Check
            : parseResult.GetValue(definition.Status) ? Mode.Status
            : Mode.Apply;
        try
        {
            return target.Store == MigrateStore.Postgres
                ? await RunPostgresAsync(target, mode, cancellationToken)
                : await RunSqliteAsync(target, mode, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            // Any failure is one line without secrets; the stack trace only on request.
            return await FailAsync(ex);
        }
    }

    private async Task<int> RunPostgresAsync(MigrateTarget target, Mode mode, CancellationToken cancellationToken)
    {
        var options = Options.Create(new PostgresStorageOptions { ConnectionString = target.Value, Schema = target.Schema });
        NpgsqlDataSource dataSource;
        try
        {
            dataSource = PostgresDataSourceFactory.Create(options.Value);
        }
        catch (PostgresStorageException ex) when (ex.Error == PostgresStorageError.InvalidConnectionString)
        {
            return await UsageErrorAsync($"{ex.Message} (from {target.Source})");
        }

        await using (dataSource)
        {
            PostgresMigrator migrator;
            try
            {
                migrator = new PostgresMigrator(dataSource, options, TimeProvider.System);
            }
            catch (ArgumentException ex)
            {
                return await UsageErrorAsync($"invalid schema '{target.Schema}': {ex.Message}");
            }

            var label = $"postgres {DescribePostgres(dataSource.ConnectionString)} schema '{migrator.Schema}'{FromSuffix(target)}";
            if (mode == Mode.Apply)
            {
                PostgresMigrationResult result;
                try
                {
                    result = await migrator.MigrateAsync(cancellationToken);
                }
                catch (PostgresStorageException ex) when (ex.Error == PostgresStorageError.SchemaNewerThanCode)
                {
                    await WriteErrorAsync("migrate failed: " + OneLine(ex.Message));
                    return MigrateExitCodes.Newer;
                }

                await WriteOutputAsync($"{label}: version {result.PreviousVersion} -> {result.CurrentVersion}"
                    + (result.Applied.Count == 0 ? " (up to date)" : $" (applied {string.Join(", ", result.Applied)})"));
                return MigrateExitCodes.Ok;
            }

            // Reads only: a missing schema is version 0 and is not created; a missing database is an error.
            var version = await migrator.GetSchemaVersionAsync(cancellationToken);
            return await ReportAsync(label, version, migrator.TargetVersion, mode);
        }
    }

    private async Task<int> RunSqliteAsync(MigrateTarget target, Mode mode, CancellationToken cancellationToken)
    {
        SqliteDatabase database;
        try
        {
            database = new SqliteDatabase(target.Value);
        }
        catch (ArgumentException ex)
        {
            return await UsageErrorAsync(ex.Message);
        }

        var label = $"sqlite '{database.DatabasePath}'{FromSuffix(target)}";
        var migrator = new SqliteMigrator(database);
        try
        {
            if (mode != Mode.Apply)
            {
                // Opening would create the file (and its folder): a mistyped path must fail, not leave an empty database.
                if (!File.Exists(database.DatabasePath))
                {
                    await WriteErrorAsync(
                        $"migrate failed: there is no SQLite database at '{database.DatabasePath}'{FromSuffix(target)}; nothing was created. Check the path (migrate without --status or --check creates a new database).");
                    return MigrateExitCodes.DatabaseError;
                }

                return await ReportAsync(label, await migrator.GetSchemaVersionAsync(cancellationToken), migrator.LatestVersion, mode);
            }

            var before = await migrator.GetSchemaVersionAsync(cancellationToken);
            try
            {
                await migrator.MigrateAsync(cancellationToken);
            }
            catch (SqliteSchemaVersionException ex) when (ex.DatabaseVersion > ex.CodeVersion)
            {
                await WriteErrorAsync("migrate failed: " + OneLine(ex.Message));
                return MigrateExitCodes.Newer;
            }

            var after = await migrator.GetSchemaVersionAsync(cancellationToken);
            await WriteOutputAsync($"{label}: version {before} -> {after}" + (before == after ? " (up to date)" : ""));
            return MigrateExitCodes.Ok;
        }
        finally
        {
            // Close the pooled connections so the WAL is checkpointed and no file handle outlives the command.
            SqliteConnection.ClearAllPools();
        }
    }

    private async Task<int> ReportAsync(string label, int version, int latest, Mode mode)
    {
        var state = version == latest ? string.Empty
            : version < latest ? $" ({latest - version} pending)"
            : " (newer than this version)";
        await WriteOutputAsync($"{label}: version {version}, latest {latest}{state}");
        if (version > latest)
        {
            await WriteErrorAsync(
                $"migrate failed: the database is at schema version {version}, newer than version {latest}, the highest this version of Cortensor Portal knows. Run the newer release, or restore a backup taken before the upgrade.");
            return MigrateExitCodes.Newer;
        }

        if (version < latest && mode == Mode.Check)
        {
            await WriteErrorAsync($"migrate --check: {latest - version} migration(s) pending; run 'cortensor-portal migrate' with the same database to apply them.");
            return MigrateExitCodes.Behind;
        }

        return MigrateExitCodes.Ok;
    }

    private async Task<int> UsageErrorAsync(string message)
    {
        await WriteErrorAsync("migrate: " + OneLine(message));
        return MigrateExitCodes.UsageError;
    }

    private async Task<int> FailAsync(Exception exception)
    {
        // The stores' own exceptions say what to fix; anything else is named by its type so it can be searched for.
        var known = exception is PostgresStorageException or SqliteStorageException;
        var message = known ? exception.Message : $"{exception.GetType().Name}: {exception.Message}";
        var verbose = parseResult.GetValue(definition.Verbose);
        await WriteErrorAsync("migrate failed: " + OneLine(message) + (verbose || known ? string.Empty : " (--verbose shows details)"));
        if (verbose)
        {
            await WriteErrorAsync(exception.ToString());
        }

        return MigrateExitCodes.DatabaseError;
    }

    // Every line migrate prints goes through these two, so none can skip the masking (paths, driver messages and labels
    // all come from input that may hold a password).
    private Task WriteOutputAsync(string line) => _output.WriteLineAsync(_secrets.Apply(line));

    private Task WriteErrorAsync(string line) => _error.WriteLineAsync(_secrets.Apply(line));

    private static string FromSuffix(MigrateTarget target) =>
        target.Source.StartsWith("--", StringComparison.Ordinal) ? string.Empty : $" (from {target.Source})";

    /// <summary><c>host:port/database</c>; reads only those keys, never the password.</summary>
    private static string DescribePostgres(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        return $"{builder.Host ?? "localhost"}:{builder.Port}/{builder.Database ?? builder.Username ?? "(default)"}";
    }

    private static string OneLine(string text) =>
        text.ReplaceLineEndings(" ").Trim();
}
