using System.Diagnostics.Metrics;
using System.Text.Json;
using System.Threading.Channels;
using Cortensor.Portal.Metering.Journal;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>
/// Writes usage records off the hot path: <see cref="Record"/> puts a record in a bounded in-memory queue and a
/// background loop hands batches to the <see cref="IUsageSink"/>. While the sink fails, batches go to an append-only
/// spill file (JSON Lines) and the sink is probed with backoff; once it works again the spill files are replayed and
/// deleted. Nothing recorded is dropped: a full queue spills synchronously, and a graceful stop drains the queue.
/// With the journal on (<see cref="UsageWriterOptions.JournalEnabled"/>), requests are also written ahead to a local
/// journal when they are admitted (<see cref="Started"/>) and when they end (<see cref="Record"/>), so a crash loses
/// neither queued records nor requests in flight: the next start stores them (see <see cref="StartAsync"/>).
/// </summary>
/// <remarks>
/// <para>Guarantees: every recorded record reaches the sink at least once, or stays in a spill file that this or the
/// next start replays. Replays may send a record again, which is why sinks must be idempotent by request id.</para>
/// <para>Memory is bounded by <see cref="UsageWriterOptions.QueueCapacity"/> plus one batch (and, with the journal,
/// the journal lines of the requests in flight or queued).</para>
/// <para>Start once, stop once: a stopped writer does not restart, and records recorded after the stop go to the
/// spill file for the next run.</para>
/// </remarks>
public sealed partial class UsageWriter : IUsageRecorder, IUsageJournal, IHostedService, IDisposable, IAsyncDisposable
{
    /// <summary>Name of the <see cref="Meter"/> of the metering pipeline.</summary>
    public const string MeterName = "Cortensor.Portal.Metering";

    private readonly IUsageSink _sink;
    private readonly UsageWriterOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly Channel<UsageRecord> _channel;
    private readonly SpillStore _spill;
    private readonly UsageWriterMetrics _metrics;
    private readonly UsageJournal? _journal;
    private readonly JournalMetrics? _journalMetrics;
    private readonly CancellationTokenSource _abort = new();
    private readonly Lock _stateLock = new();
    private readonly Dictionary<string, long> _replayOffsets = new(StringComparer.Ordinal);
    private Task? _loop;
    private volatile bool _healthy = true;
    private TimeSpan _backoff;
    private DateTimeOffset _nextProbeAt = DateTimeOffset.MinValue;
    private DateTimeOffset _outageStartedAt;
    private int _overflowLogged;
    private int _recordedAfterStopLogged;
    private int _disposed;
    private volatile bool _stopped;
    private volatile bool _journalStartFailed;

    /// <summary>Creates a writer; options are validated here (throws <see cref="OptionsValidationException"/>).</summary>
    public UsageWriter(
        IUsageSink sink,
        IOptions<UsageWriterOptions> options,
        TimeProvider timeProvider,
        IMeterFactory meterFactory,
        ILogger<UsageWriter> logger)
    {
        ArgumentNullException.ThrowIfNull(sink);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(logger);

        var value = options.Value;
        UsageWriterOptionsCustomValidator.ThrowIfInvalid(value);

        _sink = sink;
        _options = value;
        _timeProvider = timeProvider;
        _logger = logger;
        _backoff = value.RetryInitialDelay;
        _channel = Channel.CreateBounded<UsageRecord>(new BoundedChannelOptions(value.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
            AllowSynchronousContinuations = false,
        });
        _spill = new SpillStore(value.SpillDirectory, timeProvider);
        _metrics = new UsageWriterMetrics(meterFactory, () => QueueDepth, () => SpillBytes);
        if (value.JournalEnabled)
        {
            _journalMetrics = new JournalMetrics(meterFactory, () => _journal?.DiskBytes ?? 0, () => _journal?.OpenCount ?? 0);
            _journal = new UsageJournal(
                Path.Combine(value.SpillDirectory, JournalFolderName),
                value.JournalSegmentBytes,
                value.JournalCommitInterval,
                value.JournalProgressInterval,
                timeProvider,
                _journalMetrics,
                logger);
        }
    }

