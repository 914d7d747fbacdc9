using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.RateLimiting;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace Cortensor.Portal.Redis.Tests.RateLimiting;

/// <summary>What is specific to the Redis script: atomicity across connections, key layout, one round trip, no write on refusal.</summary>
public sealed class RedisRateLimiterScriptTests : IDisposable
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1); // long enough that no key expires before the SCAN

    private readonly List<IDisposable> _disposables = [];

    public void Dispose()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
        {
            disposable.Dispose();
        }
    }

    [Fact]
    public async Task Acquire_TwoConnectionsConcurrently_AdmitExactlyTheLimit()
    {
        const int Limit = 40;
        var scope = Track(new RedisTestScope());
        var first = CreateLimiter(scope, scope.Connect());
        var second = CreateLimiter(scope, scope.Connect());
        var tag = NewId();
        var keyId = NewId();
        var orgId = NewId();

        // Hour windows: no unit comes back while the test runs on the real clock (T = 90 s and 3.6 s).
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var tasks = Enumerable.Range(0, 2 * Limit).Select(i => Task.Run(async () =>
        {
            await start.Task;
            var limiter = i % 2 == 0 ? first : second;
            return await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", keyId, [new("rph", RateLimitClass.Requests, Limit, Hour)]), new RateLimitPartition("org", orgId, [new("rph", RateLimitClass.Requests, 1000, Hour)])));
        })).ToArray();
        start.SetResult();
        var decisions = await Task.WhenAll(tasks);

        Assert.Equal(Limit, decisions.Count(d => d.IsAllowed));
        Assert.Equal(Enumerable.Range(0, Limit).Select(i => (long)i), decisions.Where(d => d.IsAllowed).Select(d => d.Counters[0].Remaining).Order());

        // The org counter was charged by the admitted requests only.
        var check = await first.AcquireAsync(Request(tag, new RateLimitPartition("org", orgId, [new("rph", RateLimitClass.Requests, 1000, Hour)])));
        Assert.Equal(1000 - Limit - 1, check.Counters[0].Remaining);
    }

    [Fact]
    public async Task Acquire_EveryKeyWritten_CarriesTheRequestsHashTag()
    {
        var scope = Track(new RedisTestScope());
        var connection = scope.Connect();
        var limiter = CreateLimiter(scope, connection);
        var tag = "org_{a}:b%" + NewId()[..6]; // braces, colon and percent must not break the tag
        var request = Request(
            tag,
            new RateLimitPartition("key", "key:" + NewId(), [new("rph", RateLimitClass.Requests, 10, Hour), new("tph", RateLimitClass.Tokens, 1000, Hour), new("concurrency", RateLimitClass.Concurrency, 5, TimeSpan.Zero)]),
            new RateLimitPartition("org", "{org}", [new("rpm", RateLimitClass.Requests, 100, Minute), new("concurrency", RateLimitClass.Concurrency, 50, TimeSpan.Zero)])) with { Tokens = 10 };

        var decision = await limiter.AcquireAsync(request);
        Assert.True(decision.IsAllowed);

        var server = connection.GetServer(connection.GetEndPoints()[0]);
        var keys = new List<string>();
        await foreach (var key in server.KeysAsync(pattern: scope.Options.KeyPrefix + "*"))
        {
            keys.Add(key.ToString());
        }

        Assert.Equal(5, keys.Count);
        var expectedTag = "{org_%7Ba%7D%3Ab%25" + tag[^6..] + "}";
        Assert.All(keys, key =>
        {
            Assert.StartsWith(scope.Options.KeyPrefix + "rl:", key, StringComparison.Ordinal);

            // Redis Cluster hashes the text between the first '{' and the next '}'.
            var open = key.IndexOf('{', StringComparison.Ordinal);
            var close = key.IndexOf('}', open + 1);
            Assert.Equal(expectedTag, key[open..(close + 1)]);
            Assert.Equal(connection.HashSlot(keys[0]), connection.HashSlot(key));
        });
        Assert.Contains(scope.Options.KeyPrefix + "rl:" + expectedTag + ":org:%7Borg%7D:rpm", keys);
    }

    [Fact]
    public async Task Acquire_OneRoundTripEach_OnlyEvalShaReachesTheServer()
    {
        const int N = 25;
        using var server = RedisServerProcess.StartNew();
        var scope = Track(new RedisTestScope(server.ConnectionString));
        var admin = scope.ConnectAdmin();
        var connection = scope.Connect();
        var limiter = CreateLimiter(scope, connection);
        var tag = NewId();
        RateLimitRequest Next() => Request(
            tag,
            new RateLimitPartition("key", "k", [new("rps", RateLimitClass.Requests, 1000, TimeSpan.FromSeconds(1)), new("tpm", RateLimitClass.Tokens, 100_000, Minute), new("concurrency", RateLimitClass.Concurrency, 1000, TimeSpan.Zero)]),
            new RateLimitPartition("org", "o", [new("rpm", RateLimitClass.Requests, 10_000, Minute)])) with { Tokens = 5 };

        Assert.True((await limiter.AcquireAsync(Next())).IsAllowed); // warm-up: loads the script into Redis
        var session = new ProfilingSession();
        connection.RegisterProfiler(() => session);
        var before = await CommandStats.ReadAsync(admin);

        for (var i = 0; i < N; i++)
        {
            Assert.True((await limiter.AcquireAsync(Next())).IsAllowed);
        }

        var delta = CommandStats.Delta(before, await CommandStats.ReadAsync(admin));
        var sent = session.FinishProfiling().Select(c => c.Command).ToList();

        // The client sent N commands, all EVALSHA.
        Assert.Equal(Enumerable.Repeat("EVALSHA", N), sent);

        // The server ran N scripts and nothing else; inside each (redis-server counts these, Garnet does not): one
        // TIME, a GET and a SET per GCRA rule (3), and ZCOUNT, ZREMRANGEBYSCORE, ZADD and PEXPIRE for the concurrency rule.
        Assert.Equal(
            CommandStats.Expected(
                server,
                sent: new() { ["evalsha"] = N },
                insideScripts: new()
                {
                    ["time"] = N, ["get"] = 3 * N, ["set"] = 3 * N,
                    ["zcount"] = N, ["zremrangebyscore"] = N, ["zadd"] = N, ["pexpire"] = N,
                }),
            delta.OrderBy(kv => kv.Key, StringComparer.Ordinal));
    }

    [Fact]
    public async Task Acquire_Refused_WritesNothing()
    {
        using var server = RedisServerProcess.StartNew();
        var scope = Track(new RedisTestScope(server.ConnectionString));
        var admin = scope.ConnectAdmin();
        var limiter = CreateLimiter(scope, scope.Connect());
        var tag = NewId();
        var keyCap = new RateLimitRule("concurrency", RateLimitClass.Concurrency, 10, TimeSpan.Zero);
        var keyTpm = new RateLimitRule("tpm", RateLimitClass.Tokens, 1000, Minute);
        var orgRpm = new RateLimitRule("rpm", RateLimitClass.Requests, 2, Minute);
        RateLimitRequest Next() => Request(tag, new RateLimitPartition("key", "k", [keyCap, keyTpm]), new RateLimitPartition("org", "o", [orgRpm])) with { Tokens = 100 };

        Assert.True((await limiter.AcquireAsync(Next())).IsAllowed);
        Assert.True((await limiter.AcquireAsync(Next())).IsAllowed);
        var snapshot = await SnapshotAsync(admin, scope.Options.KeyPrefix);
        var before = await CommandStats.ReadAsync(admin);

        for (var i = 0; i < 5; i++)
        {
            var refused = await limiter.AcquireAsync(Next());
            Assert.False(refused.IsAllowed);
            Assert.Equal("org-rpm", refused.LimitedBy?.Policy);
        }

        var delta = CommandStats.Delta(before, await CommandStats.ReadAsync(admin));
        // Five scripts that only read (redis-server also counts their reads; Garnet counts the scripts alone), and
        // every key as it was.
        Assert.Equal(
            CommandStats.Expected(server, sent: new() { ["evalsha"] = 5 }, insideScripts: new() { ["time"] = 5, ["get"] = 5, ["zcount"] = 5 }).Select(kv => kv.Key),
            delta.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(snapshot, await SnapshotAsync(admin, scope.Options.KeyPrefix));
    }

    [Fact]
    public async Task Acquire_AfterScriptFlush_ReloadsTheScript()
    {
        using var server = RedisServerProcess.StartNew();
        var scope = Track(new RedisTestScope(server.ConnectionString));
        var admin = scope.ConnectAdmin();
        var limiter = CreateLimiter(scope, scope.Connect());
        var tag = NewId();
        var rule = new RateLimitRule("rpm", RateLimitClass.Requests, 10, Minute);

        Assert.Equal(9, (await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k", [rule])))).Counters[0].Remaining);
        await admin.GetServer(admin.GetEndPoints()[0]).ScriptFlushAsync();

        Assert.Equal(8, (await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k", [rule])))).Counters[0].Remaining);
        var before = await CommandStats.ReadAsync(admin);
        Assert.Equal(7, (await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k", [rule])))).Counters[0].Remaining);
        Assert.Equal(1, CommandStats.Delta(before, await CommandStats.ReadAsync(admin))["evalsha"]);
    }

    [Fact]
    public async Task Release_FreesSlotsOnBothPartitions_AndSettlesTokensWithTtl()
    {
        var scope = Track(new RedisTestScope());
        var connection = scope.Connect();
        var limiter = CreateLimiter(scope, connection);
        var tag = NewId();
        var keyCap = new RateLimitRule("concurrency", RateLimitClass.Concurrency, 1, TimeSpan.Zero);
        var orgCap = new RateLimitRule("concurrency", RateLimitClass.Concurrency, 1, TimeSpan.Zero);
        var tpm = new RateLimitRule("tpm", RateLimitClass.Tokens, 60_000, Minute); // 1 ms per token
        RateLimitRequest Next() => Request(tag, new RateLimitPartition("key", "k", [keyCap, tpm]), new RateLimitPartition("org", "o", [orgCap])) with { Tokens = 1000 };

        var held = await limiter.AcquireAsync(Next());
        Assert.True(held.IsAllowed);
        Assert.False((await limiter.AcquireAsync(Next())).IsAllowed);

        await limiter.ReleaseAsync(held.Lease!, 5000);

        var db = connection.GetDatabase();
        var tatKey = ((RedisRateLimiter)held.Lease!.Backend!).GetKey(tag, "key", "k", "tpm");
        var ttl = await db.KeyTimeToLiveAsync(tatKey);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(5)); // 5000 tokens at 1 ms each
        Assert.False(await db.KeyExistsAsync(limiter.GetKey(tag, "key", "k", "concurrency")));
        Assert.True((await limiter.AcquireAsync(Next())).IsAllowed);
    }

    [Fact]
    public async Task Tat_WithAFractionOfAMicrosecond_IsStoredWithItAndReadBackExactly()
    {
        var scope = Track(new RedisTestScope());
        var connection = scope.Connect();
        var limiter = CreateLimiter(scope, connection);
        var tag = NewId();
        var tph = new RateLimitRule("tph", RateLimitClass.Tokens, 7, Hour); // 514,285,714 + 2/7 µs per token
        RateLimitRequest Next(int tokens) => Request(tag, new RateLimitPartition("key", "k", [tph])) with { Tokens = tokens };

        var first = await limiter.AcquireAsync(Next(1));
        var stored = (string?)await connection.GetDatabase().StringGetAsync(limiter.GetKey(tag, "key", "k", "tph"));

        Assert.Equal(6, first.Counters[0].Remaining);
        Assert.NotNull(stored);
        Assert.EndsWith(".2", stored, StringComparison.Ordinal); // 2 ticks of 1/7 µs
        var rest = await limiter.AcquireAsync(Next(6)); // the six sevenths left fit exactly (no unit comes back within a test)
        Assert.True(rest.IsAllowed);
        Assert.Equal(0, rest.Counters[0].Remaining);
        Assert.False((await limiter.AcquireAsync(Next(1))).IsAllowed);
    }

    [Fact]
    public async Task A_partition_whose_rules_change_counts_under_the_new_rules_keys()
    {
        var scope = Track(new RedisTestScope());
        var connection = scope.Connect();
        var limiter = CreateLimiter(scope, connection);
        var db = connection.GetDatabase();
        var tag = NewId();
        var rpm = new RateLimitRule("rpm", RateLimitClass.Requests, 10, Minute);
        var rph = new RateLimitRule("rph", RateLimitClass.Requests, 10, Hour);

        // The same key and org, first with one rule, then (a plan change) with another and then both: each request
        // writes exactly the keys of the rules it names, never a previous request's.
        Assert.True((await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k", [rpm])))).IsAllowed);
        Assert.True(await db.KeyExistsAsync(limiter.GetKey(tag, "key", "k", "rpm")));
        Assert.False(await db.KeyExistsAsync(limiter.GetKey(tag, "key", "k", "rph")));

        await db.KeyDeleteAsync(limiter.GetKey(tag, "key", "k", "rpm"));
        var changed = await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k", [rph])));
        Assert.True(changed.IsAllowed);
        Assert.Equal(9, changed.Counters[0].Remaining);
        Assert.True(await db.KeyExistsAsync(limiter.GetKey(tag, "key", "k", "rph")));
        Assert.False(await db.KeyExistsAsync(limiter.GetKey(tag, "key", "k", "rpm")));

        var both = await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k", [rph, rpm])));
        Assert.Equal([8L, 9L], both.Counters.Select(static c => c.Remaining));
    }

    [Fact]
    public async Task Keys_stay_right_when_more_partitions_than_the_key_table_holds_have_been_seen()
    {
        var scope = Track(new RedisTestScope());
        var connection = scope.Connect();
        var limiter = CreateLimiter(scope, connection);
        var db = connection.GetDatabase();
        var tag = NewId();
        var rph = new RateLimitRule("rph", RateLimitClass.Requests, 10, Hour);

        // Past the table's size it is emptied and refilled; a key seen before then gets its own keys again.
        for (var k = 0; k <= RedisRateLimiter.MaxCachedPartitions; k += 500)
        {
            var batch = Enumerable.Range(k, 500).Select(i => limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k" + i, [rph]))).AsTask());
            Assert.All(await Task.WhenAll(batch), static d => Assert.Equal(9, d.Counters[0].Remaining));
        }

        var again = await limiter.AcquireAsync(Request(tag, new RateLimitPartition("key", "k0", [rph])));
        Assert.Equal(8, again.Counters[0].Remaining);
        Assert.True(await db.KeyExistsAsync(limiter.GetKey(tag, "key", "k0", "rph")));
    }

    [Fact]
    public async Task GetKey_EscapesSeparatorsAndBraces()
    {
        var scope = Track(new RedisTestScope());
        var limiter = CreateLimiter(scope, scope.Connect());

        Assert.Equal(
            scope.Options.KeyPrefix + "rl:{o%7B1%7D}:key:a%3Ab%25:rpm",
            limiter.GetKey("o{1}", "key", "a:b%", "rpm").ToString());
        Assert.NotEqual(limiter.GetKey("t", "key", "a:b", "c").ToString(), limiter.GetKey("t", "key", "a", "b:c").ToString());
        await Task.CompletedTask;
    }

    private T Track<T>(T disposable)
        where T : IDisposable
    {
        _disposables.Add(disposable);
        return disposable;
    }

    private static RedisRateLimiter CreateLimiter(RedisTestScope scope, IConnectionMultiplexer connection)
        => new(connection, scope.OptionsWrapper, new StaticOptionsMonitor<RateLimitingOptions>(new RateLimitingOptions()), NullLogger<RedisRateLimiter>.Instance);

    private static RateLimitRequest Request(string tag, params RateLimitPartition[] partitions) => new()
    {
        RequestId = NewId(),
        HashTag = tag,
        Partitions = partitions,
    };

    private static string NewId() => Guid.NewGuid().ToString("N");

    /// <summary>Every key under the prefix with its type, value and whether it has a TTL.</summary>
    private static async Task<List<string>> SnapshotAsync(IConnectionMultiplexer admin, string prefix)
    {
        var server = admin.GetServer(admin.GetEndPoints()[0]);
        var db = admin.GetDatabase();
        var snapshot = new List<string>();
        await foreach (var key in server.KeysAsync(pattern: prefix + "*"))
        {
            var type = await db.KeyTypeAsync(key);
            var value = type == RedisType.SortedSet
                ? string.Join(",", (await db.SortedSetRangeByRankWithScoresAsync(key)).Select(e => $"{e.Element}={e.Score}"))
                : (string?)await db.StringGetAsync(key);
            snapshot.Add($"{key} {type} {value} ttl={(await db.KeyTimeToLiveAsync(key)).HasValue}");
        }

        snapshot.Sort(StringComparer.Ordinal);
        return snapshot;
    }
}
