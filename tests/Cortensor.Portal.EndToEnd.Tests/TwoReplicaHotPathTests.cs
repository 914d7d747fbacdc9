using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Gateway.Entitlements;
using Cortensor.Portal.Gateway.Telemetry;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Writer;
using Cortensor.Portal.Testing.Redis;
using Cortensor.Portal.Storage.Tests.Postgres;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Npgsql;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// Two portal hosts (the template's content) in Redis mode, sharing one Redis and one Postgres schema, as two
/// replicas behind a load balancer would: limits hold across both, and a revocation or a model disable on one is
/// refused by the other within a second.
/// </summary>
public sealed class TwoReplicaHotPathTests : IAsyncLifetime
{
    private const string Model = "gemma-4-26b";
    private readonly string _schema = "hp_" + Guid.NewGuid().ToString("N")[..8];
    private readonly string _prefix = "e2e-" + Guid.NewGuid().ToString("N")[..8] + ":";
    private readonly List<IAsyncDisposable> _replicas = [];
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

    private Replica Start(string redis, params (string Key, string Value)[] settings)
    {
        var replica = new Replica(_postgres, _schema, redis, _prefix, settings);
        _replicas.Add(replica);
        _ = replica.Server; // start now (the two replicas migrate the same schema one after the other)
        return replica;
    }