    private enum WaitResult
    {
        Data,
        Timeout,
        Completed,
    }

    /// <summary>The journal's folder under <see cref="UsageWriterOptions.SpillDirectory"/>.</summary>
    public const string JournalFolderName = "journal";

    /// <summary>Records waiting in the in-memory queue.</summary>
    public int QueueDepth => _channel.Reader.Count;

    /// <summary>Bytes in spill files that have not been replayed yet.</summary>
    public long SpillBytes => _spill.Bytes;

    /// <summary>False from a failed sink write until a write succeeds again.</summary>
    public bool IsSinkHealthy => _healthy;

    /// <summary>The full path of the spill folder.</summary>
    public string SpillDirectory => _spill.Directory;

    /// <summary>The full path of the journal folder, or null when the journal is off.</summary>
    public string? JournalDirectory => _journal?.Directory;

    /// <summary>True while requests are journaled: the journal is on and this writer holds its folder.</summary>
    public bool IsJournaling => _journal?.IsStarted ?? false;

    /// <summary>Requests journaled and not yet stored by the sink (0 when the journal is off).</summary>
    public int JournalOpenCount => _journal?.OpenCount ?? 0;

    /// <summary>
    /// One read of the backlog (queue depth against capacity, spill bytes, sink state) for health checks and
    /// dashboards. Each field is read without locks, so the fields may be a moment apart.
    /// </summary>
    public UsageWriterStatus GetStatus() => new(QueueDepth, _options.QueueCapacity, SpillBytes, _healthy, _stopped)
    {
        IsJournalFailing = _journalStartFailed || (_journal?.IsFailing ?? false),
    };

    /// <summary>
    /// Queues <paramref name="record"/> without waiting for I/O. When the queue is full (or the writer is stopped) the
    /// record is appended to the spill file under a lock instead: that is the backpressure, and it never drops it.
    /// </summary>
    /// <remarks>With the journal on, the record is first written to the journal (to the operating system, not fsynced).</remarks>
    public void Record(UsageRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        _journal?.Finished(record);
        if (_channel.Writer.TryWrite(record))
        {
            return;
        }

        SpillOverflow(record);
    }

    /// <inheritdoc/>
    public void Started(UsageStart start)
    {
        ArgumentNullException.ThrowIfNull(start);
        _journal?.Started(start);
    }

