using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Cortensor.Portal.Metering.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;

namespace Cortensor.Portal.Metering.Journal;

/// <summary>
/// The write-ahead usage journal of one <see cref="Writer.UsageWriter"/>: JSON Lines segments
/// (<c>usage-journal-NNNNNNNNNNNN.jsonl</c>) in one folder. A request is journaled when it is admitted (started),
/// while it streams (progress, throttled), when it ends (finished: the whole record) and once the sink has stored
/// it (done). A crash therefore leaves every request that was not stored in the journal, and
/// <see cref="Recover"/> rebuilds it on the next start.
/// </summary>
/// <remarks>
/// <para>Two steps of durability. Each entry is written to the file (the operating system's page cache) on the
/// caller's thread, under a lock, before the call returns: a killed or crashed process loses nothing written. A
/// background loop fsyncs the segment every commit interval when something was written (group commit): a machine
/// that loses power loses at most the entries of the last interval. Callers never wait for an fsync.</para>
/// <para>Bounded disk: open entries (not yet done) are kept in memory too; when the active segment has grown past
/// the segment size and at least twice the open entries, a new segment is started with a copy of the open entries,
/// and once it is fsynced the older segments are deleted. So the journal holds about one segment plus the open
/// entries.</para>
/// </remarks>
internal sealed partial class UsageJournal : IDisposable
{
    internal const string SegmentPrefix = "usage-journal-";
    internal const string SegmentExtension = ".jsonl";
    internal const string LockFileName = "journal.lock";
    private const byte NewLine = (byte)'\n';

    /// <summary>Journal folders held by a writer of this process (a second one here is a test or hosting setup, not another replica).</summary>
    private static readonly ConcurrentDictionary<string, bool> HeldInProcess = new(StringComparer.Ordinal);

    [ThreadStatic]
    private static LineBuffer? t_buffer;

    private readonly string _directory;
    private readonly long _segmentBytes;
    private readonly TimeSpan _commitInterval;
    private readonly long _progressIntervalTicks;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly JournalMetrics _metrics;
    private readonly Lock _lock = new();
    private readonly ConcurrentDictionary<string, OpenEntry> _open = new(StringComparer.Ordinal);
    private readonly List<Segment> _retired = [];
    private readonly CancellationTokenSource _stop = new();
    private Segment? _active;
    private long _nextSegmentNumber = 1;
    private long _unsyncedBytes;
    private long _openBytes;
    private long _diskBytes;
    private int _writeFailing;
    private int _commitFailing;
    private Task? _loop;
    private FileStream? _folderLock;
    private bool _disposed;

    public UsageJournal(string directory, long segmentBytes, TimeSpan commitInterval, TimeSpan progressInterval, TimeProvider timeProvider, JournalMetrics metrics, ILogger logger)
    {
        _directory = Path.GetFullPath(directory);
        _segmentBytes = segmentBytes;
        _commitInterval = commitInterval;
        _progressIntervalTicks = (long)(progressInterval.TotalSeconds * timeProvider.TimestampFrequency);
        _timeProvider = timeProvider;
        _metrics = metrics;
        _logger = logger;
    }

    public string Directory => _directory;

    /// <summary>True once <see cref="Start"/> has opened a segment (the folder was ours).</summary>
    public bool IsStarted => Volatile.Read(ref _loop) is not null;

    /// <summary>Requests journaled and not yet stored by the sink.</summary>
    public int OpenCount => _open.Count;

    /// <summary>Bytes in journal segments on disk.</summary>
    public long DiskBytes => Interlocked.Read(ref _diskBytes);

    /// <summary>True from a failed write or fsync until one succeeds again.</summary>
    public bool IsFailing => Volatile.Read(ref _writeFailing) != 0 || Volatile.Read(ref _commitFailing) != 0;

