using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>
/// The append-only spill files of one <see cref="UsageWriter"/>: JSON Lines, one <see cref="UsageRecord"/> per line.
/// New records go to the active file (<c>usage-spill.jsonl</c>); a replay first renames it to a
/// <c>usage-spill-*.replaying</c> file so new spills start a fresh one, then reads and deletes the replaying files.
/// </summary>
/// <remarks>Appends and rotation are serialized by one lock; reading a replaying file needs none (nothing writes it).</remarks>
internal sealed class SpillStore : IDisposable
{
    internal const string ActiveFileName = "usage-spill.jsonl";
    internal const string ReplayingPattern = "usage-spill-*.replaying";

    private const byte NewLine = (byte)'\n';

    private readonly string _directory;
    private readonly string _activePath;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    private readonly ArrayBufferWriter<byte> _buffer = new(4096);
    private readonly Utf8JsonWriter _json;
    private FileStream? _active;
    private long _bytes;
    private long _rotations;
    private bool _initialized;
    private bool _filesFoundOnStart;
    private bool _disposed;

    public SpillStore(string directory, TimeProvider timeProvider)
    {
        _directory = Path.GetFullPath(directory);
        _activePath = Path.Combine(_directory, ActiveFileName);
        _timeProvider = timeProvider;
        _json = new Utf8JsonWriter(_buffer, new JsonWriterOptions { Indented = false, SkipValidation = true });
    }

    public string Directory => _directory;

    /// <summary>Bytes in spill files not yet replayed (active and replaying).</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>True while some spill file may hold records to replay.</summary>
    public bool HasPending => Interlocked.Read(ref _bytes) > 0 || Volatile.Read(ref _filesFoundOnStart);

    /// <summary>Creates the folder and counts the files a previous run left; returns whether there were any.</summary>
    public bool Initialize()
    {
        lock (_lock)
        {
            EnsureInitialized();
            return _filesFoundOnStart;
        }
    }

    /// <summary>Appends <paramref name="records"/> as one write, flushed to the OS and, with <paramref name="flushToDisk"/>, to the disk.</summary>
    /// <returns>The bytes written.</returns>
    public long Append(IReadOnlyList<UsageRecord> records, bool flushToDisk)
    {
        lock (_lock)
        {
            EnsureInitialized();
            _buffer.Clear();
            foreach (var record in records)
            {
                _json.Reset();
                JsonSerializer.Serialize(_json, record, MeteringJsonContext.Default.UsageRecord);
                _json.Flush();
                _buffer.GetSpan(1)[0] = NewLine;
                _buffer.Advance(1);
            }

            var stream = _active ?? OpenActive();
            try
            {
                stream.Write(_buffer.WrittenSpan);
                stream.Flush(flushToDisk);
            }
            catch
            {
                // The file may now end in a torn line: reopen it next time, which repairs the line ending.
                CloseActive(flushToDisk: false);
                throw;
            }

            long written = _buffer.WrittenCount;
            Interlocked.Add(ref _bytes, written);

            if (_disposed)
            {
                CloseActive(flushToDisk: true);
            }

            return written;
        }
    }

    /// <summary>
    /// Renames the active file (if any) to a new <c>.replaying</c> file and returns every replaying file, oldest first.
    /// </summary>
    public IReadOnlyList<string> RotateForReplay()
    {
        lock (_lock)
        {
            EnsureInitialized();
            CloseActive(flushToDisk: true);

            if (File.Exists(_activePath))
            {
                if (new FileInfo(_activePath).Length == 0)
                {
                    File.Delete(_activePath);
                }
                else
                {
                    var stamp = _timeProvider.GetUtcNow().UtcTicks.ToString("D19", CultureInfo.InvariantCulture);
                    var sequence = (++_rotations).ToString("D6", CultureInfo.InvariantCulture);
                    File.Move(_activePath, Path.Combine(_directory, $"usage-spill-{stamp}-{sequence}.replaying"));
                }
            }

            var files = System.IO.Directory.GetFiles(_directory, ReplayingPattern);
            Array.Sort(files, StringComparer.Ordinal);
            return files;
        }
    }

    /// <summary>Deletes a replayed file and takes its size off <see cref="Bytes"/>.</summary>
    public void Delete(string replayingFile)
    {
        lock (_lock)
        {
            var info = new FileInfo(replayingFile);
            if (!info.Exists)
            {
                return;
            }

            var length = info.Length;
            info.Delete();
            Interlocked.Add(ref _bytes, -Math.Min(length, Interlocked.Read(ref _bytes)));
        }
    }

    /// <summary>Called after a complete replay: forgets the files found on start once none is left.</summary>
    public void MarkReplayed()
    {
        lock (_lock)
        {
            if (_active is null && !File.Exists(_activePath) && System.IO.Directory.GetFiles(_directory, ReplayingPattern).Length == 0)
            {
                Volatile.Write(ref _filesFoundOnStart, false);
                Interlocked.Exchange(ref _bytes, 0);
            }
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            // The JSON writer only wraps a managed buffer; it stays usable so records recorded after disposal still spill.
            _disposed = true;
            CloseActive(flushToDisk: true);
        }
    }

    private void EnsureInitialized()
    {
        if (_initialized)
        {
            return;
        }

        System.IO.Directory.CreateDirectory(_directory);
        long bytes = 0;
        var any = false;
        foreach (var path in System.IO.Directory.EnumerateFiles(_directory, ReplayingPattern).Append(_activePath))
        {
            var info = new FileInfo(path);
            if (info.Exists)
            {
                any = true;
                bytes += info.Length;
            }
        }

        Interlocked.Add(ref _bytes, bytes);
        Volatile.Write(ref _filesFoundOnStart, any);
        _initialized = true;
    }

    private FileStream OpenActive()
    {
        var stream = new FileStream(_activePath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, bufferSize: 0);
        try
        {
            var length = stream.Length;
            if (length > 0)
            {
                // A previous write may have been torn (crash, full disk): end that line so the next record starts clean.
                stream.Seek(-1, SeekOrigin.End);
                var last = stream.ReadByte();
                stream.Seek(0, SeekOrigin.End);
                if (last != NewLine)
                {
                    stream.WriteByte(NewLine);
                    Interlocked.Increment(ref _bytes);
                }
            }
        }
        catch
        {
            stream.Dispose();
            throw;
        }

        _active = stream;
        return stream;
    }

    private void CloseActive(bool flushToDisk)
    {
        if (_active is null)
        {
            return;
        }

        try
        {
            if (flushToDisk)
            {
                _active.Flush(flushToDisk: true);
            }
        }
        catch (IOException)
        {
            // Best effort: the data already reached the OS with the last write.
        }
        finally
        {
            _active.Dispose();
            _active = null;
        }
    }
}
