using Cortensor.Portal.Storage.Postgres.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Cortensor.Portal.Storage.Postgres;

/// <summary>Builds the one <see cref="NpgsqlDataSource"/> the store uses.</summary>
/// <remarks>
/// The data source is safe behind a transaction-mode pooler (Supabase Supavisor on port 6543, PgBouncer):
/// automatic preparation is forced off (<c>Max Auto Prepare=0</c>) and the store never calls <c>Prepare</c>;
/// <c>No Reset On Close=true</c> because the store leaves no session state to reset (temporary tables are
/// <c>ON COMMIT DROP</c>, locks are transaction-scoped, no <c>SET</c>/<c>LISTEN</c>); every name is
/// schema-qualified, so <c>Search Path</c> does not matter.
/// </remarks>
public static class PostgresDataSourceFactory
{
    /// <summary>The <c>Application Name</c> used when the connection string sets none.</summary>
    public const string DefaultApplicationName = "cortensor-portal";

    /// <summary>Builds a data source from <see cref="PostgresStorageOptions.ConnectionString"/>.</summary>
    /// <exception cref="PostgresStorageException">The connection string is missing or cannot be parsed (the message never contains it).</exception>
    public static NpgsqlDataSource Create(PostgresStorageOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var connectionString = options.ConnectionString;
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new PostgresStorageException(
                PostgresStorageError.InvalidConnectionString,
                $"{nameof(PostgresStorageOptions)}.{nameof(PostgresStorageOptions.ConnectionString)} is required (Host=…;Port=…;Database=…;Username=…;Password=…).");
        }

        NpgsqlDataSourceBuilder builder;
        try
        {
            builder = new NpgsqlDataSourceBuilder(connectionString);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidCastException)
        {
            // Keep the inner exception out: some parse errors quote the offending value.
            throw new PostgresStorageException(
                PostgresStorageError.InvalidConnectionString,
                "The Postgres connection string cannot be parsed. Use the key=value form (Host=…;Port=…;Database=…;Username=…;Password=…); a postgresql:// URI must be converted first (see the Cortensor.Portal.Storage.Postgres README).");
        }

        var csb = builder.ConnectionStringBuilder;
        csb.MaxAutoPrepare = 0;
        csb.NoResetOnClose = true;
        if (string.IsNullOrEmpty(csb.ApplicationName))
        {
            csb.ApplicationName = DefaultApplicationName;
        }

        if (loggerFactory is not null)
        {
            builder.UseLoggerFactory(loggerFactory);
        }

        return builder.Build();
    }
}
