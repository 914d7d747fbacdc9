using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Postgres.Usage;
using Cortensor.Portal.Storage.Tests.Postgres;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Xunit.Abstractions;

namespace Cortensor.Portal.Storage.Tests.Outage;

/// <summary>
/// The real <see cref="UsageWriter"/> on the real <see cref="PostgresUsageStore"/>, against a PostgreSQL server of
/// the test's own (127.0.0.1, free port) that the test kills with <c>pg_ctl stop -m immediate</c> and starts
/// again. Every recorded request id must end up in <c>usage_events</c> and <c>request_logs</c> exactly once.
/// These tests always start their own server, whatever <c>PG_CONNECTION</c> says: they must be able to stop it.
/// </summary>
public sealed class PostgresOutageTests(ITestOutputHelper output)
{
    private const int Records = 20_000;
    private const int Producers = 4;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    [Fact(Timeout = 150_000)]
    public async Task StopPostgresMidBurst_RestartIt_EveryRecordArrivesExactlyOnce()
    {
        var clock = Stopwatch.StartNew();
        using var fixture = await OutageFixture.StartAsync();
        var writer = fixture.NewWriter();
        await writer.StartAsync(CancellationToken.None);
        var ids = NewIds();
        var recorded = 0;
        var down = new ManualResetEventSlim();
        var up = new ManualResetEventSlim();

        // Producers record without waiting for the database; they pause only so that the outage surely falls
        // inside the burst: at half their share until the server is down, at three quarters until it is back.
        var producers = Enumerable.Range(0, Producers).Select(p => new Thread(() =>
        {
            var mine = ids.Where((_, i) => i % Producers == p).ToArray();
            for (var i = 0; i < mine.Length; i++)
            {
                // No assertion on this thread (it would end the process): a missed signal shows as a timeout below.
                if ((i == mine.Length / 2 && !down.Wait(Deadline)) || (i == mine.Length * 3 / 4 && !up.Wait(Deadline)))
                {
                    return;
                }

                writer.Record(NewRecord(mine[i]));
                Interlocked.Increment(ref recorded);
                if (i % 20 == 0)
                {
                    Thread.Sleep(1);
                }
            }
        })).ToList();
        producers.ForEach(t => t.Start());

        await WaitUntilAsync(() => Volatile.Read(ref recorded) >= Records / 4, clock, "a quarter of the burst recorded");
        fixture.Server.StopImmediately(); // the writer's batches in flight fail or are cut mid-COPY
        var writtenBeforeStop = Volatile.Read(ref recorded);
        down.Set();
        await WaitUntilAsync(() => Volatile.Read(ref recorded) >= Records * 3 / 4, clock, "three quarters recorded while the server is down");
        await WaitUntilAsync(() => !writer.IsSinkHealthy || writer.SpillBytes > 0, clock, "the writer to notice the outage");
        fixture.Server.Start();
        up.Set();
        producers.ForEach(t => Assert.True(t.Join(Deadline)));

        // Back up: the writer probes, recovers and replays the spill; then a graceful stop drains the queue.
        await WaitUntilAsync(() => writer.IsSinkHealthy && writer.SpillBytes == 0 && writer.QueueDepth == 0, clock, "the writer to recover and replay its spill");
        using (var stop = new CancellationTokenSource(Remaining(clock)))
        {
            await writer.StopAsync(stop.Token);
        }

        await writer.DisposeAsync();
        output.WriteLine($"Stopped the server after {writtenBeforeStop:N0} records; done in {clock.Elapsed.TotalSeconds:F1} s.");

        await fixture.AssertExactlyOnceAsync(ids);
        Assert.Empty(Directory.GetFiles(fixture.SpillDirectory));
        Assert.True(clock.Elapsed < Deadline, $"took {clock.Elapsed}");
    }

    [Fact(Timeout = 150_000)]
    public async Task GracefulShutdownWhilePostgresIsDown_NextWriterReplaysTheSpill_ExactlyOnce()
    {
        var clock = Stopwatch.StartNew();
        using var fixture = await OutageFixture.StartAsync();
        var ids = NewIds();

        var first = fixture.NewWriter();
        await first.StartAsync(CancellationToken.None);
        foreach (var id in ids.Take(Records / 2))
        {
            first.Record(NewRecord(id));
        }

        fixture.Server.StopImmediately();
        await RecordFromThreadsAsync(first, ids.Skip(Records / 2).ToArray());
        using (var stop = new CancellationTokenSource(Remaining(clock)))
        {
            await first.StopAsync(stop.Token); // the sink is down: the queue goes to the spill file
        }

        await first.DisposeAsync();
        var spilled = Directory.GetFiles(fixture.SpillDirectory).Sum(f => new FileInfo(f).Length);
        Assert.True(spilled > 0, "the records recorded while the server was down should be in the spill file");

        fixture.Server.Start();
        var second = fixture.NewWriter();
        await second.StartAsync(CancellationToken.None); // replays the leftover spill files
        await WaitUntilAsync(() => second.IsSinkHealthy && second.SpillBytes == 0, clock, "the new writer to replay the spill");
        using (var stop = new CancellationTokenSource(Remaining(clock)))
        {
            await second.StopAsync(stop.Token);
        }

        await second.DisposeAsync();
        output.WriteLine($"{spilled:N0} spill bytes replayed; done in {clock.Elapsed.TotalSeconds:F1} s.");

        await fixture.AssertExactlyOnceAsync(ids);
        Assert.Empty(Directory.GetFiles(fixture.SpillDirectory));
        Assert.True(clock.Elapsed < Deadline, $"took {clock.Elapsed}");
    }

