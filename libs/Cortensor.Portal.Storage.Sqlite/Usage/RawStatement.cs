using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace Cortensor.Portal.Storage.Sqlite.Usage;

/// <summary>
/// One statement prepared on a connection's native handle, bound by parameter position and stepped once per row.
/// For the usage batch, where <see cref="SqliteCommand"/>'s per-bind and per-execute objects were most of its cost.
/// </summary>
/// <remarks>Errors surface as <see cref="SqliteException"/>, as they do through <see cref="SqliteCommand"/>.</remarks>
internal sealed class RawStatement : IDisposable
{
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;

    public RawStatement(sqlite3 db, string sql)
    {
        _db = db;
        Check(raw.sqlite3_prepare_v2(db, sql, out _statement));
    }

    /// <summary>Binds <paramref name="value"/> (NULL when null) to the 1-based parameter <paramref name="index"/>.</summary>
    public void Text(int index, string? value) =>
        Check(value is null ? raw.sqlite3_bind_null(_statement, index) : raw.sqlite3_bind_text16(_statement, index, value.AsSpan()));

    /// <summary>Binds <paramref name="value"/> (NULL when null) to the 1-based parameter <paramref name="index"/>.</summary>
    public void Integer(int index, long? value) =>
        Check(value is { } v ? raw.sqlite3_bind_int64(_statement, index, v) : raw.sqlite3_bind_null(_statement, index));

    /// <summary>Runs the statement with the values bound, then resets it for the next row (bindings stay until rebound).</summary>
    public void Execute()
    {
        var rc = raw.sqlite3_step(_statement);
        raw.sqlite3_reset(_statement);
        if (rc != raw.SQLITE_DONE)
        {
            Check(rc);
        }
    }

    public void Dispose() => _statement.Dispose();

    private void Check(int rc) => SqliteException.ThrowExceptionForRC(rc, _db);
}
