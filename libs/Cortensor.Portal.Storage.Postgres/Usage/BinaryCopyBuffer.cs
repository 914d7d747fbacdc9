using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Cortensor.Portal.Storage.Postgres.Usage;

/// <summary>
/// Builds PostgreSQL binary COPY data (<c>COPY … FROM STDIN (FORMAT BINARY)</c>) in a pooled buffer, for a raw
/// COPY stream: a header, then per row a 16-bit field count and per field a 32-bit length (-1 = NULL) and the
/// value in the type's binary send format (big-endian), then a trailer.
/// </summary>
/// <remarks>
/// Encoding the few types the usage rows need here costs a fraction of <c>NpgsqlBinaryImporter</c>'s per-field
/// type resolution and async calls, which made the client the larger half of the ingest CPU. Values are encoded
/// exactly as Npgsql would: text as UTF-8 (Npgsql sets client_encoding=UTF8), timestamptz as microseconds since
/// 2000-01-01 UTC truncated from ticks, <see cref="DateTime.MinValue"/>/<see cref="DateTime.MaxValue"/> as
/// -infinity/infinity.
/// </remarks>
internal sealed class BinaryCopyBuffer : IDisposable
{
    private const long PostgresEpochTicks = 630822816000000000L; // 2000-01-01T00:00:00Z

    private static readonly byte[] Header = [(byte)'P', (byte)'G', (byte)'C', (byte)'O', (byte)'P', (byte)'Y', (byte)'\n', 0xFF, (byte)'\r', (byte)'\n', 0, 0, 0, 0, 0, 0, 0, 0, 0];

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private byte[] _buffer;
    private int _length;

    public BinaryCopyBuffer(int initialCapacity)
    {
        _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(initialCapacity, 256));
        Header.CopyTo(_buffer, 0);
        _length = Header.Length;
    }

    /// <summary>Bytes written since the last <see cref="Clear"/>.</summary>
    public int Length => _length;

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _length);

    /// <summary>Forgets the written bytes (after they were sent), keeping the buffer.</summary>
    public void Clear() => _length = 0;

    public void StartRow(short fieldCount) => BinaryPrimitives.WriteInt16BigEndian(Reserve(2), fieldCount);

    /// <summary>The end-of-data marker (a field count of -1).</summary>
    public void WriteTrailer() => BinaryPrimitives.WriteInt16BigEndian(Reserve(2), -1);

    public void WriteNull() => BinaryPrimitives.WriteInt32BigEndian(Reserve(4), -1);

    public void WriteText(string? value)
    {
        if (value is null)
        {
            WriteNull();
            return;
        }

        var span = Reserve(4 + Utf8.GetMaxByteCount(value.Length), advance: false);
        var count = Utf8.GetBytes(value, span[4..]);
        BinaryPrimitives.WriteInt32BigEndian(span, count);
        _length += 4 + count;
    }

    public void WriteInt16(short value)
    {
        var span = Reserve(6);
        BinaryPrimitives.WriteInt32BigEndian(span, 2);
        BinaryPrimitives.WriteInt16BigEndian(span[4..], value);
    }

    public void WriteInt32(int value)
    {
        var span = Reserve(8);
        BinaryPrimitives.WriteInt32BigEndian(span, 4);
        BinaryPrimitives.WriteInt32BigEndian(span[4..], value);
    }

    public void WriteInt32(int? value)
    {
        if (value is { } v)
        {
            WriteInt32(v);
        }
        else
        {
            WriteNull();
        }
    }

    public void WriteBoolean(bool value)
    {
        var span = Reserve(5);
        BinaryPrimitives.WriteInt32BigEndian(span, 1);
        span[4] = value ? (byte)1 : (byte)0;
    }

    public void WriteTimestampTz(DateTimeOffset value)
    {
        var ticks = value.UtcTicks;
        var micros = ticks == DateTime.MaxValue.Ticks ? long.MaxValue
            : ticks == DateTime.MinValue.Ticks ? long.MinValue
            : (ticks - PostgresEpochTicks) / 10;
        var span = Reserve(12);
        BinaryPrimitives.WriteInt32BigEndian(span, 8);
        BinaryPrimitives.WriteInt64BigEndian(span[4..], micros);
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private Span<byte> Reserve(int count, bool advance = true)
    {
        if (_buffer.Length - _length < count)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_buffer.Length * 2, _length + count));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = larger;
        }

        var span = _buffer.AsSpan(_length, count);
        if (advance)
        {
            _length += count;
        }

        return span;
    }
}
