using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Cortensor.Portal.Storage.Tests.Postgres;
using Cortensor.Portal.Testing.Redis;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// The host's readiness follows its real dependencies: a Postgres server or a Redis server of the test's own is
/// stopped and started again; liveness stays 200 all along.
/// </summary>
public sealed class HealthProbeTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Ready_PostgresStopped_503NamingPostgres_LiveStays200_ThenRecovers()
    {
        using var postgres = PostgresServerProcess.StartNew(); // our own server, so it can be stopped
        await using var portal = new Portal(("ConnectionStrings:Portal", postgres.ConnectionString + ";Password=canary-pg-secret"));
        using var http = portal.CreateClient();
        await UntilStatusAsync(http, HttpStatusCode.OK);

        postgres.StopImmediately();
        var down = await UntilStatusAsync(http, HttpStatusCode.ServiceUnavailable);

        Assert.Equal("unhealthy", down.RootElement.GetProperty("status").GetString());
        var check = Check(down, "postgres");
        Assert.Equal("unhealthy", check.GetProperty("status").GetString());
        Assert.False(string.IsNullOrWhiteSpace(check.GetProperty("reason").GetString()));
        var body = down.RootElement.GetRawText();
        foreach (var hidden in new[] { "canary-pg-secret", "127.0.0.1", postgres.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "Host=" })
        {
            Assert.DoesNotContain(hidden, body, StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);

        postgres.Start();
        var up = await UntilStatusAsync(http, HttpStatusCode.OK);
        Assert.Equal("healthy", Check(up, "postgres").GetProperty("status").GetString());
    }

    [Fact]
    public async Task Ready_RedisStoppedInRedisMode_503NamingRedis_LiveStays200_ThenRecovers()
    {
        using var redis = RedisServerProcess.StartNew(); // our own server, so it can be stopped
        await using var portal = new Portal(
            ("Cortensor:HotPath:Mode", "Redis"),
            ("ConnectionStrings:Redis", redis.ConnectionString + ",password=canary-redis-secret"));
        using var http = portal.CreateClient();
        var before = await UntilStatusAsync(http, HttpStatusCode.OK);
        Assert.Equal("healthy", Check(before, "redis").GetProperty("status").GetString());

        redis.Stop();
        var down = await UntilStatusAsync(http, HttpStatusCode.ServiceUnavailable);

        var check = Check(down, "redis");
        Assert.Equal("unhealthy", check.GetProperty("status").GetString());
        Assert.False(string.IsNullOrWhiteSpace(check.GetProperty("reason").GetString()));
        Assert.Equal("healthy", Check(down, "sqlite").GetProperty("status").GetString()); // only Redis is named
        var body = down.RootElement.GetRawText();
        foreach (var hidden in new[] { "canary-redis-secret", "127.0.0.1", ":" + redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture) })
        {
            Assert.DoesNotContain(hidden, body, StringComparison.Ordinal);
        }

        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);

        redis.Start();
        var up = await UntilStatusAsync(http, HttpStatusCode.OK);
        Assert.Equal("healthy", Check(up, "redis").GetProperty("status").GetString());
    }

    private static JsonElement Check(JsonDocument report, string name)
        => report.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    /// <summary>Polls <c>/health/ready</c> until it answers <paramref name="expected"/>; returns that body.</summary>
    private static async Task<JsonDocument> UntilStatusAsync(HttpClient http, HttpStatusCode expected)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            using var response = await http.GetAsync("/health/ready");
            var body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == expected)
            {
                return JsonDocument.Parse(body);
            }

            Assert.True(clock.Elapsed < Patience, $"/health/ready still answered {(int)response.StatusCode} after {Patience.TotalSeconds:0} s: {body}");
            await Task.Delay(100);
        }
    }

    /// <summary>The template's host with its own data folder (SQLite unless a Postgres connection string is set).</summary>
    private sealed class Portal : WebApplicationFactory<Program>
    {
        private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cportal-health-" + Guid.NewGuid().ToString("N")[..8]);
        private readonly (string Key, string Value)[] _settings;

        public Portal(params (string Key, string Value)[] settings) => _settings = settings;

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Production");
            builder.UseSetting("Cortensor:Fleet:UseSimulatedRouters", "true"); // no development key: none is needed
            builder.UseSetting("Cortensor:Storage:DataDirectory", _dataDirectory);
            builder.UseSetting("Cortensor:Storage:Postgres:Schema", "health_" + Guid.NewGuid().ToString("N")[..8]);
            foreach (var (key, value) in _settings)
            {
                builder.UseSetting(key, value);
            }
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