    /// <inheritdoc/>
    public void Streamed(string requestId, int completionTokens)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        _journal?.Streamed(requestId, completionTokens);
    }

    /// <summary>
    /// Creates the spill folder, turns a previous run's journal into spilled records (finished records the sink had
    /// not stored, and an <see cref="UsageOutcome.Interrupted"/> record for each request that never finished), opens a
    /// new journal, and starts the background loop, which first replays the spill files.
    /// </summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        lock (_stateLock)
        {
            if (_loop is not null)
            {
                return Task.CompletedTask;
            }

            if (_spill.Initialize())
            {
                Log.LeftoverSpillFound(_logger, _spill.Bytes, _spill.Directory);
            }

            if (_journal is not null && TryLockJournal(_journal))
            {
                RecoverJournal(_journal);
                try
                {
                    _journal.Start();
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    _journalStartFailed = true;
                    // The portal still serves (usage goes through the queue and the spill as before the journal);
                    // the usage-writer health check reports the journal as not writable.
                    Log.JournalRecoveryFailed(_logger, _journal.Directory, ex);
                }
            }

            _loop = Task.Run(RunAsync, CancellationToken.None);
        }

        return Task.CompletedTask;
    }

    /// <summary>
    /// Stops accepting records into the queue and drains it into the sink. When <paramref name="cancellationToken"/>
    /// fires first, the write in flight is abandoned and everything left goes to the spill file, replayed on the next start.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopped = true;
        _channel.Writer.TryComplete();
        Task? loop;
        lock (_stateLock)
        {
            loop = _loop;
        }

        if (loop is null)
        {
            SpillQueued();
            return;
        }

        using (cancellationToken.Register(static state => ((UsageWriter)state!).Abort(), this))
        {
            await loop.ConfigureAwait(false);
        }

        // Everything queued is stored or spilled (and so done): a last fsync, and an empty journal is deleted.
        _journal?.Dispose();
    }

    /// <summary>Stops at once: whatever is still queued goes to the spill file.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _stopped = true;
        _channel.Writer.TryComplete();
        Abort();
        Task? loop;
        lock (_stateLock)
        {
            loop = _loop;
        }

        if (loop is not null)
        {
            await loop.ConfigureAwait(false);
        }
        else
        {
            SpillQueued();
        }

        _journal?.Dispose();
        _spill.Dispose();
        _abort.Dispose();
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private void Abort()
    {
        try
        {
            if (!_abort.IsCancellationRequested)
            {
                var queued = QueueDepth;
                if (queued > 0 && Volatile.Read(ref _disposed) == 0)
                {
                    Log.ShutdownDeadlineReached(_logger, queued, _spill.Directory);
                }

                _abort.Cancel();
            }
        }
        catch (ObjectDisposedException)
        {
            // Already disposed: the loop has finished.
        }
    }

    /// <summary>
    /// Appends what the previous run's journal holds to the spill file (fsynced), then deletes its segments; a crash in
    /// between appends the same records again on the next start, which the idempotent sink absorbs.
    /// </summary>
    private bool TryLockJournal(UsageJournal journal)
    {
        try
        {
            if (journal.TryLock(out var heldInProcess))
            {
                return true;
            }

            if (heldInProcess)
            {
                Log.JournalFolderInUseInProcess(_logger, journal.Directory);
            }
            else
            {
                Log.JournalFolderInUse(_logger, journal.Directory);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.JournalRecoveryFailed(_logger, journal.Directory, ex);
        }

        return false;
    }

    private void RecoverJournal(UsageJournal journal)
    {
        JournalRecovery recovery;
        try
        {
            recovery = journal.Recover();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.JournalRecoveryFailed(_logger, journal.Directory, ex);
            return;
        }

        if (recovery.Files.Count == 0)
        {
            return;
        }

        try
        {
            for (var i = 0; i < recovery.Records.Count; i += _options.MaxBatchSize)
            {
                var chunk = recovery.Records.Skip(i).Take(_options.MaxBatchSize).ToList();
                _spill.Append(chunk, flushToDisk: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The segments stay: the next start tries again.
            Log.JournalRecoveryFailed(_logger, journal.Directory, ex);
            return;
        }

        journal.DeleteRecovered(recovery.Files);
        _journalMetrics?.Recovered(recovery.Finished, recovery.Interrupted);
        Log.JournalRecovered(_logger, recovery.Finished, recovery.Interrupted, recovery.Files.Count, recovery.SkippedLines, journal.Directory);
    }

    private void SpillOverflow(UsageRecord record)
    {
        if (_stopped)
        {
            if (Interlocked.Exchange(ref _recordedAfterStopLogged, 1) == 0)
            {
                Log.RecordedAfterStop(_logger, _spill.Directory);
            }
        }
        else if (Interlocked.Exchange(ref _overflowLogged, 1) == 0)
        {
            Log.QueueFull(_logger, _options.QueueCapacity, _spill.Directory);
        }

        try
        {
            // Flushed to the OS (survives a process crash); the next batch spill or rotation flushes it to disk.
            _spill.Append([record], flushToDisk: false);
            _metrics.Spilled(1);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SpillFailed(_logger, 1, _spill.Directory, ex);

            // Last resort when the disk fails too: wait for room in the queue rather than lose the record.
            try
            {
                _channel.Writer.WriteAsync(record).AsTask().GetAwaiter().GetResult();
            }
            catch (ChannelClosedException)
            {
                Log.RecordsLost(_logger, 1);
            }
        }
    }

    private void SpillQueued()
    {
        var batch = new List<UsageRecord>();
        while (_channel.Reader.TryRead(out var record))
        {
            batch.Add(record);
            if (batch.Count >= _options.MaxBatchSize)
            {
                SpillOrLose(batch);
                batch.Clear();
            }
        }

        if (batch.Count > 0)
        {
            SpillOrLose(batch);
        }
    }

    private void SpillOrLose(List<UsageRecord> batch)
    {
        try
        {
            _spill.Append(batch, flushToDisk: true);
            _metrics.Spilled(batch.Count);
            _journal?.Done(batch);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.SpillFailed(_logger, batch.Count, _spill.Directory, ex);
            Log.RecordsLost(_logger, batch.Count);
        }
    }

    private async Task RunAsync()
    {
        var reader = _channel.Reader;
        var batch = NewBatch();
        while (true)
        {
            try
            {
                if (_spill.HasPending && !_abort.IsCancellationRequested && ProbeDue())
                {
                    await ReplayAsync().ConfigureAwait(false);
                }

                TimeSpan? wait = _spill.HasPending && !_abort.IsCancellationRequested ? TimeUntilProbe() : null;
                var result = await WaitForRecordsAsync(reader, wait).ConfigureAwait(false);
                if (result == WaitResult.Completed)
                {
                    break;
                }

                if (result == WaitResult.Timeout)
                {
                    continue;
                }

                await FillBatchAsync(reader, batch).ConfigureAwait(false);
                if (!await DeliverAsync(batch).ConfigureAwait(false))
                {
                    // An abandoned sink call may still read the list: never reuse it.
                    batch = NewBatch();
                }

                batch.Clear();
                if (reader.Count == 0)
                {
                    Volatile.Write(ref _overflowLogged, 0);
                }
            }
            catch (Exception ex)
            {
                // Defensive: the loop must outlive bugs. Keep what was taken from the queue.
                Log.LoopFailed(_logger, ex);
                if (batch.Count > 0)
                {
                    SpillOrLose(batch);
                    batch = NewBatch();
                }

                await DelayQuietlyAsync(_options.RetryInitialDelay).ConfigureAwait(false);
            }
        }

        try
        {
            if (!_abort.IsCancellationRequested && _healthy && _spill.HasPending)
            {
                await ReplayAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            Log.LoopFailed(_logger, ex);
        }
    }

    private List<UsageRecord> NewBatch() => new(Math.Min(_options.MaxBatchSize, 1024));

    private async ValueTask<WaitResult> WaitForRecordsAsync(ChannelReader<UsageRecord> reader, TimeSpan? wait)
    {
        if (reader.TryPeek(out _))
        {
            return WaitResult.Data;
        }

        if (wait is null)
        {
            return await reader.WaitToReadAsync().ConfigureAwait(false) ? WaitResult.Data : WaitResult.Completed;
        }

        if (wait.Value <= TimeSpan.Zero)
        {
            return reader.Completion.IsCompleted ? WaitResult.Completed : WaitResult.Timeout;
        }

        using var timeout = new CancellationTokenSource(wait.Value, _timeProvider);
        try
        {
            return await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false) ? WaitResult.Data : WaitResult.Completed;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return WaitResult.Timeout;
        }
    }

    private async ValueTask FillBatchAsync(ChannelReader<UsageRecord> reader, List<UsageRecord> batch)
    {
        var max = _options.MaxBatchSize;
        while (batch.Count < max && reader.TryRead(out var record))
        {
            batch.Add(record);
        }

        if (batch.Count >= max || _options.MaxBatchDelay <= TimeSpan.Zero || _abort.IsCancellationRequested)
        {
            return;
        }

        using var timeout = new CancellationTokenSource(_options.MaxBatchDelay, _timeProvider);
        try
        {
            while (batch.Count < max && await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false))
            {
                while (batch.Count < max && reader.TryRead(out var record))
                {
                    batch.Add(record);
                }
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            // The batch delay is over: write what arrived.
        }
    }

    /// <returns>False when the list may still be in use by an abandoned sink call.</returns>
    private async ValueTask<bool> DeliverAsync(List<UsageRecord> batch)
    {
        var reusable = true;
        if (!_abort.IsCancellationRequested && (_healthy || ProbeDue()))
        {
            var (written, completed) = await TryWriteToSinkAsync(batch).ConfigureAwait(false);
            if (written)
            {
                return true;
            }

            reusable = completed;
        }

        await SpillBatchAsync(batch).ConfigureAwait(false);
        return reusable;
    }

    private async ValueTask SpillBatchAsync(List<UsageRecord> batch)
    {
        while (true)
        {
            try
            {
                _spill.Append(batch, flushToDisk: true);
                _metrics.Spilled(batch.Count);
                _journal?.Done(batch);
                return;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Log.SpillFailed(_logger, batch.Count, _spill.Directory, ex);
                if (_abort.IsCancellationRequested)
                {
                    Log.RecordsLost(_logger, batch.Count);
                    return;
                }
            }

            // Sink and disk both fail: hold this batch (the queue fills up behind it, memory stays bounded) and retry.
            await DelayQuietlyAsync(_backoff).ConfigureAwait(false);
            if (!_abort.IsCancellationRequested)
            {
                var (written, _) = await TryWriteToSinkAsync(batch).ConfigureAwait(false);
                if (written)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Writes <paramref name="batch"/> to the sink; never throws.</summary>
    /// <returns>Whether the write succeeded, and whether the sink call has finished (false when abandoned at shutdown).</returns>
    private async ValueTask<(bool Written, bool Completed)> TryWriteToSinkAsync(IReadOnlyList<UsageRecord> batch)
    {
        var started = _timeProvider.GetTimestamp();
        Task? write = null;
        try
        {
            write = _sink.WriteBatchAsync(batch, _abort.Token);
            await write.WaitAsync(_abort.Token).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _metrics.BatchWritten(_timeProvider.GetElapsedTime(started), succeeded: false);
            OnSinkFailed(ex, batch.Count);
            return (false, write is null || write.IsCompleted);
        }

        _metrics.BatchWritten(_timeProvider.GetElapsedTime(started), succeeded: true);
        _metrics.Written(batch.Count);
        _journal?.Done(batch);
        OnSinkSucceeded();
        return (true, true);
    }

    private void OnSinkFailed(Exception exception, int count)
    {
        if (_abort.IsCancellationRequested)
        {
            // Shutdown deadline: what is left goes to the spill file, not an outage.
            return;
        }

        var now = _timeProvider.GetUtcNow();
        if (_healthy)
        {
            _healthy = false;
            _outageStartedAt = now;
            _backoff = _options.RetryInitialDelay;
            Log.SinkUnavailable(_logger, count, _spill.Directory, exception);
        }
        else
        {
            _backoff = TimeSpan.FromTicks(Math.Min(_backoff.Ticks * 2, _options.RetryMaxDelay.Ticks));
            Log.SinkProbeFailed(_logger, _backoff, exception);
        }

        _nextProbeAt = now + _backoff;
    }

    private void OnSinkSucceeded()
    {
        if (!_healthy)
        {
            _healthy = true;
            Log.SinkRecovered(_logger, _timeProvider.GetUtcNow() - _outageStartedAt, _spill.Bytes);
        }

        _backoff = _options.RetryInitialDelay;
        _nextProbeAt = DateTimeOffset.MinValue;
    }

    private bool ProbeDue() => _timeProvider.GetUtcNow() >= _nextProbeAt;

    private TimeSpan TimeUntilProbe()
    {
        var remaining = _nextProbeAt - _timeProvider.GetUtcNow();
        return remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero;
    }

    private async ValueTask DelayQuietlyAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _timeProvider, _abort.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Shutting down.
        }
    }

    /// <summary>Rotates the active spill file, then sends every replaying file to the sink in batches and deletes it.</summary>
    /// <returns>True when every spill file was replayed.</returns>
    /// <remarks>
    /// Progress within a file is remembered (in memory) so a failed batch does not restart the file from its first
    /// line; after a crash the whole file is sent again, which the idempotent sink absorbs.
    /// </remarks>
    private async Task<bool> ReplayAsync()
    {
        IReadOnlyList<string> files;
        try
        {
            files = _spill.RotateForReplay();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            OnReplayIoFailed(_spill.Directory, ex);
            return false;
        }

        foreach (var file in files)
        {
            try
            {
                if (!await ReplayFileAsync(file).ConfigureAwait(false))
                {
                    return false;
                }
            }
            catch (OperationCanceledException) when (_abort.IsCancellationRequested)
            {
                return false;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                OnReplayIoFailed(file, ex);
                return false;
            }
        }

        _spill.MarkReplayed();
        return true;
    }

    private async Task<bool> ReplayFileAsync(string file)
    {
        var max = _options.MaxBatchSize;
        var committed = _replayOffsets.GetValueOrDefault(file);
        var batch = NewBatch();
        long replayed = 0;
        var skipped = 0;

        using (var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, bufferSize: 0, FileOptions.SequentialScan))
        {
            stream.Seek(committed, SeekOrigin.Begin);
            var buffer = new byte[64 * 1024];
            var bufferOffset = committed; // file offset of buffer[0]
            int start = 0, end = 0;
            var eof = false;
            while (true)
            {
                int lineLength;
                var newLine = buffer.AsSpan(start, end - start).IndexOf((byte)'\n');
                if (newLine >= 0)
                {
                    lineLength = newLine;
                }
                else if (!eof)
                {
                    if (start > 0)
                    {
                        Buffer.BlockCopy(buffer, start, buffer, 0, end - start);
                        bufferOffset += start;
                        end -= start;
                        start = 0;
                    }

                    if (end == buffer.Length)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    var read = await stream.ReadAsync(buffer.AsMemory(end), _abort.Token).ConfigureAwait(false);
                    eof = read == 0;
                    end += read;
                    continue;
                }
                else if (end > start)
                {
                    lineLength = end - start; // last line without a newline: torn unless it parses
                }
                else
                {
                    break;
                }

                var lineStart = bufferOffset + start;
                var line = buffer.AsSpan(start, lineLength);
                start = Math.Min(end, start + lineLength + 1);
                if (line.Trim((byte)' ').IsEmpty)
                {
                    continue;
                }

                var record = Parse(line);
                if (record is null)
                {
                    skipped++;
                    Log.SpillLineSkipped(_logger, lineStart, file);
                    continue;
                }

                batch.Add(record);
                if (batch.Count >= max)
                {
                    if (!(await TryWriteToSinkAsync(batch).ConfigureAwait(false)).Written)
                    {
                        _replayOffsets[file] = committed;
                        return false;
                    }

                    replayed += batch.Count;
                    committed = bufferOffset + start;
                    batch = NewBatch();
                }
            }
        }

        if (batch.Count > 0)
        {
            if (!(await TryWriteToSinkAsync(batch).ConfigureAwait(false)).Written)
            {
                _replayOffsets[file] = committed;
                return false;
            }

            replayed += batch.Count;
        }

        _spill.Delete(file);
        _replayOffsets.Remove(file);
        Log.SpillFileReplayed(_logger, replayed, skipped, file);
        return true;
    }

    private void OnReplayIoFailed(string path, Exception exception)
    {
        Log.SpillReplayFailed(_logger, path, exception);
        _nextProbeAt = _timeProvider.GetUtcNow() + _options.RetryMaxDelay;
    }

    private static UsageRecord? Parse(ReadOnlySpan<byte> line)
    {
        try
        {
            var record = JsonSerializer.Deserialize(line, MeteringJsonContext.Default.UsageRecord);
            return record?.Usage is null || record.Log is null ? null : record;
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
