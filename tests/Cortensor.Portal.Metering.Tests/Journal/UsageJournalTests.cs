using Cortensor.Portal.Metering.Tests.TestDoubles;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;

namespace Cortensor.Portal.Metering.Tests.Journal;

/// <summary>
/// The write-ahead usage journal of a real <see cref="UsageWriter"/>. A crash is what a killed process leaves: the
/// spill folder (journal included) copied as it is while the writer still runs, then a new writer started on the copy.
/// </summary>
public sealed class UsageJournalTests
{
    private const string JournalFolder = UsageWriter.JournalFolderName;

    private static UsageStart Start(string id, bool stream = true, int promptTokens = 40) => new()
    {
        RequestId = id,
        StartedAt = TestRecords.At,
        OrgId = "org_1",
        KeyId = "key_1",
        Model = "llama-3",
        Pool = "pool-a",
        RouterId = "router-1",
        EstimatedPromptTokens = promptTokens,
        Stream = stream,
        Method = "POST",
        Path = "/v1/chat/completions",
    };

    /// <summary>What a kill -9 leaves on disk: the folder as it is now (the page cache is what a new process reads).</summary>
    private static string CrashCopy(string spillDirectory)
    {
        var copy = WriterHarness.NewTempDirectory();
        foreach (var file in Directory.EnumerateFiles(spillDirectory, "*", SearchOption.AllDirectories))
        {
            if (Path.GetFileName(file) == "journal.lock")
            {
                continue; // empty, and locked by the live writer; a dead process holds no lock
            }

            var target = Path.Combine(copy, Path.GetRelativePath(spillDirectory, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            using var source = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            using var destination = File.Create(target);
            source.CopyTo(destination);
        }

        return copy;
    }

    private static string[] Segments(string spillDirectory)
    {
        var journal = Path.Combine(spillDirectory, JournalFolder);
        return Directory.Exists(journal) ? Directory.GetFiles(journal, "*.jsonl").Order(StringComparer.Ordinal).ToArray() : [];
    }

    [Fact]
    public async Task Restart_AfterCrash_StartedOnlyBecomeInterrupted_FinishedUnstoredAreStored_StoredOnesAreNotResent()
    {
        var firstSink = new HangingSink();
        await using var first = new WriterHarness(firstSink, o => o.JournalProgressInterval = TimeSpan.FromMilliseconds(1));
        await first.Writer.StartAsync(default);

        // Stored before the crash: journaled done, so not sent again.
        first.Writer.Started(Start("req_stored", stream: false));
        first.Writer.Record(TestRecords.Create("req_stored"));
        await Eventually.TrueAsync(() => firstSink.Store.Contains("req_stored") && first.Writer.JournalOpenCount == 0, "the first record is stored and done");

        // From here the sink hangs: finished records stay in the queue (memory) and the journal only.
        firstSink.Hang();
        first.Writer.Started(Start("req_stream_1"));
        await Task.Delay(5); // past the progress interval
        first.Writer.Streamed("req_stream_1", 7);
        first.Writer.Started(Start("req_stream_2", promptTokens: 12));
        first.Writer.Started(Start("req_short", stream: false));
        first.Writer.Record(TestRecords.Create("req_short"));
        first.Writer.Record(TestRecords.Create("req_rejected_before_admission"));

        var crashed = CrashCopy(first.SpillDirectory);
        var secondSink = new RecordingSink();
        await using (var second = new WriterHarness(secondSink, spillDirectory: crashed) { DeleteSpillDirectoryOnDispose = false })
        {
            await second.Writer.StartAsync(default);
            await Eventually.TrueAsync(() => secondSink.Store.Count == 4 && second.Writer.SpillBytes == 0, "the recovered records are stored");
            await second.StopAsync();

            Assert.False(secondSink.Received.ContainsKey("req_stored"));
            Assert.All(secondSink.Received.Values, n => Assert.Equal(1, n));

            Assert.True(secondSink.Store.TryGet("req_stream_1", out var stream1));
            Assert.Equal(UsageOutcome.Interrupted, stream1.Usage.Outcome);
            Assert.Equal(40, stream1.Usage.PromptTokens);
            Assert.Equal(7, stream1.Usage.CompletionTokens);
            Assert.True(stream1.Usage.TokensEstimated);
            Assert.True(stream1.Usage.Stream);
            Assert.Equal(TestRecords.At, stream1.Usage.OccurredAt);
            Assert.Equal("org_1", stream1.Usage.OrgId);
            Assert.Equal("key_1", stream1.Usage.KeyId);
            Assert.Equal(InterruptedUsage.StatusCode, stream1.Log.StatusCode);
            Assert.Equal(InterruptedUsage.ErrorCode, stream1.Log.ErrorCode);
            Assert.Equal("router-1", stream1.Log.RouterId);

            Assert.True(secondSink.Store.TryGet("req_stream_2", out var stream2));
            Assert.Equal(UsageOutcome.Interrupted, stream2.Usage.Outcome);
            Assert.Equal(12, stream2.Usage.PromptTokens);
            Assert.Equal(0, stream2.Usage.CompletionTokens);

            // Started and finished: the finished record, never an interrupted one.
            Assert.True(secondSink.Store.TryGet("req_short", out var shortRequest));
            Assert.Equal(TestRecords.Create("req_short"), shortRequest);
            Assert.True(secondSink.Store.TryGet("req_rejected_before_admission", out var rejected));
            Assert.Equal(TestRecords.Create("req_rejected_before_admission"), rejected);

            Assert.Contains(second.Logger.Collector.GetSnapshot(), r => r.Id.Id == 2020);
            Assert.Empty(Segments(crashed)); // everything stored: the journal is gone
        }

        // A second restart finds nothing left to send.
        var thirdSink = new RecordingSink();
        await using (var third = new WriterHarness(thirdSink, spillDirectory: crashed))
        {
            await third.Writer.StartAsync(default);
            await third.StopAsync();
            Assert.Equal(0, thirdSink.Calls);
        }

        firstSink.Release();
    }

    [Fact]
    public async Task Restart_CrashAgainBeforeTheReplayIsStored_EachRequestStoredOnceWithTheSameRecord()
    {
        var firstSink = new GatedSink(); // never stores: everything stays in the journal
        await using var first = new WriterHarness(firstSink);
        await first.Writer.StartAsync(default);
        for (var i = 0; i < 20; i++)
        {
            first.Writer.Started(Start(TestRecords.Id(i)));
            if (i % 2 == 0)
            {
                first.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
            }
        }

        var firstCrash = CrashCopy(first.SpillDirectory);

        // First restart: the store is down, so the recovered records wait in the spill file; then it crashes too.
        var downSink = new FlakySink();
        string secondCrash;
        await using (var second = new WriterHarness(downSink, spillDirectory: firstCrash))
        {
            await second.Writer.StartAsync(default);
            await Eventually.TrueAsync(() => downSink.Failures > 0, "the store was tried");
            secondCrash = CrashCopy(firstCrash);
        }

        // Second restart: the store is back.
        var sink = new RecordingSink();
        await using (var third = new WriterHarness(sink, spillDirectory: secondCrash))
        {
            await third.Writer.StartAsync(default);
            await Eventually.TrueAsync(() => sink.Store.Count == 20 && third.Writer.SpillBytes == 0, "every request is stored");
            await third.StopAsync();
        }

        for (var i = 0; i < 20; i++)
        {
            Assert.True(sink.Store.TryGet(TestRecords.Id(i), out var record));
            Assert.Equal(i % 2 == 0 ? UsageOutcome.Succeeded : UsageOutcome.Interrupted, record.Usage.Outcome);
        }

        // Whatever was sent twice was the same record (the idempotent store keeps one).
        Assert.Equal(20, sink.Store.Count);
        Assert.Empty(Segments(secondCrash));
        firstSink.Open();
    }

    [Fact]
    public async Task Restart_TornLastLine_IsSkippedAndTheRestIsRecovered()
    {
        var firstSink = new GatedSink();
        await using var first = new WriterHarness(firstSink);
        await first.Writer.StartAsync(default);
        first.Writer.Started(Start("req_whole"));
        first.Writer.Started(Start("req_torn"));

        var crashed = CrashCopy(first.SpillDirectory);
        var segment = Assert.Single(Segments(crashed));
        var bytes = await File.ReadAllBytesAsync(segment);
        var lastLineStart = Array.LastIndexOf(bytes, (byte)'\n', bytes.Length - 2) + 1;
        await File.WriteAllBytesAsync(segment, bytes[..(lastLineStart + ((bytes.Length - lastLineStart) / 2))]); // the crash hit mid-write

        var sink = new RecordingSink();
        await using (var second = new WriterHarness(sink, spillDirectory: crashed))
        {
            await second.Writer.StartAsync(default);
            await Eventually.TrueAsync(() => sink.Store.Count == 1 && second.Writer.SpillBytes == 0, "the whole entry is stored");
            await second.StopAsync();

            Assert.True(sink.Store.TryGet("req_whole", out var whole));
            Assert.Equal(UsageOutcome.Interrupted, whole.Usage.Outcome);
            Assert.False(sink.Store.Contains("req_torn"));
            Assert.Contains(second.Logger.Collector.GetSnapshot(), r => r.Id.Id == 2021 && r.Level == Microsoft.Extensions.Logging.LogLevel.Warning);
        }

        firstSink.Open();
    }

    [Fact]
    public async Task Journal_RecordsStoredBySink_SegmentsAreDeleted_DiskStaysBounded()
    {
        var sink = new RecordingSink();
        await using var harness = new WriterHarness(sink, o => o.JournalSegmentBytes = 4096);
        await harness.Writer.StartAsync(default);
        var firstSegment = Path.Combine(harness.SpillDirectory, JournalFolder, "usage-journal-000000000001.jsonl");
        Assert.True(File.Exists(firstSegment));

        for (var i = 0; i < 300; i++)
        {
            harness.Writer.Started(Start(TestRecords.Id(i)));
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
            if (i % 50 == 49)
            {
                await Eventually.TrueAsync(() => harness.Writer.JournalOpenCount == 0, "the records are stored");
                await Task.Delay(20); // a few commit intervals: roll and delete
            }
        }

        await Eventually.TrueAsync(
            () => harness.Writer.JournalOpenCount == 0 && Segments(harness.SpillDirectory).Sum(f => new FileInfo(f).Length) < 4096,
            "old segments are deleted");
        Assert.False(File.Exists(firstSegment));
        Assert.Single(Segments(harness.SpillDirectory));

        await harness.StopAsync();
        Assert.Empty(Segments(harness.SpillDirectory)); // all stored: an empty journal is not left behind
        Assert.Equal(300, sink.Store.Count);
    }

    [Fact]
    public async Task Journal_Roll_CopiesOpenEntries_SoAnOldStartSurvivesTheDeletionOfItsSegment()
    {
        var sink = new RecordingSink();
        await using var harness = new WriterHarness(sink, o => o.JournalSegmentBytes = 4096);
        await harness.Writer.StartAsync(default);
        harness.Writer.Started(Start("req_long_stream"));
        for (var i = 0; i < 100; i++)
        {
            harness.Writer.Started(Start(TestRecords.Id(i), stream: false));
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        var firstSegment = Path.Combine(harness.SpillDirectory, JournalFolder, "usage-journal-000000000001.jsonl");
        await Eventually.TrueAsync(() => harness.Writer.JournalOpenCount == 1 && !File.Exists(firstSegment), "the first segment is rolled away");
        await Task.Delay(20); // the last done entry is written

        var crashed = CrashCopy(harness.SpillDirectory);
        var afterCrash = new RecordingSink();
        await using (var second = new WriterHarness(afterCrash, spillDirectory: crashed))
        {
            await second.Writer.StartAsync(default);
            await Eventually.TrueAsync(() => afterCrash.Store.Contains("req_long_stream") && second.Writer.SpillBytes == 0, "the long stream is recovered");
            await second.StopAsync();
            Assert.Equal(UsageOutcome.Interrupted, afterCrash.Store.Records.Single(r => r.Usage.RequestId == "req_long_stream").Usage.Outcome);
            Assert.Equal(1, afterCrash.Store.Count); // the stored short requests are not sent again
        }
    }

    [Fact]
    public async Task Journal_SecondWriterOnTheSameFolder_RunsWithoutJournal_AndLeavesTheFirstOnesEntriesAlone()
    {
        var firstSink = new GatedSink();
        await using var first = new WriterHarness(firstSink);
        await first.Writer.StartAsync(default);
        first.Writer.Started(Start("req_in_flight"));

        var secondSink = new RecordingSink();
        await using var second = new WriterHarness(secondSink, spillDirectory: first.SpillDirectory) { DeleteSpillDirectoryOnDispose = false };
        await second.Writer.StartAsync(default);
        await second.StopAsync();

        Assert.True(first.Writer.IsJournaling);
        Assert.False(second.Writer.IsJournaling);
        Assert.Contains(second.Logger.Collector.GetSnapshot(), r => r.Id.Id == 2029); // in this process: information, not the cross-process warning (2028)
        Assert.Equal(0, secondSink.Calls); // the live writer's request was not taken for an interrupted one
        Assert.Single(Segments(first.SpillDirectory));
        firstSink.Open();
    }

    [Fact]
    public async Task Journal_Off_WritesNoJournal_AndStartedIsANoOp()
    {
        await using var harness = new WriterHarness(new RecordingSink(), o => o.JournalEnabled = false);
        await harness.Writer.StartAsync(default);
        harness.Writer.Started(Start("req_1"));

        Assert.Null(harness.Writer.JournalDirectory);
        Assert.False(Directory.Exists(Path.Combine(harness.SpillDirectory, JournalFolder)));
        Assert.Equal(0, harness.Writer.JournalOpenCount);
    }
}

/// <summary>Stores like <see cref="RecordingSink"/> until <see cref="Hang"/>; then every write waits for <see cref="Release"/>.</summary>
internal sealed class HangingSink : RecordingSink
{
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _hanging;

    public void Hang() => _hanging = true;

    public void Release() => _released.TrySetResult();

    protected override Task BeforeWriteAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken) =>
        _hanging ? _released.Task.WaitAsync(cancellationToken) : Task.CompletedTask;
}
