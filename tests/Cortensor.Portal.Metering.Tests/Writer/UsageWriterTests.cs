using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.Tests.TestDoubles;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Cortensor.Portal.Metering.Tests.Writer;

public sealed class UsageWriterTests
{
    [Fact]
    public async Task Record_HealthySink_BatchesReachSinkWithoutStop()
    {
        var sink = new RecordingSink();
        await using var harness = new WriterHarness(sink);
        await harness.Writer.StartAsync(default);

        for (var i = 0; i < 100; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        await Eventually.TrueAsync(() => sink.Store.Count == 100, "all 100 records are in the sink");
        Assert.True(harness.Writer.IsSinkHealthy);
        Assert.Equal(0, harness.Writer.QueueDepth);
        Assert.Equal(0, harness.Writer.SpillBytes);
        Assert.Empty(harness.SpillFiles());
    }

    [Fact]
    public async Task Record_MoreThanMaxBatchSize_NoBatchExceedsMaxBatchSize()
    {
        var sink = new RecordingSink();
        await using var harness = new WriterHarness(sink, o =>
        {
            o.MaxBatchSize = 7;
            o.MaxBatchDelay = TimeSpan.FromMilliseconds(50);
        });

        // Queued before start, so full batches are available at once.
        for (var i = 0; i < 500; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        await harness.Writer.StartAsync(default);
        await harness.StopAsync();

        Assert.Equal(500, sink.Store.Count);
        Assert.All(sink.BatchSizes, size => Assert.InRange(size, 1, 7));
        Assert.Contains(7, sink.BatchSizes);
        Assert.True(sink.Calls < 500, "records are written in batches, not one by one");
    }

    [Fact]
    public async Task StopAsync_RecordsQueuedBeforeStop_AllInSinkWithoutWaitingForBatchDelay()
    {
        // Fake time never advances: only the stop can end the batch delay.
        var time = new FakeTimeProvider(TestRecords.At);
        var sink = new RecordingSink();
        await using var harness = new WriterHarness(sink, o => o.MaxBatchDelay = TimeSpan.FromHours(1), time);
        await harness.Writer.StartAsync(default);

        for (var i = 0; i < 1234; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        await harness.StopAsync();

        Assert.Equal(1234, sink.Store.Count);
        Assert.Equal(0, harness.Writer.QueueDepth);
        Assert.Equal(0, harness.Writer.SpillBytes);
        Assert.Empty(harness.SpillFiles());
    }

    [Fact]
    public async Task Record_FlakySink_EveryRecordArrivesExactlyOnceAndSpillIsReplayed()
    {
        var sink = new FlakySink();
        await using var harness = new WriterHarness(sink);
        using var spillGauge = new MetricCollector<long>(harness.MeterFactory, UsageWriter.MeterName, "cortensor.metering.spill.size");
        using var spilled = new MetricCollector<long>(harness.MeterFactory, UsageWriter.MeterName, "cortensor.metering.records.spilled");
        using var failures = new MetricCollector<long>(harness.MeterFactory, UsageWriter.MeterName, "cortensor.metering.batch.failures");
        using var written = new MetricCollector<long>(harness.MeterFactory, UsageWriter.MeterName, "cortensor.metering.records.written");
        await harness.Writer.StartAsync(default);

        // Outage: records keep coming while every write fails.
        for (var i = 0; i < 300; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
            if (i % 50 == 0)
            {
                await Task.Delay(5);
            }
        }

        await Eventually.TrueAsync(
            () => sink.Failures >= 3 && spilled.GetMeasurementSnapshot().Sum(m => m.Value) == 300,
            "the sink failed at least 3 times and every record was spilled");

        Assert.False(harness.Writer.IsSinkHealthy);
        Assert.True(harness.Writer.SpillBytes > 0);
        Assert.NotEmpty(harness.SpillFiles());
        spillGauge.RecordObservableInstruments();
        Assert.True(spillGauge.LastMeasurement!.Value > 0);
        Assert.Equal(300, spilled.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(0, sink.Store.Count);

        // The database comes back.
        sink.Failing = false;
        for (var i = 300; i < 400; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        await Eventually.TrueAsync(() => sink.Store.Count == 400 && harness.Writer.SpillBytes == 0, "every record is stored and the spill replayed");
        await harness.StopAsync();

        Assert.True(harness.Writer.IsSinkHealthy);
        Assert.Empty(harness.SpillFiles());
        spillGauge.RecordObservableInstruments();
        Assert.Equal(0, spillGauge.LastMeasurement!.Value);
        Assert.Equal(400, sink.Store.Count);
        Assert.Equal(400, sink.Received.Count);
        Assert.All(Enumerable.Range(0, 400), i => Assert.True(sink.Store.Contains(TestRecords.Id(i))));
        Assert.Equal(sink.Failures, failures.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.True(written.GetMeasurementSnapshot().Sum(m => m.Value) >= 400);

        // One warning per outage, not one per failed batch.
        Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Name == "SinkUnavailable");
        Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Name == "SinkRecovered");
    }

    [Fact]
    public async Task Record_QueueFull_SpillsAndDropsNothing()
    {
        var sink = new GatedSink();
        await using var harness = new WriterHarness(sink, o =>
        {
            o.QueueCapacity = 10;
            o.MaxBatchSize = 5;
        });
        using var depth = new MetricCollector<long>(harness.MeterFactory, UsageWriter.MeterName, "cortensor.metering.queue.depth");
        using var spilled = new MetricCollector<long>(harness.MeterFactory, UsageWriter.MeterName, "cortensor.metering.records.spilled");
        await harness.Writer.StartAsync(default);

        for (var i = 0; i < 1000; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        Assert.InRange(harness.Writer.QueueDepth, 0, 10);
        depth.RecordObservableInstruments();
        Assert.InRange(depth.LastMeasurement!.Value, 0, 10);
        Assert.True(harness.Writer.SpillBytes > 0);
        var spilledWhileBlocked = spilled.GetMeasurementSnapshot().Sum(m => m.Value);
        Assert.InRange(spilledWhileBlocked, 1000 - 10 - 5, 1000);
        Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Name == "QueueFull");

        sink.Open();
        await harness.StopAsync();

        Assert.Equal(1000, sink.Store.Count);
        Assert.All(Enumerable.Range(0, 1000), i => Assert.True(sink.Store.Contains(TestRecords.Id(i))));
        Assert.Equal(0, harness.Writer.SpillBytes);
        Assert.Empty(harness.SpillFiles());
    }

    [Fact]
    public async Task StartAsync_LeftoverSpillFilesWithTornLine_ReplaysThemAndSkipsTornLine()
    {
        var directory = WriterHarness.NewTempDirectory();
        Directory.CreateDirectory(directory);
        // The active file of a crashed run: two good lines, then a write torn mid-record.
        await File.WriteAllTextAsync(Path.Combine(directory, "usage-spill.jsonl"),
            Line("req_a", 11) + "\n" + Line("req_b", 12) + "\n" + """{"usage":{"requestId":"req_torn","occurredAt":"2026-03""");
        // A file whose replay the crash interrupted; req_b again (replays may repeat an id).
        await File.WriteAllTextAsync(Path.Combine(directory, "usage-spill-0638765000000000000-000001.replaying"),
            Line("req_b", 12) + "\n" + Line("req_c", 13) + "\n");

        var sink = new RecordingSink();
        await using var harness = new WriterHarness(sink, spillDirectory: directory);
        Assert.Equal(0, sink.Store.Count);
        await harness.Writer.StartAsync(default);

        await Eventually.TrueAsync(() => harness.Writer.SpillBytes == 0 && harness.SpillFiles().Length == 0, "the leftover files are replayed and deleted");
        await harness.StopAsync();

        Assert.Equal(new[] { "req_a", "req_b", "req_c" }, sink.Store.Records.Select(r => r.Usage.RequestId).Order(StringComparer.Ordinal));
        Assert.False(sink.Store.Contains("req_torn"));
        Assert.True(sink.Store.TryGet("req_a", out var a));
        Assert.Equal(11, a.Usage.PromptTokens);
        Assert.Equal("/v1/chat/completions", a.Log.Path);
        Assert.Equal(TestRecords.At, a.Usage.OccurredAt);
        var skipped = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Name == "SpillLineSkipped");
        Assert.Equal(LogLevel.Warning, skipped.Level);

        static string Line(string id, int promptTokens) =>
            $$$"""{"usage":{"requestId":"{{{id}}}","occurredAt":"2026-03-01T12:00:00+00:00","orgId":"org_1","keyId":"key_1","model":"llama-3","pool":"pool-a","outcome":0,"promptTokens":{{{promptTokens}}},"completionTokens":5,"tokensEstimated":false,"stream":false},"log":{"requestId":"{{{id}}}","occurredAt":"2026-03-01T12:00:00+00:00","orgId":"org_1","keyId":"key_1","method":"POST","path":"/v1/chat/completions","model":"llama-3","statusCode":200,"latencyMs":12}}""";
    }

    [Fact]
    public async Task Record_EightThreadsAndRandomSinkFailures_StoresExactly40000DistinctIds()
    {
        var sink = new RandomFailingSink(seed: 20260301, failureRate: 0.2);
        await using var harness = new WriterHarness(sink, o =>
        {
            o.QueueCapacity = 2_000;
            o.MaxBatchSize = 500;
            o.RetryInitialDelay = TimeSpan.FromMilliseconds(2);
            o.RetryMaxDelay = TimeSpan.FromMilliseconds(10);
        });
        await harness.Writer.StartAsync(default);

        var threads = Enumerable.Range(0, 8).Select(t => new Thread(() =>
        {
            for (var i = 0; i < 5_000; i++)
            {
                harness.Writer.Record(TestRecords.Create($"req_{t}_{i}"));
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());

        await Eventually.TrueAsync(() => sink.Store.Count == 40_000 && harness.Writer.SpillBytes == 0, "all 40,000 records are stored", timeoutMs: 20_000);
        await harness.StopAsync();

        Assert.Equal(40_000, sink.Store.Count);
        Assert.Equal(40_000, sink.Received.Count);
        Assert.True(sink.Failures > 0, "the seeded sink failed some batches");
        Assert.Empty(harness.SpillFiles());
    }

    [Fact]
    public async Task StopAsync_ShutdownDeadlineWithHungSink_SpillsRestForNextStart()
    {
        var directory = WriterHarness.NewTempDirectory();
        var hung = new HungSink();
        await using (var first = new WriterHarness(hung, o => o.MaxBatchSize = 10, spillDirectory: directory) { DeleteSpillDirectoryOnDispose = false })
        {
            await first.Writer.StartAsync(default);
            for (var i = 0; i < 100; i++)
            {
                first.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
            }

            var stop = first.StopAsync(TimeSpan.FromMilliseconds(200));
            Assert.Same(stop, await Task.WhenAny(stop, Task.Delay(5_000)));
            await stop;
            Assert.True(first.Writer.SpillBytes > 0);
            Assert.Single(first.Logger.Collector.GetSnapshot(), r => r.Id.Name == "ShutdownDeadlineReached");

            // Recorded after the stop: spilled too, not dropped.
            first.Writer.Record(TestRecords.Create(TestRecords.Id(100)));
            Assert.Equal(0, hung.Store.Count);
        }

        var sink = new RecordingSink();
        await using var second = new WriterHarness(sink, spillDirectory: directory);
        await second.Writer.StartAsync(default);
        await Eventually.TrueAsync(() => sink.Store.Count == 101, "the next start replays every spilled record");
        await second.StopAsync();
        Assert.Empty(second.SpillFiles());
    }

    [Fact]
    public async Task Record_AfterDispose_SpillsForNextStart()
    {
        var directory = WriterHarness.NewTempDirectory();
        await using (var first = new WriterHarness(new RecordingSink(), spillDirectory: directory) { DeleteSpillDirectoryOnDispose = false })
        {
            await first.Writer.DisposeAsync();
            first.Writer.Record(TestRecords.Create("req_late"));
            Assert.True(first.Writer.SpillBytes > 0);
        }

        var sink = new RecordingSink();
        await using var second = new WriterHarness(sink, spillDirectory: directory);
        await second.Writer.StartAsync(default);
        await Eventually.TrueAsync(() => sink.Store.Contains("req_late"), "the record is replayed on the next start");
    }

    [Fact]
    public async Task Record_SinkDown_ProbesWithDoublingBackoffUpToMax()
    {
        var time = new FakeTimeProvider(TestRecords.At);
        var sink = new FlakySink();
        await using var harness = new WriterHarness(sink, o =>
        {
            o.MaxBatchDelay = TimeSpan.Zero;
            o.RetryInitialDelay = TimeSpan.FromSeconds(1);
            o.RetryMaxDelay = TimeSpan.FromSeconds(4);
        }, time);
        await harness.Writer.StartAsync(default);

        harness.Writer.Record(TestRecords.Create("req_1"));
        await Eventually.TrueAsync(() => sink.Calls == 1 && harness.Writer.SpillBytes > 0, "the first write failed and was spilled");

        // Probes due after 1 s, then 2 s, then 4 s, then 4 s (the maximum).
        // The sink counts a call before the writer has handled its failure (and set the next probe time from the
        // clock), so wait for the failure's log line before moving the fake clock; otherwise the test races it.
        int FailuresHandled() => harness.Logger.Collector.GetSnapshot().Count(r => r.Id.Name is "SinkUnavailable" or "SinkProbeFailed");
        var expectedCalls = 1;
        foreach (var backoff in new[] { 1, 2, 4, 4 })
        {
            await Eventually.TrueAsync(() => FailuresHandled() == expectedCalls, $"failure {expectedCalls} was handled");
            time.Advance(TimeSpan.FromSeconds(backoff) - TimeSpan.FromMilliseconds(100));
            await Task.Delay(50);
            Assert.Equal(expectedCalls, sink.Calls);

            time.Advance(TimeSpan.FromMilliseconds(100));
            expectedCalls++;
            await Eventually.TrueAsync(() => sink.Calls == expectedCalls, $"probe {expectedCalls} ran");
        }

        sink.Failing = false;
        await Eventually.TrueAsync(() => FailuresHandled() == expectedCalls, $"failure {expectedCalls} was handled");
        time.Advance(TimeSpan.FromSeconds(4));
        await Eventually.TrueAsync(() => sink.Store.Count == 1 && harness.Writer.IsSinkHealthy && harness.Writer.SpillBytes == 0, "the probe succeeded and replayed the spill");
        Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Name == "SinkUnavailable");
    }

    [Fact]
    public void Constructor_QueueCapacityZero_ThrowsOptionsValidationException()
    {
        var options = new UsageWriterOptions { QueueCapacity = 0, SpillDirectory = WriterHarness.NewTempDirectory() };

        using var metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => new UsageWriter(
            new InMemoryUsageSink(),
            Options.Create(options),
            TimeProvider.System,
            metrics.GetRequiredService<IMeterFactory>(),
            NullLogger<UsageWriter>.Instance));
        Assert.Contains(nameof(UsageWriterOptions.QueueCapacity), ex.Message, StringComparison.Ordinal);
    }
}