    private static string[] NewIds()
    {
        var run = Guid.NewGuid().ToString("N")[..6];
        return Enumerable.Range(0, Records).Select(i => $"req_{run}_{i:D6}").ToArray();
    }

    private static UsageRecord NewRecord(string id) => PostgresTestData.NewUsage(id, DateTimeOffset.UtcNow, 3, 2);

    private static Task RecordFromThreadsAsync(UsageWriter writer, string[] ids) =>
        Task.WhenAll(Enumerable.Range(0, Producers).Select(p => Task.Run(() =>
        {
            for (var i = p; i < ids.Length; i += Producers)
            {
                writer.Record(NewRecord(ids[i]));
            }
        })));

    private static TimeSpan Remaining(Stopwatch clock)
    {
        var left = Deadline - clock.Elapsed;
        return left > TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, Stopwatch clock, string what)
    {
        while (!condition())
        {
            if (clock.Elapsed > Deadline)
            {
                throw new TimeoutException($"Timed out after {clock.Elapsed.TotalSeconds:F0} s waiting for {what}.");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>A server of the test's own, a migrated schema, a store and a spill folder.</summary>
    private sealed class OutageFixture : IDisposable
    {
        private readonly ServiceProvider _services;

        private OutageFixture(PostgresServerProcess server, NpgsqlDataSource dataSource, PostgresUsageStore store, string spillDirectory)
        {
            Server = server;
            DataSource = dataSource;
            Store = store;
            SpillDirectory = spillDirectory;
            _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        }

        public PostgresServerProcess Server { get; }

        public NpgsqlDataSource DataSource { get; }

        public PostgresUsageStore Store { get; }

        public string SpillDirectory { get; }

        public static async Task<OutageFixture> StartAsync()
        {
            // Durable settings: with synchronous_commit=off (the other tests' server) a COMMIT the writer was told
            // succeeded can vanish in an immediate stop, and a whole batch would be lost for the server's reasons.
            var server = PostgresServerProcess.StartNew(durable: true);
            try
            {
                // Short timeouts so a dead server fails a batch quickly instead of hanging it.
                var options = Options.Create(new PostgresStorageOptions
                {
                    ConnectionString = server.ConnectionString + ";Timeout=3;Command Timeout=20",
                    Schema = "outage",
                });
                var dataSource = PostgresDataSourceFactory.Create(options.Value);
                await new PostgresMigrator(dataSource, options, TimeProvider.System).MigrateAsync();
                await new PostgresPartitionMaintenance(dataSource, options, TimeProvider.System).MaintainPartitionsAsync();
                var spill = Path.Combine(Path.GetTempPath(), "cportal-outage-" + Guid.NewGuid().ToString("N")[..8]);
                return new OutageFixture(server, dataSource, new PostgresUsageStore(dataSource, options), spill);
            }
            catch
            {
                server.Dispose();
                throw;
            }
        }

        /// <summary>Small batches, a small queue (so a full queue spills too) and quick retries.</summary>
        public UsageWriter NewWriter() => new(
            Store,
            Options.Create(new UsageWriterOptions
            {
                SpillDirectory = SpillDirectory,
                QueueCapacity = 2_000,
                MaxBatchSize = 500,
                MaxBatchDelay = TimeSpan.FromMilliseconds(20),
                RetryInitialDelay = TimeSpan.FromMilliseconds(100),
                RetryMaxDelay = TimeSpan.FromMilliseconds(500),
            }),
            TimeProvider.System,
            _services.GetRequiredService<IMeterFactory>(),
            NullLogger<UsageWriter>.Instance);

        public async Task AssertExactlyOnceAsync(string[] ids)
        {
            foreach (var table in new[] { "usage_events", "request_logs" })
            {
                await using var command = DataSource.CreateCommand(
                    $"SELECT count(*), count(DISTINCT request_id), count(*) FILTER (WHERE request_id = ANY ($1)) FROM \"outage\".{table}");
                command.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = ids });
                await using var reader = await command.ExecuteReaderAsync();
                Assert.True(await reader.ReadAsync());
                Assert.Equal((table, (long)ids.Length), (table, reader.GetInt64(0)));
                Assert.Equal((table, (long)ids.Length), (table, reader.GetInt64(1)));
                Assert.Equal((table, (long)ids.Length), (table, reader.GetInt64(2)));
            }
        }

        public void Dispose()
        {
            _services.Dispose();
            DataSource.Dispose();
            Server.Dispose();
            try
            {
                Directory.Delete(SpillDirectory, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }
}
