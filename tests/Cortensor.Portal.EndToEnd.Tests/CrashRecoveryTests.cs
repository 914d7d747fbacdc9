using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Testing.Redis;
using Microsoft.Data.Sqlite;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// The portal host as its own process on SQLite, killed with SIGKILL (<see cref="Process.Kill()"/>) while streams
/// are open and short requests are in flight, then started again on the same data folder: the usage journal must
/// give every admitted request exactly one usage row (interrupted where it never finished). In Redis mode the killed
/// replica's concurrency slots must also free themselves within one (short) lease TTL.
/// </summary>
public sealed class CrashRecoveryTests(ITestOutputHelper output)
{
    private const int Streams = 5;
    private static readonly TimeSpan TrafficDuration = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ShortRequestInterval = TimeSpan.FromMilliseconds(10); // about 100 req/s

    // Redis mode: a short slot lease (renewed every second), so a killed replica's slots must be gone within seconds.
    // 3 s is the validator's least for these values: 2 x renew interval + operation timeout.
    private static readonly TimeSpan LeaseTtl = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan LeaseRenewInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan RedisOperationTimeout = TimeSpan.FromSeconds(1); // a busy test machine is not an outage

    [Fact]
    public Task Kill9_WithOpenStreamsAndShortRequestsInFlight_AfterRestartEveryAdmittedRequestHasExactlyOneUsageRow()
        => KillRestartAndCheckUsageAsync(new Dictionary<string, string>(), afterKill: null);

    [Fact]
    public async Task Kill9_InRedisMode_NoSlotOutlivesTheLease_AndAfterRestartEveryAdmittedRequestHasExactlyOneUsageRow()
    {
        // The shared test server (redis-server, or Garnet with CORTENSOR_TEST_REDIS=garnet); a fresh prefix isolates this run.
        var prefix = "crash-" + Guid.NewGuid().ToString("N")[..8] + ":";
        var settings = new Dictionary<string, string>
        {
            ["Cortensor__HotPath__Mode"] = "Redis",
            ["ConnectionStrings__Redis"] = LocalRedisServer.ConnectionString,
            ["Cortensor__Redis__KeyPrefix"] = prefix,
            ["Cortensor__Redis__OperationTimeout"] = RedisOperationTimeout.ToString("c", CultureInfo.InvariantCulture),
            ["Cortensor__Redis__ConcurrencyLeaseTtl"] = LeaseTtl.ToString("c", CultureInfo.InvariantCulture),
            ["Cortensor__Redis__ConcurrencyLeaseRenewInterval"] = LeaseRenewInterval.ToString("c", CultureInfo.InvariantCulture),
        };
        await using var redis = await ConnectionMultiplexer.ConnectAsync(LocalRedisServer.ConnectionString);

        await KillRestartAndCheckUsageAsync(settings, afterKill: async () =>
        {
            // Right after the kill the dead replica's slots are still held (so this check can fail)...
            var held = await CountLiveSlotsAsync(redis, prefix);
            output.WriteLine($"live concurrency slots right after the kill: {held}");
            Assert.True(held >= Streams, $"{held} live slots right after the kill, expected at least the {Streams} open streams'");

            // ...and nobody renews them any more: all are gone within one lease TTL (plus slack for a busy machine).
            var stopwatch = Stopwatch.StartNew();
            var deadline = LeaseTtl + TimeSpan.FromSeconds(2);
            while ((held = await CountLiveSlotsAsync(redis, prefix)) > 0 && stopwatch.Elapsed < deadline)
            {
                await Task.Delay(100);
            }

            output.WriteLine($"live concurrency slots {stopwatch.Elapsed.TotalSeconds:0.0} s after the kill: {held}");
            Assert.True(held == 0, $"{held} concurrency slots still live {deadline.TotalSeconds:0} s after the kill (lease TTL {LeaseTtl.TotalSeconds:0} s)");
        });
    }

