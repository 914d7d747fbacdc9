using System.CommandLine;
using Cortensor.Portal.Storage.Postgres.Configuration;

namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>Which store <c>migrate</c> works on.</summary>
internal enum MigrateStore
{
    Postgres,
    Sqlite,
}

/// <summary>The database <c>migrate</c> works on and where that choice came from.</summary>
/// <param name="Store">Postgres or SQLite.</param>
/// <param name="Value">The Npgsql connection string, or the SQLite file path.</param>
/// <param name="Schema">The Postgres schema (unused for SQLite).</param>
/// <param name="Source">The option or environment variable that named the database, shown in the output.</param>
internal sealed record MigrateTarget(MigrateStore Store, string Value, string Schema, string Source)
{
    /// <summary>The CLI's own variable for the Postgres connection string.</summary>
    public const string PortalPostgresVariable = "PORTAL_POSTGRES";

    /// <summary>The host's <c>ConnectionStrings:Portal</c> as an environment variable: set means Postgres, as in the host.</summary>
    public const string HostConnectionStringVariable = "ConnectionStrings__Portal";

    /// <summary>The host's <c>Cortensor:Storage:Postgres:Schema</c>.</summary>
    public const string HostSchemaVariable = "Cortensor__Storage__Postgres__Schema";

    /// <summary>The host's <c>Cortensor:Storage:DataDirectory</c>: the SQLite file is <c>portal.db</c> in it.</summary>
    public const string HostDataDirectoryVariable = "Cortensor__Storage__DataDirectory";

    /// <summary>The file name the host gives its SQLite database inside the data directory.</summary>
    public const string HostSqliteFileName = "portal.db";

    /// <summary>
    /// Picks the database the way the host does, with explicit options first: <c>--postgres</c> or <c>--sqlite</c>,
    /// then <c>PORTAL_POSTGRES</c>, then <c>ConnectionStrings__Portal</c> (Postgres), then
    /// <c>Cortensor__Storage__DataDirectory</c> (SQLite). Returns <see langword="null"/> when nothing names one.
    /// </summary>
    public static MigrateTarget? Resolve(MigrateCommandDefinition definition, ParseResult parseResult, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(definition);
        ArgumentNullException.ThrowIfNull(parseResult);
        ArgumentNullException.ThrowIfNull(environment);

        var schema = FirstSet(
            (parseResult.GetValue(definition.Schema), "--schema"),
            (environment(HostSchemaVariable), HostSchemaVariable)).Value ?? PostgresStorageOptions.DefaultSchema;

        if (parseResult.GetValue(definition.Postgres) is { } postgres && !string.IsNullOrWhiteSpace(postgres))
        {
            return new MigrateTarget(MigrateStore.Postgres, postgres, schema, "--postgres");
        }

        if (parseResult.GetValue(definition.Sqlite) is { } sqlite && !string.IsNullOrWhiteSpace(sqlite))
        {
            return new MigrateTarget(MigrateStore.Sqlite, sqlite, schema, "--sqlite");
        }

        var fromEnvironment = FirstSet(
            (environment(PortalPostgresVariable), PortalPostgresVariable),
            (environment(HostConnectionStringVariable), HostConnectionStringVariable));
        if (fromEnvironment.Value is not null)
        {
            return new MigrateTarget(MigrateStore.Postgres, fromEnvironment.Value, schema, fromEnvironment.Source);
        }

        var dataDirectory = environment(HostDataDirectoryVariable);
        return string.IsNullOrWhiteSpace(dataDirectory)
            ? null
            : new MigrateTarget(MigrateStore.Sqlite, Path.Combine(dataDirectory, HostSqliteFileName), schema, HostDataDirectoryVariable);
    }

    private static (string? Value, string Source) FirstSet(params (string? Value, string Source)[] candidates)
    {
        foreach (var candidate in candidates)
        {
            if (!string.IsNullOrWhiteSpace(candidate.Value))
            {
                return candidate;
            }
        }

        return (null, string.Empty);
    }
}
