using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Stores;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Keys;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Postgres.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Cortensor.Portal.Storage.Tests.Postgres;

public sealed class PostgresRegistrationTests
{
    private const string AnyConnection = "Host=127.0.0.1;Port=5432;Username=postgres;Database=postgres";

    [Fact]
    public void AddCortensorPostgresStorage_ReplacesKeyStoreAndSink_AddsReader()
    {
        var services = new ServiceCollection();
        services.AddSingleton<IApiKeyStore, InMemoryApiKeyStore>();
        services.AddSingleton<IUsageSink, NullSink>();

        services.AddCortensorPostgresStorage(o => o.ConnectionString = AnyConnection);
        using var provider = services.BuildServiceProvider();

        Assert.IsType<PostgresApiKeyStore>(provider.GetRequiredService<IApiKeyStore>());
        var sink = Assert.IsType<PostgresUsageStore>(provider.GetRequiredService<IUsageSink>());
        Assert.Same(sink, provider.GetRequiredService<IUsageReader>());
        Assert.Single(services, d => d.ServiceType == typeof(IApiKeyStore));
        Assert.Single(services, d => d.ServiceType == typeof(IUsageSink));
        Assert.NotNull(provider.GetRequiredKeyedService<NpgsqlDataSource>(PostgresStorageServiceKeys.DataSource));
        Assert.Null(provider.GetService<NpgsqlDataSource>());
        Assert.IsAssignableFrom<IHostedLifecycleService>(Assert.Single(provider.GetServices<IHostedService>()));
    }

    [Fact]
    public void AddCortensorPostgresStorage_Twice_RegistersNothingTwice()
    {
        var once = new ServiceCollection();
        once.AddCortensorPostgresStorage(o => o.ConnectionString = AnyConnection);
        var twice = new ServiceCollection();
        twice.AddCortensorPostgresStorage(o => o.ConnectionString = AnyConnection);
        twice.AddCortensorPostgresStorage((o, _) => o.Schema = "other");

        Assert.Equal(once.Count + 1, twice.Count); // only the second configure action is new
        using var provider = twice.BuildServiceProvider();
        Assert.Single(provider.GetServices<IHostedService>());
        Assert.Single(provider.GetServices<IApiKeyStore>());
        Assert.Single(provider.GetServices<IUsageSink>());
        Assert.Single(provider.GetServices<IUsageReader>());
        Assert.Single(provider.GetServices<IValidateOptions<PostgresStorageOptions>>());
        Assert.Equal("other", provider.GetRequiredService<IOptions<PostgresStorageOptions>>().Value.Schema);
    }

    [Fact]
    public void AddCortensorPostgresStorage_NullArguments_Throw()
    {
        Assert.Throws<ArgumentNullException>(() => ((IServiceCollection)null!).AddCortensorPostgresStorage(_ => { }));
        Assert.Throws<ArgumentNullException>(() => new ServiceCollection().AddCortensorPostgresStorage((Action<PostgresStorageOptions>)null!));
        Assert.Throws<ArgumentNullException>(() => new ServiceCollection().AddCortensorPostgresStorage((Action<PostgresStorageOptions, IServiceProvider>)null!));
    }

