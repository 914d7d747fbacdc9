using System.Diagnostics;
using System.Net;
using System.Text;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Storage.Tests.Postgres;
using Cortensor.Portal.Testing.Redis;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// Two portal hosts (the template's content) in Redis mode on one Redis and one Postgres schema: failed
/// authentications from one client address are counted in Redis, so a burst spent on replica A is refused on
/// replica B, and none of them writes a row to Postgres.
/// </summary>
public sealed class FailedAuthenticationReplicaTests : IAsyncLifetime
{
    private const int Burst = 5;
    private static readonly IPAddress Attacker = IPAddress.Parse("198.51.100.7");
    private static readonly IPAddress Customer = IPAddress.Parse("2001:db8:7:7::1");

    private readonly string _schema = "fa_" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _prefix = "e2e-" + Guid.NewGuid().ToString("N")[..8] + ":";
    private readonly List<Replica> _replicas = [];
    private string _postgres = null!;

    public Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable("PG_CONNECTION");
        _postgres = string.IsNullOrWhiteSpace(configured) ? LocalPostgresServer.ConnectionString : configured;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in _replicas)
        {
            await replica.DisposeAsync();
        }

        await using var dataSource = NpgsqlDataSource.Create(_postgres);
        await using var drop = dataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE");
        await drop.ExecuteNonQueryAsync();
    }

    private Replica Start()
    {
        var replica = new Replica(_postgres, _schema, LocalRedisServer.ConnectionString, _prefix);
        _replicas.Add(replica);
        _ = replica.Server; // start now (the replicas migrate the same schema one after the other)
        return replica;
    }

    [Fact]
    public async Task FailuresOnReplicaA_CountOnReplicaB_AndWriteNoRows_WhileAnotherAddressIsServed()
    {
        var a = Start();
        var b = Start();
        var key = (await a.Services.GetRequiredService<IApiKeyProvider>().IssueAsync(new IssueApiKeyRequest { OrgId = "org_fa" })).Secret;

        // The whole burst is spent on A.
        var failedIds = new List<string>();
        for (var i = 0; i < Burst; i++)
        {
            var (status, _, requestId) = await ChatAsync(a, Attacker, "pk_test_garbage");
            Assert.Equal(StatusCodes.Status401Unauthorized, status);
            failedIds.Add(requestId);
        }

        // B has seen nothing from that address, yet its first failure from it is refused: the count is shared.
        var (onB, retryAfter, refusedId) = await ChatAsync(b, Attacker, "pk_test_garbage");
        Assert.Equal(StatusCodes.Status429TooManyRequests, onB);
        Assert.Equal("12", retryAfter); // 5 per minute: one more every 12 s
        failedIds.Add(refusedId);

        // From then on B refuses that address before verifying, valid key or not; another address is served.
        var (validFromAttacker, _, validFromAttackerId) = await ChatAsync(b, Attacker, key);
        Assert.Equal(StatusCodes.Status429TooManyRequests, validFromAttacker);
        failedIds.Add(validFromAttackerId);
        var (customerOnB, _, customerId) = await ChatAsync(b, Customer, key);
        Assert.Equal(StatusCodes.Status200OK, customerOnB);
        var (customerOnA, _, customerOnAId) = await ChatAsync(a, Customer, key);
        Assert.Equal(StatusCodes.Status200OK, customerOnA);

        // The customer's requests reach Postgres; none of the failed ones does. Each replica writes its records in
        // order, so once a customer's row (recorded last on each replica) is there, any earlier row would be too.
        await using var dataSource = NpgsqlDataSource.Create(_postgres);
        var clock = Stopwatch.StartNew();
        while (await CountAsync(dataSource, "usage_events", [customerId, customerOnAId]) < 2)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), "the customers' usage rows did not arrive");
            await Task.Delay(50);
        }

        Assert.Equal(0, await CountAsync(dataSource, "usage_events", failedIds));
        Assert.Equal(0, await CountAsync(dataSource, "request_logs", failedIds));
        Assert.Equal(0, await CountNullOrgAsync(dataSource));
    }

    private async Task<long> CountAsync(NpgsqlDataSource dataSource, string table, IReadOnlyList<string> requestIds)
    {
        await using var command = dataSource.CreateCommand($"SELECT count(*) FROM \"{_schema}\".{table} WHERE request_id = ANY($1)");
        command.Parameters.AddWithValue(requestIds.ToArray());
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private async Task<long> CountNullOrgAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT (SELECT count(*) FROM \"{_schema}\".usage_events WHERE org_id IS NULL) + (SELECT count(*) FROM \"{_schema}\".request_logs WHERE org_id IS NULL)");
        return (long)(await command.ExecuteScalarAsync())!;
    }

    /// <summary>One chat request from <paramref name="from"/> (the TestServer lets a test set the connection's address).</summary>
    private static async Task<(int Status, string? RetryAfter, string RequestId)> ChatAsync(Replica replica, IPAddress from, string key)
    {
        var body = Encoding.UTF8.GetBytes("""{"model":"gemma-4-26b","messages":[{"role":"user","content":"hello"}],"max_tokens":8}""");
        var context = await replica.Server.SendAsync(c =>
        {
            c.Connection.RemoteIpAddress = from;
            c.Request.Method = HttpMethods.Post;
            c.Request.Path = "/v1/chat/completions";
            c.Request.Headers.Authorization = "Bearer " + key;
            c.Request.ContentType = "application/json";
            c.Request.Body = new MemoryStream(body);
        });
        return (context.Response.StatusCode, context.Response.Headers.RetryAfter.FirstOrDefault(), context.Response.Headers["X-Request-Id"].Single()!);
    }

    /// <summary>One portal host in Redis mode on the shared Postgres schema, with its own spill folder.</summary>
    private sealed class Replica(string postgres, string schema, string redis, string prefix) : WebApplicationFactory<Program>
    {
        private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cportal-fa-" + Guid.NewGuid().ToString("N")[..8]);

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Production");
            builder.UseSetting("ConnectionStrings:Portal", postgres);
            builder.UseSetting("Cortensor:Fleet:UseSimulatedRouters", "true");
            builder.UseSetting("Cortensor:Storage:Postgres:Schema", schema);
            builder.UseSetting("Cortensor:Storage:DataDirectory", _dataDirectory);
            builder.UseSetting("Cortensor:HotPath:Mode", "Redis");
            builder.UseSetting("ConnectionStrings:Redis", redis);
            builder.UseSetting("Cortensor:Redis:KeyPrefix", prefix);
            builder.UseSetting("Cortensor:Gateway:FailedAuthentication:Burst", Burst.ToString(System.Globalization.CultureInfo.InvariantCulture));
            // A loaded CI machine can take longer than the 250 ms default; under test here is the shared count.
            builder.UseSetting("Cortensor:Redis:OperationTimeout", "00:00:10");
            builder.ConfigureServices(services => services.Configure<Gateway.Hosting.DevelopmentBootstrapOptions>(o => o.Output = TextWriter.Null));
        }

        public override async ValueTask DisposeAsync()
        {
            await base.DisposeAsync();
            try
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            catch (IOException)
            {
                // already gone, or a file still open: the temp folder is cleaned by the OS
            }
        }
    }
}