    /// <summary>
    /// Takes the folder for this journal: an exclusive lock on <c>journal.lock</c> (held until disposed, released by
    /// the OS if the process dies). False when another journal (process or writer) holds it: this one must not
    /// read or write the folder.
    /// </summary>
    /// <param name="heldInProcess">True when the holder is another writer of this process.</param>
    public bool TryLock(out bool heldInProcess)
    {
        System.IO.Directory.CreateDirectory(_directory);
        heldInProcess = HeldInProcess.ContainsKey(_directory);
        if (heldInProcess)
        {
            return false;
        }

        try
        {
            _folderLock = new FileStream(Path.Combine(_directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            heldInProcess = HeldInProcess.ContainsKey(_directory);
            return false;
        }

        HeldInProcess[_directory] = true;
        return true;
    }

    /// <summary>
    /// Reads the segments a previous run left (call after <see cref="TryLock"/>, before <see cref="Start"/>): finished records the sink has not
    /// stored, and one <see cref="UsageOutcome.Interrupted"/> record per request that started and never finished.
    /// Unreadable lines (a write torn by the crash) are skipped. The files stay until <see cref="DeleteRecovered"/>.
    /// </summary>
    public JournalRecovery Recover()
    {
        System.IO.Directory.CreateDirectory(_directory);
        var files = ListSegments();
        var requests = new Dictionary<string, RecoveredRequest>(StringComparer.Ordinal);
        var order = new List<string>();
        var skipped = 0;
        // Numbered from the whole listing first: if a segment cannot be read, the next start's fresh segment must
        // still not collide with one that is left.
        foreach (var (number, _) in files)
        {
            _nextSegmentNumber = Math.Max(_nextSegmentNumber, number + 1);
        }

        foreach (var (_, path) in files)
        {
            skipped += ReadSegment(path, requests, order);
        }

        var records = new List<UsageRecord>();
        int finished = 0, interrupted = 0;
        foreach (var id in order)
        {
            var request = requests[id];
            if (request.Done)
            {
                continue;
            }

            if (request.Finished is { } record)
            {
                records.Add(record);
                finished++;
            }
            else if (request.Start is { } start)
            {
                records.Add(InterruptedUsage.Create(start, request.CompletionTokens, request.ElapsedMs));
                interrupted++;
            }
        }

        return new JournalRecovery(records, files.Select(static f => f.Path).ToArray(), finished, interrupted, skipped);
    }

    /// <summary>Deletes segments whose records are safe elsewhere (appended to the spill file and fsynced).</summary>
    public void DeleteRecovered(IReadOnlyList<string> files)
    {
        foreach (var file in files)
        {
            try
            {
                File.Delete(file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Log.DeleteFailed(_logger, file, ex);
            }
        }
    }

    /// <summary>Opens a fresh segment and starts the commit loop.</summary>
    public void Start()
    {
        lock (_lock)
        {
            if (_loop is not null || _disposed)
            {
                return;
            }

            System.IO.Directory.CreateDirectory(_directory);
            _active = OpenSegment(_nextSegmentNumber++);
            _loop = Task.Run(CommitLoopAsync, CancellationToken.None);
        }
    }

    public void Started(UsageStart start)
    {
        var line = Serialize(new JournalLine { Type = JournalLine.StartedType, Start = start });
        var entry = new OpenEntry(start.StartedAt, _timeProvider.GetTimestamp() + _progressIntervalTicks) { Started = line };
        lock (_lock)
        {
            if (!_open.TryAdd(start.RequestId, entry))
            {
                return; // journaled already: the first entry stands
            }

            _openBytes += line.Length;
            Write(line);
        }
    }

    public void Streamed(string requestId, int completionTokens)
    {
        if (!_open.TryGetValue(requestId, out var entry) || entry.Finished is not null)
        {
            return;
        }

        var now = _timeProvider.GetTimestamp();
        if (now < Volatile.Read(ref entry.NextProgressAt))
        {
            return;
        }

        Volatile.Write(ref entry.NextProgressAt, now + _progressIntervalTicks);
        var elapsed = _timeProvider.GetUtcNow() - entry.StartedAt;
        var line = Serialize(new JournalLine
        {
            Type = JournalLine.ProgressType,
            RequestId = requestId,
            CompletionTokens = completionTokens,
            ElapsedMs = (int)Math.Clamp(elapsed.TotalMilliseconds, 0, int.MaxValue),
        });
        lock (_lock)
        {
            if (!_open.TryGetValue(requestId, out var current) || !ReferenceEquals(current, entry) || entry.Finished is not null)
            {
                return;
            }

            _openBytes += line.Length - (entry.Progress?.Length ?? 0);
            entry.Progress = line;
            Write(line);
        }
    }

    /// <summary>Journals the whole record of a request that ended (before it is queued for the sink).</summary>
    public void Finished(UsageRecord record)
    {
        var line = Serialize(new JournalLine { Type = JournalLine.FinishedType, Record = record });
        lock (_lock)
        {
            var entry = _open.GetOrAdd(record.Usage.RequestId, static (_, at) => new OpenEntry(at, long.MaxValue), record.Usage.OccurredAt);
            _openBytes += line.Length - (entry.Finished?.Length ?? 0);
            entry.Finished = line;
            Write(line);
        }
    }

    /// <summary>Notes that these records are stored (by the sink, or in an fsynced spill file): their entries are no longer needed.</summary>
    public void Done(IReadOnlyList<UsageRecord> records)
    {
        List<string>? ids = null;
        foreach (var record in records)
        {
            if (_open.ContainsKey(record.Usage.RequestId))
            {
                (ids ??= new List<string>(records.Count)).Add(record.Usage.RequestId);
            }
        }

        if (ids is null)
        {
            return; // replays of an older run: nothing of this journal
        }

        var line = Serialize(new JournalLine { Type = JournalLine.DoneType, Ids = ids });
        lock (_lock)
        {
            foreach (var id in ids)
            {
                if (_open.TryRemove(id, out var entry))
                {
                    _openBytes -= entry.Bytes;
                }
            }

            Write(line);
        }
    }

    /// <summary>Stops the loop after a last fsync; segments with open entries stay for the next start.</summary>
    public void Dispose()
    {
        Task? loop;
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            loop = _loop;
        }

        _stop.Cancel();
        loop?.GetAwaiter().GetResult();
        Commit(final: true);
        lock (_lock)
        {
            foreach (var segment in _retired)
            {
                segment.Handle.Dispose();
            }

            _retired.Clear();
            if (_active is { } active)
            {
                active.Handle.Dispose();
                _active = null;
                if (_open.IsEmpty)
                {
                    // Everything was stored: nothing for the next start to read.
                    TryDelete(active);
                }
            }
        }

        if (_folderLock is not null)
        {
            HeldInProcess.TryRemove(_directory, out _);
            _folderLock.Dispose();
        }

        _stop.Dispose();
    }

    private async Task CommitLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_commitInterval, _timeProvider, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                Commit(final: false);
            }
            catch (Exception ex)
            {
                // Defensive: the loop must outlive bugs.
                Log.CommitFailed(_logger, _directory, ex);
            }
        }
    }

    /// <summary>Rolls the segment when due, fsyncs the active one when written to, then deletes the segments it replaced.</summary>
    private void Commit(bool final)
    {
        Segment? active;
        long bytes;
        List<Segment>? retire = null;
        lock (_lock)
        {
            if (!final && _active is { } current && current.Length >= _segmentBytes && current.Length >= 2 * _openBytes)
            {
                Roll();
            }

            active = _active;
            bytes = _unsyncedBytes;
            _unsyncedBytes = 0;
            if (_retired.Count > 0)
            {
                retire = [.. _retired];
                _retired.Clear();
            }
        }

        if (active is null || (bytes == 0 && retire is null))
        {
            return;
        }

        var started = _timeProvider.GetTimestamp();
        try
        {
            RandomAccess.FlushToDisk(active.Handle);
            _metrics.Committed(bytes, _timeProvider.GetElapsedTime(started));
            if (Interlocked.Exchange(ref _commitFailing, 0) != 0)
            {
                Log.CommitRecovered(_logger, _directory);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            _metrics.Failed("commit");
            lock (_lock)
            {
                _unsyncedBytes += bytes; // try again next time
                if (retire is not null)
                {
                    _retired.InsertRange(0, retire); // not safe to delete before the copies are on disk
                }
            }

            if (Interlocked.Exchange(ref _commitFailing, 1) == 0)
            {
                Log.CommitFailed(_logger, _directory, ex);
            }

            return;
        }

        if (retire is not null)
        {
            foreach (var segment in retire)
            {
                segment.Handle.Dispose();
                TryDelete(segment);
            }
        }
    }

    /// <summary>Under the lock: a new active segment holding a copy of every open entry; the old one is retired.</summary>
    private void Roll()
    {
        Segment next;
        try
        {
            next = OpenSegment(_nextSegmentNumber++);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            NoteWriteFailed(ex);
            return;
        }

        var buffer = new ArrayBufferWriter<byte>((int)Math.Min(int.MaxValue, Math.Max(256, _openBytes)));
        foreach (var entry in _open.Values)
        {
            Append(buffer, entry.Started);
            Append(buffer, entry.Progress);
            Append(buffer, entry.Finished);
        }

        if (buffer.WrittenCount > 0)
        {
            try
            {
                RandomAccess.Write(next.Handle, buffer.WrittenSpan, 0);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Keep writing to the old segment; the new one is dropped.
                next.Handle.Dispose();
                TryDelete(next);
                NoteWriteFailed(ex);
                return;
            }

            next.Length = buffer.WrittenCount;
            _unsyncedBytes += buffer.WrittenCount;
            Interlocked.Add(ref _diskBytes, buffer.WrittenCount);
        }

        _retired.Add(_active!);
        _active = next;
        _metrics.Rolled();

        static void Append(ArrayBufferWriter<byte> buffer, byte[]? line)
        {
            if (line is not null)
            {
                buffer.Write(line);
            }
        }
    }

    /// <summary>Under the lock: appends <paramref name="line"/> to the active segment (the page cache), never throws.</summary>
    private void Write(byte[] line)
    {
        if (_active is not { } active)
        {
            return; // not started or disposed: the in-memory entry is copied into the next segment, if any
        }

        try
        {
            RandomAccess.Write(active.Handle, line, active.Length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            // The entry stays in memory and is copied into the next segment; a torn tail is overwritten by the next write.
            NoteWriteFailed(ex);
            return;
        }

        active.Length += line.Length;
        _unsyncedBytes += line.Length;
        Interlocked.Add(ref _diskBytes, line.Length);
        if (Volatile.Read(ref _writeFailing) != 0 && Interlocked.Exchange(ref _writeFailing, 0) != 0)
        {
            Log.WriteRecovered(_logger, _directory);
        }
    }

    private void NoteWriteFailed(Exception exception)
    {
        _metrics.Failed("write");
        if (Interlocked.Exchange(ref _writeFailing, 1) == 0)
        {
            Log.WriteFailed(_logger, _directory, exception);
        }
    }

    private Segment OpenSegment(long number)
    {
        var path = Path.Combine(_directory, SegmentName(number));
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        return new Segment(path, handle);
    }

    private void TryDelete(Segment segment)
    {
        try
        {
            File.Delete(segment.Path);
            Interlocked.Add(ref _diskBytes, -Math.Min(segment.Length, Interlocked.Read(ref _diskBytes)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Log.DeleteFailed(_logger, segment.Path, ex);
        }
    }

    internal static string SegmentName(long number) =>
        SegmentPrefix + number.ToString("D12", CultureInfo.InvariantCulture) + SegmentExtension;

    private List<(long Number, string Path)> ListSegments()
    {
        var files = new List<(long, string)>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_directory, SegmentPrefix + "*" + SegmentExtension))
        {
            var name = Path.GetFileName(path);
            var digits = name.AsSpan(SegmentPrefix.Length, name.Length - SegmentPrefix.Length - SegmentExtension.Length);
            if (long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
            {
                files.Add((number, path));
            }
        }

        files.Sort(static (a, b) => a.Item1.CompareTo(b.Item1));
        return files;
    }

    /// <returns>The number of unreadable lines.</returns>
    private int ReadSegment(string path, Dictionary<string, RecoveredRequest> requests, List<string> order)
    {
        var bytes = File.ReadAllBytes(path);
        var skipped = 0;
        var span = bytes.AsSpan();
        var offset = 0;
        while (offset < span.Length)
        {
            var rest = span[offset..];
            var end = rest.IndexOf(NewLine);
            var line = end >= 0 ? rest[..end] : rest;
            var lineStart = offset;
            offset += end >= 0 ? end + 1 : rest.Length;
            line = line.Trim((byte)0).Trim((byte)' ');
            if (line.IsEmpty)
            {
                continue;
            }

            if (!Apply(line, requests, order))
            {
                skipped++;
                Log.LineSkipped(_logger, lineStart, path);
            }
        }

        return skipped;
    }

    private static bool Apply(ReadOnlySpan<byte> json, Dictionary<string, RecoveredRequest> requests, List<string> order)
    {
        JournalLine? line;
        try
        {
            line = JsonSerializer.Deserialize(json, JournalJsonContext.Default.JournalLine);
        }
        catch (JsonException)
        {
            return false;
        }

        switch (line?.Type)
        {
            case JournalLine.StartedType when line.Start is { } start:
                Get(start.RequestId).Start ??= start;
                return true;
            case JournalLine.ProgressType when line.RequestId is { } id:
                var progress = Get(id);
                progress.CompletionTokens = line.CompletionTokens ?? progress.CompletionTokens;
                progress.ElapsedMs = line.ElapsedMs ?? progress.ElapsedMs;
                return true;
            case JournalLine.FinishedType when line.Record is { Usage.RequestId: not null, Log: not null } record:
                Get(record.Usage.RequestId).Finished ??= record;
                return true;
            case JournalLine.DoneType when line.Ids is { } ids:
                foreach (var id in ids)
                {
                    Get(id).Done = true;
                }

                return true;
            default:
                return false;
        }

        RecoveredRequest Get(string id)
        {
            if (!requests.TryGetValue(id, out var request))
            {
                request = new RecoveredRequest();
                requests[id] = request;
                order.Add(id);
            }

            return request;
        }
    }

    private static byte[] Serialize(JournalLine line)
    {
        var buffer = t_buffer ??= new LineBuffer();
        buffer.Output.ResetWrittenCount();
        buffer.Json.Reset();
        JsonSerializer.Serialize(buffer.Json, line, JournalJsonContext.Default.JournalLine);
        buffer.Json.Flush();
        var written = buffer.Output.WrittenSpan;
        var bytes = new byte[written.Length + 1];
        written.CopyTo(bytes);
        bytes[^1] = NewLine;
        return bytes;
    }

    private sealed class LineBuffer
    {
        public LineBuffer()
        {
            Output = new ArrayBufferWriter<byte>(512);
            Json = new Utf8JsonWriter(Output, new JsonWriterOptions { Indented = false, SkipValidation = true });
        }

        public ArrayBufferWriter<byte> Output { get; }

        public Utf8JsonWriter Json { get; }
    }

    private sealed class Segment(string path, SafeFileHandle handle)
    {
        public string Path { get; } = path;

        public SafeFileHandle Handle { get; } = handle;

        /// <summary>Bytes written; changed under the journal lock only.</summary>
        public long Length { get; set; }
    }

    /// <summary>What is kept in memory of a request until it is done: its latest lines, copied at a roll.</summary>
    private sealed class OpenEntry(DateTimeOffset startedAt, long nextProgressAt)
    {
        public long NextProgressAt = nextProgressAt;

        public DateTimeOffset StartedAt { get; } = startedAt;

        public byte[]? Started { get; init; }

        public byte[]? Progress { get; set; }

        public byte[]? Finished { get; set; }

        public long Bytes => (Started?.Length ?? 0) + (Progress?.Length ?? 0) + (Finished?.Length ?? 0);
    }

    private sealed class RecoveredRequest
    {
        public UsageStart? Start { get; set; }

        public int CompletionTokens { get; set; }

        public int ElapsedMs { get; set; }

        public UsageRecord? Finished { get; set; }

        public bool Done { get; set; }
    }
}

/// <summary>What <see cref="UsageJournal.Recover"/> found in the segments of a previous run.</summary>
/// <param name="Records">Records to store: finished ones the sink had not stored, and the interrupted ones.</param>
/// <param name="Files">The segments read (delete them once <paramref name="Records"/> are safe elsewhere).</param>
/// <param name="Finished">Finished records among <paramref name="Records"/>.</param>
/// <param name="Interrupted">Interrupted records among <paramref name="Records"/>.</param>
/// <param name="SkippedLines">Unreadable lines (torn writes) skipped.</param>
internal sealed record JournalRecovery(IReadOnlyList<UsageRecord> Records, IReadOnlyList<string> Files, int Finished, int Interrupted, int SkippedLines);