    /// <summary>
    /// Concurrency slots whose lease has not expired by Redis's clock, over every per-key slot set under
    /// <paramref name="prefix"/> (<c>{prefix}rl:{org}:key:{id}:concurrency</c>, scored by expiry in µs).
    /// </summary>
    private static async Task<long> CountLiveSlotsAsync(ConnectionMultiplexer redis, string prefix)
    {
        var server = redis.GetServer(redis.GetEndPoints()[0]);
        var db = redis.GetDatabase();
        var time = (RedisResult[])(await db.ExecuteAsync("TIME"))!; // seconds, microseconds: the clock the scripts read
        var now = ((long)time[0] * 1_000_000) + (long)time[1];
        var live = 0L;
        await foreach (var key in server.KeysAsync(pattern: $"{prefix}rl:*:{RateLimitPlanner.KeyScope}:*:{RateLimitPlanner.ConcurrencyRule}", pageSize: 100))
        {
            live += await db.SortedSetLengthAsync(key, now, double.PositiveInfinity, Exclude.Start);
        }

        return live;
    }

    private async Task KillRestartAndCheckUsageAsync(IReadOnlyDictionary<string, string> settings, Func<Task>? afterKill)
    {
        var data = Path.Combine(Path.GetTempPath(), "cportal-crash-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            var streamIds = new List<string>();
            var completed = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
            var unanswered = 0;

            await using (var first = HostProcess.Start(data, settings))
            {
                var key = await first.ReadyAsync(expectKey: true);
                using var http = new HttpClient { BaseAddress = first.BaseUrl, Timeout = TimeSpan.FromSeconds(60) };

                // Streams on a slow router (2 tokens/s): headers arrive with the first router chunk, so each is admitted.
                var readers = new List<Task>();
                for (var i = 0; i < Streams; i++)
                {
                    var response = await SendAsync(http, key, "slow-model", stream: true, HttpCompletionOption.ResponseHeadersRead);
                    Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                    streamIds.Add(response.Headers.GetValues("X-Request-Id").Single());
                    readers.Add(DrainQuietlyAsync(response));
                }

                // Short requests at about 100 req/s, still going when the process dies.
                var shortRequests = new List<Task>();
                var stopwatch = Stopwatch.StartNew();
                while (stopwatch.Elapsed < TrafficDuration)
                {
                    shortRequests.Add(ShortRequestAsync(http, key, completed, () => Interlocked.Increment(ref unanswered)));
                    await Task.Delay(ShortRequestInterval);
                }

                first.Kill(); // SIGKILL: no shutdown, no flush
                if (afterKill is not null)
                {
                    await afterKill();
                }

                await Task.WhenAll(shortRequests);
                await Task.WhenAll(readers);
                Assert.NotEmpty(completed);
            }

            // The restart replays the journal before serving; a graceful stop then leaves the store complete.
            string secondLog;
            await using (var second = HostProcess.Start(data, settings))
            {
                await second.ReadyAsync(expectKey: false);
                Assert.Equal(0, await second.StopGracefullyAsync());
                secondLog = second.Log;
            }

            var rows = await ReadUsageAsync(Path.Combine(data, "portal.db"));
            output.WriteLine(
                $"streams {streamIds.Count}, short requests answered {completed.Count}, unanswered at the kill {unanswered}; " +
                $"usage rows after restart {rows.Count}, interrupted {rows.Count(r => r.Outcome == 4)}");
            foreach (var id in streamIds)
            {
                var row = Assert.Single(rows, r => r.RequestId == id);
                Assert.Equal(4, row.Outcome); // interrupted
                Assert.True(row.Stream);
                Assert.True(row.PromptTokens > 0);
                Assert.True(row.CompletionTokens > 0, "the stream's progress was journaled"); // 2 tokens/s for 2 s, journaled every second
                Assert.True(row.TokensEstimated);
                Assert.Equal(500, row.StatusCode);
                Assert.Equal("interrupted", row.ErrorCode);
            }

            foreach (var id in completed.Keys)
            {
                var row = Assert.Single(rows, r => r.RequestId == id);
                Assert.Equal(0, row.Outcome); // succeeded
                Assert.Equal(200, row.StatusCode);
            }

            // Requests that got no answer may or may not have been admitted before the kill: at most one row each.
            // One may also have finished: its usage is recorded (journaled Finished) before the response's last bytes
            // leave the process, so the kill can fall between the two: succeeded (0) or interrupted (4).
            var others = rows.Where(r => !completed.ContainsKey(r.RequestId) && !streamIds.Contains(r.RequestId)).ToList();
            Assert.True(others.Count <= unanswered, $"{others.Count} rows for {unanswered} unanswered requests");
            Assert.All(others, r => Assert.Contains(r.Outcome, new[] { 0, 4 }));
            Assert.Equal(rows.Count, rows.Select(r => r.RequestId).Distinct().Count());
            Assert.All(rows, r => Assert.NotNull(r.StatusCode)); // a request-log row for every usage row
            Assert.Contains("interrupted usage records from", secondLog, StringComparison.Ordinal); // JournalRecovered (2020)
        }
        finally
        {
            try
            {
                Directory.Delete(data, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A leftover temp folder is harmless.
            }
        }
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient http, string key, string model, bool stream, HttpCompletionOption completion)
    {
        var body = $$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"count to ten please"}]}""";
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new("Bearer", key);
        return http.SendAsync(request, completion);
    }

    private static async Task ShortRequestAsync(HttpClient http, string key, ConcurrentDictionary<string, bool> completed, Action unanswered)
    {
        try
        {
            using var response = await SendAsync(http, key, "fast-model", stream: false, HttpCompletionOption.ResponseContentRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            completed[response.Headers.GetValues("X-Request-Id").Single()] = true;
        }
        catch (HttpRequestException)
        {
            unanswered(); // the process died first
        }
    }

    private static async Task DrainQuietlyAsync(HttpResponseMessage response)
    {
        try
        {
            await response.Content.CopyToAsync(Stream.Null);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            // Cut by the kill.
        }
        finally
        {
            response.Dispose();
        }
    }

    private static async Task<List<UsageRow>> ReadUsageAsync(string databasePath)
    {
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databasePath, Mode = SqliteOpenMode.ReadOnly }.ToString());
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT u.request_id, u.outcome, u.stream, u.prompt_tokens, u.completion_tokens, u.tokens_estimated, l.status_code, l.error_code
            FROM usage_events u LEFT JOIN request_logs l ON l.request_id = u.request_id
            """;
        var rows = new List<UsageRow>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add(new UsageRow(
                reader.GetString(0),
                reader.GetInt32(1),
                reader.GetInt64(2) != 0,
                reader.GetInt32(3),
                reader.GetInt32(4),
                reader.GetInt64(5) != 0,
                reader.IsDBNull(6) ? null : reader.GetInt32(6),
                reader.IsDBNull(7) ? null : reader.GetString(7)));
        }

        return rows;
    }

    private sealed record UsageRow(string RequestId, int Outcome, bool Stream, int PromptTokens, int CompletionTokens, bool TokensEstimated, int? StatusCode, string? ErrorCode);

    /// <summary>
    /// The host (<c>Cortensor.Portal.Host.dll</c>, copied beside the tests by its project reference) in its own
    /// process on a free loopback port, on SQLite in <c>data</c>, with two simulated routers: <c>slow-model</c>
    /// (2 tokens a second) and <c>fast-model</c> (50 ms per answer).
    /// </summary>
    private sealed class HostProcess : IAsyncDisposable
    {
        private const string KeyLinePrefix = "Cortensor Portal development API key: ";
        private readonly Process _process;
        private readonly StringBuilder _log = new();
        private readonly TaskCompletionSource<string> _key = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private HostProcess(Process process, Uri baseUrl)
        {
            _process = process;
            BaseUrl = baseUrl;
        }

        public Uri BaseUrl { get; }

        public string Log
        {
            get
            {
                lock (_log)
                {
                    return _log.ToString();
                }
            }
        }

        /// <summary>Starts the host; <paramref name="extra"/> environment settings add to or override the defaults.</summary>
        public static HostProcess Start(string data, IReadOnlyDictionary<string, string> extra)
        {
            var url = $"http://127.0.0.1:{FreePort()}";
            var info = new ProcessStartInfo(DotnetHost())
            {
                WorkingDirectory = AppContext.BaseDirectory,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.ArgumentList.Add("exec");
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Cortensor.Portal.Host.dll"));
            info.ArgumentList.Add("--urls");
            info.ArgumentList.Add(url);
            var settings = new Dictionary<string, string>
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["Cortensor__Storage__DataDirectory"] = data,
                ["Cortensor__DevelopmentKey__Enabled"] = "true",
                ["Cortensor__Fleet__Routers__slow__Simulated"] = "true",
                ["Cortensor__Fleet__Routers__slow__Simulator__TokensPerSecond"] = "2",
                // Five concurrent streams on one session: the router isolates streams, so the pool need not queue them.
                ["Cortensor__Fleet__Routers__slow__Simulator__NonBlockingStreamQueue"] = "true",
                ["Cortensor__Fleet__Pools__slow__RouterQueues"] = "NonBlocking",
                ["Cortensor__Fleet__Routers__fast__Simulated"] = "true",
                ["Cortensor__Fleet__Routers__fast__Simulator__LatencyMs"] = "50", // a few short requests always in flight
                ["Cortensor__Fleet__Pools__slow__PromptFormat"] = "ChatML",
                ["Cortensor__Fleet__Pools__slow__Members__0__Router"] = "slow",
                ["Cortensor__Fleet__Pools__slow__Members__0__SessionId"] = "1",
                ["Cortensor__Fleet__Pools__fast__PromptFormat"] = "ChatML",
                ["Cortensor__Fleet__Pools__fast__Members__0__Router"] = "fast",
                ["Cortensor__Fleet__Pools__fast__Members__0__SessionId"] = "2",
                ["Cortensor__Fleet__Models__slow-model__Pool"] = "slow",
                ["Cortensor__Fleet__Models__slow-model__ContextTokens"] = "4096",
                ["Cortensor__Fleet__Models__slow-model__MaxOutputTokens"] = "256",
                ["Cortensor__Fleet__Models__fast-model__Pool"] = "fast",
                ["Cortensor__Fleet__Models__fast-model__ContextTokens"] = "4096",
                ["Cortensor__Fleet__Models__fast-model__MaxOutputTokens"] = "256",
                // Limits on (admission runs as in production), far above this test's traffic.
                ["Cortensor__RateLimits__Defaults__Key__RequestsPerSecond"] = "100000",
                ["Cortensor__RateLimits__Defaults__Key__ConcurrentRequests"] = "10000",
                ["Logging__LogLevel__Default"] = "Information",
                ["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning",
            };
            foreach (var (name, value) in settings.Concat(extra))
            {
                info.Environment[name] = value;
            }

            var host = new HostProcess(Process.Start(info)!, new Uri(url));
            host._process.OutputDataReceived += (_, e) => host.OnLine(e.Data);
            host._process.ErrorDataReceived += (_, e) => host.OnLine(e.Data);
            host._process.BeginOutputReadLine();
            host._process.BeginErrorReadLine();
            return host;
        }

        /// <summary>Waits until the host answers <c>/health/live</c> (and, on a first start, prints its key); returns the key.</summary>
        public async Task<string> ReadyAsync(bool expectKey)
        {
            using var http = new HttpClient { BaseAddress = BaseUrl, Timeout = TimeSpan.FromSeconds(5) };
            var deadline = Stopwatch.StartNew();
            while (true)
            {
                Assert.False(_process.HasExited, "The host exited on start:\n" + Log);
                try
                {
                    using var response = await http.GetAsync("/health/live");
                    if (response.IsSuccessStatusCode)
                    {
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                    // Not listening yet.
                }

                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "The host did not start:\n" + Log);
                await Task.Delay(100);
            }

            return expectKey ? await _key.Task.WaitAsync(TimeSpan.FromSeconds(30)) : "";
        }

        public void Kill() => _process.Kill();

        /// <summary>SIGTERM, as a service manager would send; returns the exit code.</summary>
        public async Task<int> StopGracefullyAsync()
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync();
            }

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(timeout.Token);
            return _process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync();
            _process.Dispose();
        }

        private void OnLine(string? line)
        {
            if (line is null)
            {
                return;
            }

            lock (_log)
            {
                _log.AppendLine(line);
            }

            if (line.StartsWith(KeyLinePrefix, StringComparison.Ordinal))
            {
                _key.TrySetResult(line[KeyLinePrefix.Length..].Trim());
            }
        }

        private static string DotnetHost()
        {
            var current = Environment.ProcessPath;
            if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
            {
                return current;
            }

            var cli = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
            return !string.IsNullOrEmpty(cli) && File.Exists(cli) ? cli : "dotnet";
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }
}