    [Theory]
    [InlineData(null, "portal", 13, 2, "ConnectionString")]
    [InlineData("postgresql://postgres:pw@db.example.supabase.co:5432/postgres", "portal", 13, 2, "postgresql://")]
    [InlineData(AnyConnection, "Portal", 13, 2, "Schema")]
    [InlineData(AnyConnection, "bad-name", 13, 2, "Schema")]
    [InlineData(AnyConnection, "pg_portal", 13, 2, "Schema")]
    [InlineData(AnyConnection, "1portal", 13, 2, "Schema")]
    [InlineData(AnyConnection, "x\"; DROP SCHEMA public; --", 13, 2, "Schema")]
    [InlineData(AnyConnection, "portal", -1, 2, "UsageRetentionMonths")]
    [InlineData(AnyConnection, "portal", 13, -1, "PartitionMonthsAhead")]
    [InlineData(AnyConnection, "portal", 13, 25, "PartitionMonthsAhead")]
    [InlineData(AnyConnection, "portal", 13, 2, "UsageWriteConnections", 0)]
    [InlineData(AnyConnection, "portal", 13, 2, "UsageWriteConnections", 9)]
    public void Validator_BadOptions_FailNamingTheSetting(string? connection, string schema, int retention, int ahead, string expected, int writeConnections = 2)
    {
        var result = new PostgresStorageOptionsValidator().Validate(null, new PostgresStorageOptions
        {
            ConnectionString = connection,
            Schema = schema,
            UsageRetentionMonths = retention,
            PartitionMonthsAhead = ahead,
            UsageWriteConnections = writeConnections,
        });

        Assert.True(result.Failed);
        Assert.Contains(expected, result.FailureMessage, StringComparison.Ordinal);
        Assert.DoesNotContain(":pw@", result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("portal")]
    [InlineData("_p")]
    [InlineData("t_0123abcd")]
    public void Validator_GoodOptions_Pass(string schema)
    {
        var result = new PostgresStorageOptionsValidator().Validate(null, new PostgresStorageOptions { ConnectionString = AnyConnection, Schema = schema });

        Assert.True(result.Succeeded);
    }

    [Fact]
    public void Options_Defaults()
    {
        var options = new PostgresStorageOptions();

        Assert.Null(options.ConnectionString);
        Assert.Equal("portal", options.Schema);
        Assert.True(options.ApplyMigrationsOnStart);
        Assert.Equal(13, options.UsageRetentionMonths);
        Assert.Equal(2, options.PartitionMonthsAhead);
        Assert.Equal(2, options.UsageWriteConnections);
    }

    [Fact]
    public async Task Host_MissingConnectionString_FailsAtStart()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddCortensorPostgresStorage(_ => { });
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains("ConnectionString", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Host_Start_MigratesInStartingBeforeOtherHostedServicesStart()
    {
        var schema = PostgresTestDatabase.NewSchemaName();
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<VersionProbe>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<VersionProbe>());
        builder.Services.AddCortensorPostgresStorage(o =>
        {
            o.ConnectionString = PostgresTestDatabase.RequireConnectionString();
            o.Schema = schema;
        });
        using var host = builder.Build();
        try
        {
            await host.StartAsync();

            var probe = host.Services.GetRequiredService<VersionProbe>();
            Assert.Equal(PostgresMigrator.LatestVersion, probe.VersionSeenAtStart);
            var keys = host.Services.GetRequiredService<IApiKeyStore>();
            await keys.AddAsync(PostgresTestData.NewKey("org_a", "key_1"));
            Assert.Single(await keys.ListAsync("org_a"));
            var now = TimeProvider.System.GetUtcNow();
            var partition = PostgresPartitionMaintenance.PartitionName("requests", now.Year, now.Month);
            var dataSource = host.Services.GetRequiredKeyedService<NpgsqlDataSource>(PostgresStorageServiceKeys.DataSource);
            await using var exists = dataSource.CreateCommand($"SELECT to_regclass('\"{schema}\".\"{partition}\"') IS NOT NULL");
            Assert.Equal(true, await exists.ExecuteScalarAsync());

            await host.StopAsync();
        }
        finally
        {
            var dataSource = host.Services.GetRequiredKeyedService<NpgsqlDataSource>(PostgresStorageServiceKeys.DataSource);
            await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            await drop.ExecuteNonQueryAsync();
        }
    }

    [Fact]
    public async Task Host_MissingDatabase_FailsAtStartWithClearError()
    {
        var connection = new NpgsqlConnectionStringBuilder(PostgresTestDatabase.RequireConnectionString())
        {
            Database = "missing_" + Guid.NewGuid().ToString("N")[..8],
        };
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddCortensorPostgresStorage(o => o.ConnectionString = connection.ConnectionString);
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<PostgresStorageException>(() => host.StartAsync());
        Assert.Equal(PostgresStorageError.DatabaseMissing, ex.Error);
    }

    [Fact]
    public async Task Host_ApplyMigrationsOff_EmptySchema_FailsWithSchemaOutdated()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddCortensorPostgresStorage(o =>
        {
            o.ConnectionString = PostgresTestDatabase.RequireConnectionString();
            o.Schema = PostgresTestDatabase.NewSchemaName();
            o.ApplyMigrationsOnStart = false;
        });
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<PostgresStorageException>(() => host.StartAsync());
        Assert.Equal(PostgresStorageError.SchemaOutdated, ex.Error);
    }

    [Fact]
    public async Task Host_MaintenanceTimer_IsDailyOnTheInjectedTimeProvider_AndCreatesNewMonths()
    {
        var schema = PostgresTestDatabase.NewSchemaName();
        var clock = new CapturingTimeProvider(new DateTimeOffset(2026, 1, 20, 0, 0, 0, TimeSpan.Zero));
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton<TimeProvider>(clock);
        builder.Services.AddCortensorPostgresStorage(o =>
        {
            o.ConnectionString = PostgresTestDatabase.RequireConnectionString();
            o.Schema = schema;
            o.PartitionMonthsAhead = 0;
        });
        using var host = builder.Build();
        var dataSource = host.Services.GetRequiredKeyedService<NpgsqlDataSource>(PostgresStorageServiceKeys.DataSource);
        try
        {
            await host.StartAsync();
            Assert.True(await ExistsAsync(dataSource, schema, "requests_p202601"));
            Assert.False(await ExistsAsync(dataSource, schema, "requests_p202602"));
            var (callback, state, period) = Assert.Single(clock.Timers);
            Assert.Equal(TimeSpan.FromDays(1), period);

            clock.Now = new DateTimeOffset(2026, 2, 1, 0, 30, 0, TimeSpan.Zero);
            callback(state);
            var hosted = (Cortensor.Portal.Storage.Postgres.Hosting.PostgresStorageHostedService)Assert.Single(host.Services.GetServices<IHostedService>());
            await hosted.RunMaintenanceOnceAsync();

            Assert.True(await ExistsAsync(dataSource, schema, "requests_p202602"));
            await host.StopAsync();
        }
        finally
        {
            await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            await drop.ExecuteNonQueryAsync();
        }
    }

    private static async Task<bool> ExistsAsync(NpgsqlDataSource dataSource, string schema, string table)
    {
        await using var command = dataSource.CreateCommand($"SELECT to_regclass('\"{schema}\".\"{table}\"') IS NOT NULL");
        return await command.ExecuteScalarAsync() is true;
    }

    /// <summary>A clock set by hand that records the timers created on it instead of running them.</summary>
    private sealed class CapturingTimeProvider(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public List<(TimerCallback Callback, object? State, TimeSpan Period)> Timers { get; } = [];

        public override DateTimeOffset GetUtcNow() => Now;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Timers.Add((callback, state, period));
            return new InertTimer();
        }

        private sealed class InertTimer : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period) => true;

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }

    private sealed class NullSink : IUsageSink
    {
        public Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken) => Task.CompletedTask;
    }

    /// <summary>A hosted service that reads the schema version in its StartAsync.</summary>
    private sealed class VersionProbe(PostgresMigrator migrator) : IHostedService
    {
        public int VersionSeenAtStart { get; private set; } = -1;

        public async Task StartAsync(CancellationToken cancellationToken) => VersionSeenAtStart = await migrator.GetSchemaVersionAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