    [Fact]
    public async Task KeyLimit_DrivenAtTwiceTheLimitFromBothReplicas_ExactlyTheLimitIsAdmitted()
    {
        const int limit = 10;
        var settings = new[] { ("Cortensor:RateLimits:Defaults:Key:RequestsPerMinute", limit.ToString(System.Globalization.CultureInfo.InvariantCulture)) };
        var a = Start(LocalRedisServer.ConnectionString, settings);
        var b = Start(LocalRedisServer.ConnectionString, settings);
        var key = await a.IssueKeyAsync();
        using var httpA = a.CreateClient();
        using var httpB = b.CreateClient();

        var responses = await Task.WhenAll(Enumerable.Range(0, 2 * limit).Select(i => ChatAsync(i % 2 == 0 ? httpA : httpB, key)));

        Assert.Equal(limit, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        foreach (var response in responses.Where(r => r.StatusCode == HttpStatusCode.OK))
        {
            // Each admitted answer shows its wait for the shared limiter (a real Redis round trip, never zero).
            var timing = System.Text.RegularExpressions.Regex.Match(response.Headers.GetValues("Server-Timing").Single(), @"limits;dur=([0-9.]+)");
            Assert.True(timing.Success);
            Assert.True(double.Parse(timing.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0);
        }

        var limited = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(limit, limited.Count);
        foreach (var response in limited)
        {
            Assert.True(int.Parse(response.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
            Assert.Contains("\"key-rpm\";q=10;w=60", response.Headers.GetValues("RateLimit-Policy").Single(), StringComparison.Ordinal);
            Assert.Contains("\"key-rpm\";r=0", response.Headers.GetValues("RateLimit").Single(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task SpeculativeAdmission_BurstPastTheLimitFromBothReplicas_ExactlyTheLimitIsAdmitted_AndRefusedCallsAreDiscarded()
    {
        const int limit = 40; // margin 8 (20 %): after the warm-up requests both replicas start router calls before their decisions
        var settings = new[]
        {
            ("Cortensor:RateLimits:Defaults:Key:RequestsPerMinute", limit.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("Cortensor:RateLimits:Defaults:Key:ConcurrentRequests", "1000"), // only the minute rule decides here
            // The burst starts 80 router calls at once; on a loaded CI machine a Redis answer can then take longer than
            // the 250 ms default, and the fallback would decide per replica (fail open). Under test here is Redis.
            ("Cortensor:Redis:OperationTimeout", "00:00:10"),
        };
        var a = Start(LocalRedisServer.ConnectionString, settings);
        var b = Start(LocalRedisServer.ConnectionString, settings);
        var key = await a.IssueKeyAsync();
        using var httpA = a.CreateClient();
        using var httpB = b.CreateClient();
        using var speculativeA = new MetricCollector<long>(a.Services.GetRequiredService<IMeterFactory>(), GatewayTelemetry.Name, "cortensor.gateway.admission.speculative");
        using var speculativeB = new MetricCollector<long>(b.Services.GetRequiredService<IMeterFactory>(), GatewayTelemetry.Name, "cortensor.gateway.admission.speculative");
        using var decisionsA = new MetricCollector<long>(a.Services.GetRequiredService<IMeterFactory>(), UsageWriter.MeterName, "cortensor.ratelimit.decisions");
        using var decisionsB = new MetricCollector<long>(b.Services.GetRequiredService<IMeterFactory>(), UsageWriter.MeterName, "cortensor.ratelimit.decisions");
        var clock = Stopwatch.StartNew();
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(httpA, key)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(httpB, key)).StatusCode);

        var responses = await Task.WhenAll(Enumerable.Range(0, 2 * limit).Select(i => ChatAsync(i % 2 == 0 ? httpA : httpB, key)));
        var elapsed = clock.Elapsed;

        // Every decision came from Redis (none from the per-replica fallback), and the clients see exactly the shared
        // limit: the 38 left after the warm-up, plus one for every 1.5 s (60 s / 40) the burst took on a slow machine.
        var fallback = new[] { decisionsA, decisionsB }.Sum(c => c.GetMeasurementSnapshot().Where(m => Equals(m.Tags["backend"], "fallback")).Sum(m => m.Value));
        Assert.Equal(0, fallback);
        var admitted = responses.Count(r => r.StatusCode == HttpStatusCode.OK);
        var refilled = (int)(elapsed / TimeSpan.FromSeconds(60.0 / limit));
        Assert.InRange(admitted, limit - 2, limit - 2 + refilled);
        Assert.Equal(2 * limit - admitted, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        long Count(string outcome) => new[] { speculativeA, speculativeB }
            .Sum(c => c.GetMeasurementSnapshot().Where(m => Equals(m.Tags["cortensor.admission.outcome"], outcome)).Sum(m => m.Value));
        Assert.True(Count("admitted") >= 1, "no router call started before its decision");
        Assert.True(Count("discarded") >= 1, "no speculative call was refused: the burst did not test the refusal path");
        Assert.True(Count("admitted") <= admitted);
    }

    [Fact]
    public async Task ConcurrencyCap_HoldsAcrossBothReplicas()
    {
        var settings = new[] { ("Cortensor:RateLimits:Defaults:Key:ConcurrentRequests", "2") };
        var a = Start(LocalRedisServer.ConnectionString, settings);
        var b = Start(LocalRedisServer.ConnectionString, settings);
        var key = await a.IssueKeyAsync();
        using var httpA = a.CreateClient();
        using var httpB = b.CreateClient();

        // Six requests to a model that takes 1.5 s: all six arrive while the first two are still in flight.
        var responses = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => ChatAsync(i % 2 == 0 ? httpA : httpB, key, Replica.SlowModel)));

        Assert.Equal(2, responses.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(4, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));

        // Slots were released when the requests ended: the next one is admitted.
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(httpB, key)).StatusCode);
    }

    [Fact]
    public async Task Revocation_OnReplicaA_IsRefusedByReplicaB_WithinOneSecond()
    {
        var a = Start(LocalRedisServer.ConnectionString);
        var b = Start(LocalRedisServer.ConnectionString);
        var issued = await a.Services.GetRequiredService<IApiKeyProvider>().IssueAsync(new IssueApiKeyRequest { OrgId = "org_hp" });
        using var httpB = b.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(httpB, issued.Secret)).StatusCode); // B has the key cached now

        var clock = Stopwatch.StartNew();
        Assert.True(await a.Services.GetRequiredService<IApiKeyProvider>().RevokeAsync("org_hp", issued.Record.KeyId));

        var elapsed = await UntilAsync(async () => (await ChatAsync(httpB, issued.Secret)).StatusCode == HttpStatusCode.Unauthorized, clock);
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"B refused the revoked key only after {elapsed.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task ModelDisable_OnReplicaA_IsRefusedByReplicaB_WithinOneSecond_AndEnableRestores()
    {
        var a = Start(LocalRedisServer.ConnectionString);
        var b = Start(LocalRedisServer.ConnectionString);
        var key = await a.IssueKeyAsync();
        using var httpB = b.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(httpB, key)).StatusCode); // B has the entitlements cached now

        var admin = a.Services.GetRequiredService<ModelAccessAdministration>();
        var clock = Stopwatch.StartNew();
        await admin.DisableModelAsync(Model, "admin_e2e");

        var elapsed = await UntilAsync(async () => (await ChatAsync(httpB, key)).StatusCode == HttpStatusCode.NotFound, clock);
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"B refused the disabled model only after {elapsed.TotalMilliseconds:0} ms");

        Assert.True(await admin.EnableModelAsync(Model, "admin_e2e"));
        clock.Restart();
        elapsed = await UntilAsync(async () => (await ChatAsync(httpB, key)).StatusCode == HttpStatusCode.OK, clock);
        Assert.True(elapsed < TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task RedisDown_FailOpen_NoFiveHundreds_LocalLimitApplies_NoFreshBurst_AndSharedLimitingResumes()
    {
        using var redis = RedisServerProcess.StartNew(); // our own server, so it can be stopped
        var settings = new[]
        {
            ("Cortensor:RateLimits:Defaults:Key:RequestsPerMinute", "6"),
            ("Cortensor:RateLimits:FallbackReplicas", "2"), // while Redis is down each replica allows 6 / 2
        };
        var a = Start(redis.ConnectionString, settings);
        var b = Start(redis.ConnectionString, settings);
        var key = await a.IssueKeyAsync();
        using var httpA = a.CreateClient();
        using var httpB = b.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(httpA, key)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(httpB, key)).StatusCode);

        redis.Stop();
        var whileDown = new List<HttpResponseMessage>();
        for (var i = 0; i < 5; i++)
        {
            whileDown.Add(await ChatAsync(httpA, key));
        }

        // Decided locally at 6 / 2 = 3 per minute, starting where A last saw Redis (one of six used, so the rule is
        // full again 10 s later): of the local 3 (one per 20 s) half a unit is used, so 2 more pass, not a full 3.
        Assert.DoesNotContain(whileDown, r => (int)r.StatusCode >= 500);
        Assert.Equal(2, whileDown.Count(r => r.StatusCode == HttpStatusCode.OK));
        Assert.Equal(3, whileDown.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));

