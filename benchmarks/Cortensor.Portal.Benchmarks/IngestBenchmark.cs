using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Cortensor.Portal.Storage.Postgres;
using Cortensor.Portal.Storage.Postgres.Configuration;
using Cortensor.Portal.Storage.Postgres.Migrations;
using Cortensor.Portal.Storage.Postgres.Usage;
using Cortensor.Portal.Storage.Sqlite.Database;
using Cortensor.Portal.Storage.Sqlite.Migrations;
using Cortensor.Portal.Storage.Sqlite.Usage;
using Cortensor.Portal.Storage.Tests.Postgres;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Benchmarks;

/// <summary>
/// Usage-event ingest, side by side: straight into each store (steady state after warm-up), end to end through
/// <see cref="UsageWriter"/> into each store, and the writer queue's memory per queued record.
/// </summary>
internal static class IngestBenchmark
{
    public const double GoalPerSecond = 50_000;

    private static List<UsageRecord[]>? _lastBatches;

    public const string Usage =
        """
        usage: ingest [--batches 20] [--batch-size 5000] [--warmup 4] [--writer-records 100000]
                      [--queue-records 100000] [--producers 2] [--only all|postgres|sqlite|memory]
                      [--ids v7|random] [--write-connections N] [--unsafe-fast-server]
        --ids: request ids minted like the gateway's (v7, time-ordered; the default) or random GUIDs.
        --write-connections: PostgresStorageOptions.UsageWriteConnections (default: the store's, 2).
        Postgres: PG_CONNECTION (key=value form), else a throwaway local server on 127.0.0.1 with
        PostgreSQL's durable defaults (--unsafe-fast-server: fsync/synchronous_commit/full_page_writes off).
        """;

    public static async Task<int> RunAsync(IngestSettings settings)
    {
        Console.WriteLine($"Machine: {Environment.ProcessorCount} logical cores, {Environment.OSVersion}, .NET {Environment.Version}");
        Console.WriteLine($"Store runs: {settings.WarmupBatches} warm-up + {settings.Batches} timed batches of {settings.BatchSize:N0}; writer runs: {settings.WriterRecords:N0} records from {settings.ProducerThreads} threads; request ids: {settings.Ids}.");
        var rows = new List<Row>();
        var factory = new RecordFactory(randomIds: settings.Ids == "random");

        if (settings.Runs("postgres"))
        {
            await RunPostgresAsync(settings, factory, rows);
        }

        if (settings.Runs("sqlite"))
        {
            await RunSqliteAsync(settings, factory, rows);
        }

        Console.WriteLine();
        var cores = Environment.ProcessorCount;
        Console.WriteLine($"| measurement | records | seconds | records/s | vs 50k/s goal | client CPU µs/record | server CPU µs/record | CPU-bound records/s on {cores} cores |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in rows)
        {
            var rate = row.Records / row.Seconds;
            var client = row.Cpu.Client.TotalMicroseconds / row.Records;
            var server = row.Cpu.Server.TotalMicroseconds / row.Records;
            var serverText = row.Cpu.Server > TimeSpan.Zero ? $"{server:F1}" : "n/a";

            // If CPU were the only limit and all cores did this work.
            var bound = 1_000_000 / ((client + server) / cores);
            Console.WriteLine($"| {row.Name} | {row.Records:N0} | {row.Seconds:F2} | {rate:N0} | {rate / GoalPerSecond:F2}x | {client:F1} | {serverText} | {bound:N0} |");
        }

        Console.WriteLine($"Load average now: {LoadAverage()} (other work on the machine lowers the wall-clock rates, not the CPU per record).");

        if (settings.Runs("memory"))
        {
            await MeasureQueueMemoryAsync(settings, factory);
        }

        return 0;
    }

    private static async Task RunPostgresAsync(IngestSettings settings, RecordFactory factory, List<Row> rows)
    {
        PostgresServerProcess? server = null;
        var connectionString = Environment.GetEnvironmentVariable("PG_CONNECTION");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            Console.WriteLine($"PG_CONNECTION not set: starting a throwaway PostgreSQL ({(settings.UnsafeFastServer ? "fsync off" : "durable defaults")}) …");
            server = PostgresServerProcess.StartNew(durable: !settings.UnsafeFastServer);
            connectionString = server.ConnectionString;
        }

        try
        {
            var storageOptions = new PostgresStorageOptions
            {
                ConnectionString = connectionString,
                Schema = "bench_" + Guid.NewGuid().ToString("N")[..8],
            };
            if (settings.WriteConnections is { } connections)
            {
                storageOptions.UsageWriteConnections = connections;
            }

            var options = Options.Create(storageOptions);
            Console.WriteLine($"PostgresStorageOptions.UsageWriteConnections = {storageOptions.UsageWriteConnections}");
            await using var dataSource = PostgresDataSourceFactory.Create(options.Value);
            await using (var info = dataSource.CreateCommand("SELECT current_setting('server_version') || ', fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') || ', full_page_writes=' || current_setting('full_page_writes')"))
            {
                Console.WriteLine($"PostgreSQL {await info.ExecuteScalarAsync()}");
            }

            await new PostgresMigrator(dataSource, options, TimeProvider.System).MigrateAsync();
            await new PostgresPartitionMaintenance(dataSource, options, TimeProvider.System).MaintainPartitionsAsync();
            try
            {
                var store = new PostgresUsageStore(dataSource, options);
                rows.Add(await StoreAsync("Postgres: PostgresUsageStore.WriteBatchAsync", store, settings, factory));
                rows.Add(await ReplayAsync("Postgres: replay of the timed batches (all duplicates)", store, settings));
                rows.Add(await WriterAsync("Postgres: UsageWriter → PostgresUsageStore", store, settings, factory));
                await using var count = dataSource.CreateCommand($"SELECT count(*) FROM \"{options.Value.Schema}\".usage_events");
                Console.WriteLine($"Postgres: {await count.ExecuteScalarAsync():N0} usage events stored.");
            }
            finally
            {
                await using var drop = dataSource.CreateCommand($"DROP SCHEMA \"{options.Value.Schema}\" CASCADE");
                await drop.ExecuteNonQueryAsync();
            }
        }
        finally
        {
            server?.Dispose();
        }
    }

