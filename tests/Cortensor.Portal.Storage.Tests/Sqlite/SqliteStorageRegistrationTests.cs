using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Stores;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Sqlite.Configuration;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Keys;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Cortensor.Portal.Storage.Sqlite.Usage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

public sealed class SqliteStorageRegistrationTests
{
    [Fact]
    public void AddCortensorSqliteStorage_NullArguments_Throw()
    {
        Assert.Throws<ArgumentNullException>(() => ((IServiceCollection)null!).AddCortensorSqliteStorage(_ => { }));
        Assert.Throws<ArgumentNullException>(() => new ServiceCollection().AddCortensorSqliteStorage((Action<SqliteStorageOptions>)null!));
        Assert.Throws<ArgumentNullException>(() => new ServiceCollection().AddCortensorSqliteStorage((Action<SqliteStorageOptions, IServiceProvider>)null!));
    }

    [Fact]
    public async Task AddCortensorSqliteStorage_AfterApiKeys_ReplacesStoresAndAddsReader()
    {
        await using var db = new SqliteTestDatabase();
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorApiKeys();
        services.AddCortensorSqliteStorage(o => o.DatabasePath = db.DatabasePath);
        await using var provider = services.BuildServiceProvider();

        Assert.IsType<SqliteApiKeyStore>(provider.GetRequiredService<IApiKeyStore>());
        Assert.IsType<SqliteUsageStore>(provider.GetRequiredService<IUsageSink>());
        Assert.Same(provider.GetRequiredService<IUsageSink>(), provider.GetRequiredService<IUsageReader>());
        Assert.Single(services, d => d.ServiceType == typeof(IApiKeyStore));
    }

    [Fact]
    public async Task AddCortensorSqliteStorage_BeforeApiKeys_StillWins()
    {
        await using var db = new SqliteTestDatabase();
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorSqliteStorage(o => o.DatabasePath = db.DatabasePath);
        services.AddCortensorApiKeys();
        await using var provider = services.BuildServiceProvider();

        Assert.IsType<SqliteApiKeyStore>(provider.GetRequiredService<IApiKeyStore>());
        Assert.DoesNotContain(services, d => d.ImplementationType == typeof(InMemoryApiKeyStore));
    }

    [Fact]
    public void AddCortensorSqliteStorage_Twice_RegistersEverythingOnce()
    {
        var services = new ServiceCollection();
        services.AddCortensorSqliteStorage(o => o.DatabasePath = "a.db");
        var count = services.Count;

        services.AddCortensorSqliteStorage(o => o.DatabasePath = "b.db");

        // Only the second configure action is new.
        Assert.Equal(count + 1, services.Count);
        Assert.Single(services, d => d.ServiceType == typeof(IHostedService));
        Assert.Single(services, d => d.ServiceType == typeof(IUsageSink));
        Assert.Single(services, d => d.ServiceType == typeof(IUsageReader));
        Assert.Single(services, d => d.ServiceType == typeof(SqliteDatabase));
        using var provider = services.BuildServiceProvider();
        Assert.Equal("b.db", provider.GetRequiredService<IOptions<SqliteStorageOptions>>().Value.DatabasePath);
    }

    [Fact]
    public void Options_Defaults_ApplyMigrationsOnStart()
    {
        Assert.True(new SqliteStorageOptions().ApplyMigrationsOnStart);
        Assert.Null(new SqliteStorageOptions().DatabasePath);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("Data Source=x.db;Cache=Shared")]
    [InlineData(":memory:")]
    public async Task Host_InvalidPath_FailsOptionsValidationOnStart(string? path)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCortensorSqliteStorage(o => o.DatabasePath = path);
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(nameof(SqliteStorageOptions.DatabasePath), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Host_Start_MigratesBeforeOtherHostedServicesStart()
    {
        await using var db = new SqliteTestDatabase();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        // Registered first, so it would start first if migration happened in StartAsync.
        builder.Services.AddSingleton<VersionProbe>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<VersionProbe>());
        builder.Services.AddCortensorSqliteStorage((o, _) => o.DatabasePath = db.DatabasePath);
        using var host = builder.Build();

        await host.StartAsync();
        try
        {
            Assert.Equal(SqliteMigration.LatestVersion, host.Services.GetRequiredService<VersionProbe>().VersionSeenAtStart);
        }
        finally
        {
            await host.StopAsync();
        }
    }

    [Fact]
    public async Task Host_MigrationsOff_UnmigratedDatabase_FailsWithVersionError()
    {
        await using var db = new SqliteTestDatabase();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCortensorSqliteStorage(o =>
        {
            o.DatabasePath = db.DatabasePath;
            o.ApplyMigrationsOnStart = false;
        });
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<SqliteSchemaVersionException>(() => host.StartAsync());
        Assert.Equal(0, ex.DatabaseVersion);
    }

    [Fact]
    public async Task Host_PathUnderAFile_FailsWithStorageError()
    {
        await using var db = new SqliteTestDatabase();
        Directory.CreateDirectory(db.Folder);
        var blocker = Path.Combine(db.Folder, "file");
        await File.WriteAllTextAsync(blocker, "x");
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCortensorSqliteStorage(o => o.DatabasePath = Path.Combine(blocker, "portal.db"));
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<SqliteStorageException>(() => host.StartAsync());
        Assert.Contains(blocker, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Host_LocalKeyProviderOnSqlite_IssuesVerifiesAndRevokesAcrossRestart()
    {
        await using var db = new SqliteTestDatabase();
        string secret;
        string keyId;
        using (var host = BuildKeysHost(db.DatabasePath))
        {
            await host.StartAsync();
            var keys = host.Services.GetRequiredService<IApiKeyProvider>();
            var issued = await keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_a", Name = "first" });
            secret = issued.Secret;
            keyId = issued.Record.KeyId;
            Assert.True((await keys.VerifyAsync(secret)).IsValid);
            await host.StopAsync();
        }

        using (var host = BuildKeysHost(db.DatabasePath))
        {
            await host.StartAsync();
            var keys = host.Services.GetRequiredService<IApiKeyProvider>();
            var verification = await keys.VerifyAsync(secret);
            Assert.True(verification.IsValid);
            Assert.Equal(keyId, verification.Principal!.KeyId);
            Assert.True(await keys.RevokeAsync("org_a", keyId));
            Assert.Equal(ApiKeyVerificationStatus.Revoked, (await keys.VerifyAsync(secret)).Status);
            await host.StopAsync();
        }
    }

    private static IHost BuildKeysHost(string path)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCortensorApiKeys();
        builder.Services.AddCortensorSqliteStorage(o => o.DatabasePath = path);
        return builder.Build();
    }

    private sealed class VersionProbe(SqliteMigrator migrator) : IHostedService
    {
        public int? VersionSeenAtStart { get; private set; }

        public async Task StartAsync(CancellationToken cancellationToken) =>
            VersionSeenAtStart = await migrator.GetSchemaVersionAsync(cancellationToken);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
