using System.Net;
using System.Text;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Storage.Tests.Postgres;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>The host on Postgres (ConnectionStrings:Portal): keys and usage survive a restart.</summary>
public sealed class HostStorageTests : IAsyncLifetime
{
    private readonly string _schema = "e2e_" + Guid.NewGuid().ToString("N")[..8];
    private string _connectionString = null!;

    public Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable("PG_CONNECTION");
        _connectionString = string.IsNullOrWhiteSpace(configured) ? LocalPostgresServer.ConnectionString : configured;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await using var dataSource = NpgsqlDataSource.Create(_connectionString);
        await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE");
        await drop.ExecuteNonQueryAsync();
    }

    private sealed class PostgresPortal(string connectionString, string schema, StringWriter output) : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Production");
            builder.UseSetting("ConnectionStrings:Portal", connectionString);
            builder.UseSetting("Cortensor:Fleet:UseSimulatedRouters", "true");
            builder.UseSetting("Cortensor:DevelopmentKey:Enabled", "true"); // the key this test follows across a restart
            builder.UseSetting("Cortensor:Storage:Postgres:Schema", schema);
            builder.UseSetting("Cortensor:Storage:DataDirectory", Path.Combine(Path.GetTempPath(), "cportal-" + schema));
            builder.ConfigureServices(services => services.Configure<DevelopmentBootstrapOptions>(o => o.Output = output));
        }
    }

    private static async Task<string> ChatAsync(HttpClient http, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gemma-4-26b","messages":[{"role":"user","content":"persist me"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", key);
        var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response.Headers.GetValues("X-Request-Id").Single();
    }

    [Fact]
    public async Task PostgresHost_Restart_KeepsKeyAndUsage()
    {
        var firstOutput = new StringWriter();
        string key;
        string firstRequest;
        await using (var first = new PostgresPortal(_connectionString, _schema, firstOutput))
        {
            var http = first.CreateClient();
            key = firstOutput.ToString().Split('\n').Single(l => l.StartsWith(DevelopmentBootstrapOptions.KeyLinePrefix, StringComparison.Ordinal))[DevelopmentBootstrapOptions.KeyLinePrefix.Length..].Trim();
            firstRequest = await ChatAsync(http, key);
        } // graceful stop flushes the usage writer into Postgres

        var secondOutput = new StringWriter();
        await using var second = new PostgresPortal(_connectionString, _schema, secondOutput);
        var secondHttp = second.CreateClient();
        Assert.DoesNotContain(DevelopmentBootstrapOptions.KeyLinePrefix, secondOutput.ToString(), StringComparison.Ordinal);
        await ChatAsync(secondHttp, key); // the key from the first run still works

        var reader = second.Services.GetRequiredService<IUsageReader>();
        var usage = await reader.FindUsageEventAsync(firstRequest);
        Assert.NotNull(usage);
        Assert.Equal(UsageOutcome.Succeeded, usage.Outcome);
        Assert.Equal("gemma-4-26b", usage.Model);
        Assert.Equal("org_dev", usage.OrgId);
        var log = await reader.FindRequestLogAsync(firstRequest);
        Assert.NotNull(log);
        Assert.Equal(200, log.StatusCode);

        await using var dataSource = NpgsqlDataSource.Create(_connectionString);
        await using var count = dataSource.CreateCommand($"SELECT count(*) FROM \"{_schema}\".api_keys");
        Assert.Equal(1L, (long)(await count.ExecuteScalarAsync())!);
    }
}
