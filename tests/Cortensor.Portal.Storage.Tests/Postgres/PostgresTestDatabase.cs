using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Keys;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Postgres.Usage;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cortensor.Portal.Storage.Tests.Postgres;

/// <summary>
/// A fresh schema <c>t_&lt;guid8&gt;</c> on the server named by the <c>PG_CONNECTION</c> environment variable,
/// or on a throwaway local server when it is unset (<see cref="LocalPostgresServer"/>); dropped on dispose.
/// </summary>
public sealed class PostgresTestDatabase : IAsyncDisposable
{
    public const string ConnectionVariable = "PG_CONNECTION";

    private PostgresTestDatabase(string connectionString, string schema, TimeProvider timeProvider)
    {
        ConnectionString = connectionString;
        Schema = schema;
        TimeProvider = timeProvider;
        Options = Microsoft.Extensions.Options.Options.Create(new PostgresStorageOptions
        {
            ConnectionString = connectionString,
            Schema = schema,
        });
        DataSource = PostgresDataSourceFactory.Create(Options.Value);
    }

    public string ConnectionString { get; }

    public string Schema { get; }

    public TimeProvider TimeProvider { get; }

    public IOptions<PostgresStorageOptions> Options { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary>The server's connection string: <c>PG_CONNECTION</c>, else a throwaway local server.</summary>
    public static string RequireConnectionString()
    {
        var value = Environment.GetEnvironmentVariable(ConnectionVariable);
        return string.IsNullOrWhiteSpace(value) ? LocalPostgresServer.ConnectionString : value;
    }

    public static string NewSchemaName() => "t_" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>A new schema; migrated and partitioned unless <paramref name="migrate"/> is false.</summary>
    public static async Task<PostgresTestDatabase> CreateAsync(bool migrate = true, TimeProvider? timeProvider = null)
    {
        var database = new PostgresTestDatabase(RequireConnectionString(), NewSchemaName(), timeProvider ?? TimeProvider.System);
        if (migrate)
        {
            await database.CreateMigrator().MigrateAsync();
            await database.CreateMaintenance().MaintainPartitionsAsync();
        }

        return database;
    }

    public PostgresMigrator CreateMigrator() => new(DataSource, Options, TimeProvider);

    public PostgresPartitionMaintenance CreateMaintenance(int? retentionMonths = null, int? monthsAhead = null, TimeProvider? timeProvider = null)
    {
        var options = new PostgresStorageOptions
        {
            ConnectionString = ConnectionString,
            Schema = Schema,
            UsageRetentionMonths = retentionMonths ?? Options.Value.UsageRetentionMonths,
            PartitionMonthsAhead = monthsAhead ?? Options.Value.PartitionMonthsAhead,
        };
        return new PostgresPartitionMaintenance(DataSource, Microsoft.Extensions.Options.Options.Create(options), timeProvider ?? TimeProvider);
    }

    public PostgresApiKeyStore CreateKeyStore() => new(DataSource, Options);

    public PostgresUsageStore CreateUsageStore() => new(DataSource, Options, TimeProvider);

    /// <summary><c>"schema".table</c>.</summary>
    public string Table(string table) => $"\"{Schema}\".\"{table}\"";

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        var value = await command.ExecuteScalarAsync();
        return (T)Convert.ChangeType(value!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await command.ExecuteNonQueryAsync();
    }

    public async Task<List<string>> ColumnAsync(string sql)
    {
        await using var command = DataSource.CreateCommand(sql);
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<string>();
        while (await reader.ReadAsync())
        {
            values.Add(reader.GetString(0));
        }

        return values;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await ExecuteAsync($"DROP SCHEMA IF EXISTS \"{Schema}\" CASCADE");
        }
        finally
        {
            await DataSource.DisposeAsync();
        }
    }
}

/// <summary>A clock the test sets by hand.</summary>
public sealed class ManualTimeProvider(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public override DateTimeOffset GetUtcNow() => Now;
}