        redis.Start(); // empty: the shared counters start over

        // Each replica tries Redis again on a request once a second; the drained key's refusals drive the probes.
        // A key used while a replica was on its fallback is held to that local state after the return, so the
        // shared check below uses a key issued after both replicas are back on Redis.
        foreach (var (replica, http) in new[] { (a, httpA), (b, httpB) })
        {
            var limiter = replica.Services.GetRequiredService<FallbackRateLimiter>();
            await UntilAsync(async () => { await ChatAsync(http, key); return !limiter.IsDegraded; }, Stopwatch.StartNew(), TimeSpan.FromSeconds(10));
        }

        // On Redis the fresh key's per-second quota is 50 (25 in the fallback), so a remaining count above 24 shows
        // the shared counter.
        var fresh = await a.IssueKeyAsync();
        await UntilAsync(async () => IsShared(await ChatAsync(httpA, fresh)), Stopwatch.StartNew(), TimeSpan.FromSeconds(10));
        await UntilAsync(async () => IsShared(await ChatAsync(httpB, fresh)), Stopwatch.StartNew(), TimeSpan.FromSeconds(10));
        var fromA = await ChatAsync(httpA, fresh);
        var fromB = await ChatAsync(httpB, fresh);

        Assert.Equal(HttpStatusCode.OK, fromA.StatusCode);
        Assert.Equal(HttpStatusCode.OK, fromB.StatusCode);
        Assert.Equal(Remaining(fromA, "key-rpm") - 1, Remaining(fromB, "key-rpm")); // shared again: B counted A's request