    private static async Task RunSqliteAsync(IngestSettings settings, RecordFactory factory, List<Row> rows)
    {
        var folder = Path.Combine(Path.GetTempPath(), "cportal-bench-" + Guid.NewGuid().ToString("N")[..8]);
        var database = new SqliteDatabase(Path.Combine(folder, "portal.db"));
        try
        {
            await new SqliteMigrator(database).MigrateAsync();
            var store = new SqliteUsageStore(database);
            rows.Add(await StoreAsync("SQLite: SqliteUsageStore.WriteBatchAsync", store, settings, factory));
            rows.Add(await WriterAsync("SQLite: UsageWriter → SqliteUsageStore", store, settings, factory));
        }
        finally
        {
            using (var connection = new SqliteConnection(database.ConnectionString))
            {
                SqliteConnection.ClearPool(connection);
            }

            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>Warm-up batches, then the timed ones; records are built before the clock starts.</summary>
    private static async Task<Row> StoreAsync(string name, IUsageSink sink, IngestSettings settings, RecordFactory factory)
    {
        for (var i = 0; i < settings.WarmupBatches; i++)
        {
            await sink.WriteBatchAsync(factory.NextBatch(settings.BatchSize), CancellationToken.None);
        }

        var batches = Enumerable.Range(0, settings.Batches).Select(_ => factory.NextBatch(settings.BatchSize)).ToList();
        var cpu = CpuSample.Take();
        var watch = Stopwatch.StartNew();
        foreach (var batch in batches)
        {
            await sink.WriteBatchAsync(batch, CancellationToken.None);
        }

        watch.Stop();
        _lastBatches = batches;
        return new Row(name, (long)settings.Batches * settings.BatchSize, watch.Elapsed.TotalSeconds, CpuSample.Take() - cpu);
    }

    /// <summary>The batches of the last <see cref="StoreAsync"/> again: what a replay after an outage costs.</summary>
    private static async Task<Row> ReplayAsync(string name, IUsageSink sink, IngestSettings settings)
    {
        var batches = _lastBatches ?? throw new InvalidOperationException("No batches to replay.");
        var cpu = CpuSample.Take();
        var watch = Stopwatch.StartNew();
        foreach (var batch in batches)
        {
            await sink.WriteBatchAsync(batch, CancellationToken.None);
        }

        watch.Stop();
        return new Row(name, (long)settings.Batches * settings.BatchSize, watch.Elapsed.TotalSeconds, CpuSample.Take() - cpu);
    }

    /// <summary>
    /// Producers call <see cref="UsageWriter.Record"/> as fast as they can; the clock stops when the sink has
    /// acknowledged every record. Default writer options (queue 100,000, batches of 5,000, 200 ms delay).
    /// </summary>
    private static async Task<Row> WriterAsync(string name, IUsageSink sink, IngestSettings settings, RecordFactory factory)
    {
        var counting = new CountingSink(sink);
        var spill = Path.Combine(Path.GetTempPath(), "cportal-bench-spill-" + Guid.NewGuid().ToString("N")[..8]);
        using var meters = new BenchmarkMeterFactory();
        var writer = new UsageWriter(counting, Options.Create(new UsageWriterOptions { SpillDirectory = spill }), TimeProvider.System, meters, NullLogger<UsageWriter>.Instance);
        try
        {
            await writer.StartAsync(CancellationToken.None);
            var warmup = Math.Max(1, settings.WriterRecords / 10);
            foreach (var record in factory.NextBatch(warmup))
            {
                writer.Record(record);
            }

            await counting.WaitForAsync(warmup);

            var records = factory.NextBatch(settings.WriterRecords);
            var producers = settings.ProducerThreads;
            var cpu = CpuSample.Take();
            var watch = Stopwatch.StartNew();
            var threads = Enumerable.Range(0, producers).Select(p => new Thread(() =>
            {
                for (var i = p; i < records.Length; i += producers)
                {
                    writer.Record(records[i]);
                }
            })).ToList();
            threads.ForEach(t => t.Start());
            threads.ForEach(t => t.Join());
            await counting.WaitForAsync(warmup + records.Length);
            watch.Stop();
            var used = CpuSample.Take() - cpu;
            if (writer.SpillBytes > 0)
            {
                Console.WriteLine($"{name}: {writer.SpillBytes:N0} bytes went through the spill file (queue full).");
            }

            await writer.StopAsync(CancellationToken.None);
            return new Row(name, records.Length, watch.Elapsed.TotalSeconds, used);
        }
        finally
        {
            await writer.DisposeAsync();
            Directory.Delete(spill, recursive: true);
        }
    }

    /// <summary>
    /// Fills the queue while the sink is blocked and reports the memory it holds per queued record: the queue's
    /// own overhead, and that plus the records themselves (what a full queue costs).
    /// </summary>
    private static async Task MeasureQueueMemoryAsync(IngestSettings settings, RecordFactory factory)
    {
        var n = settings.QueueRecords;
        var blocked = new BlockedSink();
        var spill = Path.Combine(Path.GetTempPath(), "cportal-bench-spill-" + Guid.NewGuid().ToString("N")[..8]);
        using var meters = new BenchmarkMeterFactory();
        var options = new UsageWriterOptions { SpillDirectory = spill, QueueCapacity = n + 10, MaxBatchSize = 1, MaxBatchDelay = TimeSpan.Zero };
        var writer = new UsageWriter(blocked, Options.Create(options), TimeProvider.System, meters, NullLogger<UsageWriter>.Instance);
        try
        {
            await writer.StartAsync(CancellationToken.None);
            writer.Record(factory.Next());
            await blocked.Entered.Task; // the loop holds one record in the sink; the queue is empty

            // The records alone.
            var before = Settle();
            var records = factory.NextBatch(n);
            var withRecords = Settle();
            var perRecordObjects = (withRecords - before - (n * (long)IntPtr.Size)) / (double)n;

            // The queue's own memory: queue the same records (the array keeps them alive either way).
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            foreach (var record in records)
            {
                writer.Record(record);
            }

            var allocatedPerRecord = (GC.GetAllocatedBytesForCurrentThread() - allocatedBefore) / (double)n;
            var queued = Settle();
            var perRecordQueue = (queued - withRecords) / (double)n;
            var depth = writer.QueueDepth;
            GC.KeepAlive(records);

            Console.WriteLine();
            Console.WriteLine($"Queue memory (UsageWriter, sink blocked, {depth:N0} records queued):");
            Console.WriteLine("| what | bytes per queued record |");
            Console.WriteLine("|---|---:|");
            Console.WriteLine($"| queue overhead (channel storage), retained | {perRecordQueue:F1} |");
            Console.WriteLine($"| allocated by Record() (amortised growth of the channel's buffer) | {allocatedPerRecord:F1} |");
            Console.WriteLine($"| the record itself (UsageRecord + UsageEvent + RequestLogEntry + its request-id string) | {perRecordObjects:F1} |");
            Console.WriteLine($"| total held per queued record | {perRecordQueue + perRecordObjects:F1} |");
            Console.WriteLine($"A full default queue (QueueCapacity = {UsageWriterOptions.DefaultQueueCapacity:N0}) holds about {(perRecordQueue + perRecordObjects) * UsageWriterOptions.DefaultQueueCapacity / (1024 * 1024):F1} MiB.");
        }
        finally
        {
            blocked.Release();
            await writer.DisposeAsync();
            Directory.Delete(spill, recursive: true);
        }
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private static long Settle()
    {
        for (var i = 0; i < 3; i++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
            GC.WaitForPendingFinalizers();
        }

        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private sealed record Row(string Name, long Records, double Seconds, CpuUsage Cpu);

    private sealed class CountingSink(IUsageSink inner) : IUsageSink
    {
        private long _written;

        public async Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
        {
            await inner.WriteBatchAsync(batch, cancellationToken);
            Interlocked.Add(ref _written, batch.Count);
        }

        public async Task WaitForAsync(long count)
        {
            var deadline = Stopwatch.StartNew();
            while (Interlocked.Read(ref _written) < count)
            {
                if (deadline.Elapsed > TimeSpan.FromMinutes(10))
                {
                    throw new TimeoutException($"Only {Interlocked.Read(ref _written):N0} of {count:N0} records were written.");
                }

                await Task.Delay(2);
            }
        }
    }

    private sealed class BlockedSink : IUsageSink
    {
        private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Entered { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
        {
            Entered.TrySetResult();
            await _release.Task.WaitAsync(cancellationToken);
        }

        public void Release() => _release.TrySetResult();
    }

    private sealed class BenchmarkMeterFactory : IMeterFactory
    {
        private readonly List<Meter> _meters = [];

        public Meter Create(MeterOptions options)
        {
            var meter = new Meter(options);
            lock (_meters)
            {
                _meters.Add(meter);
            }

            return meter;
        }

        public void Dispose()
        {
            lock (_meters)
            {
                _meters.ForEach(m => m.Dispose());
                _meters.Clear();
            }
        }
    }
}
