using Cortensor.Portal.Storage.Sqlite.Usage;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>The usage batch's native statements fail as <see cref="SqliteCommand"/> does, and stay usable after a failed row.</summary>
public sealed class RawStatementTests : IAsyncLifetime
{
    private readonly SqliteConnection _connection = new("Data Source=:memory:");

    public async Task InitializeAsync()
    {
        await _connection.OpenAsync();
        using var create = _connection.CreateCommand();
        create.CommandText = "CREATE TABLE t (id TEXT NOT NULL PRIMARY KEY, n INTEGER NOT NULL, note TEXT NULL) STRICT;";
        await create.ExecuteNonQueryAsync();
    }

    public Task DisposeAsync() => _connection.DisposeAsync().AsTask();

    [Fact]
    public void A_row_the_schema_refuses_throws_SqliteException_with_SQLites_message_and_the_next_row_still_lands()
    {
        using var insert = new RawStatement(_connection.Handle!, "INSERT INTO t (id, n, note) VALUES ($id, $n, $note);");

        insert.Text(1, "a");
        insert.Integer(2, null);
        insert.Text(3, null);
        var error = Assert.Throws<SqliteException>(insert.Execute);
        Assert.Equal(19, error.SqliteErrorCode); // SQLITE_CONSTRAINT
        Assert.Contains("NOT NULL constraint failed: t.n", error.Message, StringComparison.Ordinal);

        insert.Integer(2, 7);
        insert.Text(3, "ünï 日本 😀");
        insert.Execute();

        using var read = _connection.CreateCommand();
        read.CommandText = "SELECT id, n, note FROM t;";
        using var reader = read.ExecuteReader();
        Assert.True(reader.Read());
        Assert.Equal(("a", 7L, "ünï 日本 😀"), (reader.GetString(0), reader.GetInt64(1), reader.GetString(2)));
        Assert.False(reader.Read());
    }

    [Fact]
    public void Sql_that_does_not_prepare_throws_SqliteException()
    {
        var error = Assert.Throws<SqliteException>(() => new RawStatement(_connection.Handle!, "INSERT INTO missing (x) VALUES (1);"));

        Assert.Contains("no such table: missing", error.Message, StringComparison.Ordinal);
    }
}