        // Redis came back empty, but the key A drained while it was down gets no fresh burst from A.
        Assert.Equal(HttpStatusCode.TooManyRequests, (await ChatAsync(httpA, key)).StatusCode);
    }

    private static bool IsShared(HttpResponseMessage response)
        => response.StatusCode == HttpStatusCode.OK && Remaining(response, "key-rps") > 24;

    private static int Remaining(HttpResponseMessage response, string policy)
    {
        var state = response.Headers.GetValues("RateLimit").Single();
        var match = System.Text.RegularExpressions.Regex.Match(state, $"\"{policy}\";r=(\\d+)");
        Assert.True(match.Success, state);
        return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task RedisDown_FailClosed_503WithRetryAfter_ThenResumes()
    {
        using var redis = RedisServerProcess.StartNew();
        var settings = new[]
        {
            ("Cortensor:RateLimits:Defaults:Key:RequestsPerMinute", "100"),
            ("Cortensor:RateLimits:FailureModes:Requests", "FailClosed"),
        };
        var a = Start(redis.ConnectionString, settings);
        var key = await a.IssueKeyAsync();
        using var http = a.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(http, key)).StatusCode);

        redis.Stop();
        var refused = await ChatAsync(http, key);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.True(refused.Headers.Contains("Retry-After"));
        Assert.Contains("rate_limiter_unavailable", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        redis.Start();
        await UntilAsync(async () => (await ChatAsync(http, key)).StatusCode == HttpStatusCode.OK, Stopwatch.StartNew(), TimeSpan.FromSeconds(10));
    }

    private static async Task<HttpResponseMessage> ChatAsync(HttpClient http, string key, string model = Model)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent($$"""{"model":"{{model}}","messages":[{"role":"user","content":"hello"}],"max_tokens":8}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", key);
        var response = await http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    private static async Task<TimeSpan> UntilAsync(Func<Task<bool>> condition, Stopwatch clock, TimeSpan? limit = null)
    {
        var deadline = limit ?? TimeSpan.FromSeconds(5);
        while (!await condition())
        {
            Assert.True(clock.Elapsed < deadline, $"condition not met within {deadline.TotalSeconds:0} s");
            await Task.Delay(10);
        }

        return clock.Elapsed;
    }

    /// <summary>One portal host in Redis mode on the shared Postgres schema, with its own spill folder.</summary>
    private sealed class Replica(string postgres, string schema, string redis, string prefix, (string Key, string Value)[] settings) : WebApplicationFactory<Program>
    {
        public const string SlowModel = "m-slow-hp";

        private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cportal-hp-" + Guid.NewGuid().ToString("N")[..8]);

        public async Task<string> IssueKeyAsync()
        {
            var issued = await Services.GetRequiredService<IApiKeyProvider>().IssueAsync(new IssueApiKeyRequest { OrgId = "org_hp" });
            return issued.Secret;
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Production");
            builder.UseSetting("ConnectionStrings:Portal", postgres);
            builder.UseSetting("Cortensor:Fleet:UseSimulatedRouters", "true"); // no development key: each test issues its own
            builder.UseSetting("Cortensor:Storage:Postgres:Schema", schema);
            builder.UseSetting("Cortensor:Storage:DataDirectory", _dataDirectory);
            builder.UseSetting("Cortensor:HotPath:Mode", "Redis");
            builder.UseSetting("ConnectionStrings:Redis", redis);
            builder.UseSetting("Cortensor:Redis:KeyPrefix", prefix);
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }

            builder.ConfigureServices(services =>
            {
                services.Configure<Gateway.Hosting.DevelopmentBootstrapOptions>(o => o.Output = TextWriter.Null);
                // Long in-process TTLs: what reaches the other replica within a second is the pushed change, not an expiry.
                services.Configure<Keys.Caching.ApiKeyCacheOptions>(o => o.ValidTtl = TimeSpan.FromMinutes(5));
                services.PostConfigure<FleetOptions>(fleet =>
                {
                    fleet.Routers["slow-hp"] = new RouterOptions { Simulated = true, Simulator = new SimulatedRouterSettings { LatencyMs = 1500 } };
                    fleet.Pools["slow-hp"] = new PoolOptions { Members = [new PoolMemberOptions { Router = "slow-hp", SessionId = 3 }] };
                    fleet.Models[SlowModel] = new ModelOptions { Pool = "slow-hp" };
                });
            });
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
