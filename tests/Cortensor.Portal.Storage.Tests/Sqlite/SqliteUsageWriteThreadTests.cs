using Cortensor.Portal.Storage.Tests.Postgres;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Storage.Tests.Sqlite;

/// <summary>A SQLite batch runs on a thread of its own, never on the caller's (a thread-pool worker in the usage writer).</summary>
public sealed class SqliteUsageWriteThreadTests
{
    [Fact]
    public async Task A_batch_waiting_for_the_write_lock_returns_to_the_caller_and_lands_once_the_lock_is_free()
    {
        await using var database = new SqliteTestDatabase();
        await using var store = await database.CreateStoreAsync();

        // Another connection holds the write lock (BEGIN IMMEDIATE), as a migration or a second writer would.
        await using var holder = new SqliteConnection(database.Database.ConnectionString);
        await holder.OpenAsync();
        var transaction = holder.BeginTransaction(deferred: false);

        // Before: the call itself blocked in BEGIN IMMEDIATE for up to busy_timeout (5 s) on the calling thread.
        var write = store.Sink.WriteBatchAsync([PostgresTestData.NewUsage("req_locked", DateTimeOffset.UtcNow, 3, 4)], CancellationToken.None);
        Assert.False(write.IsCompleted);
        Assert.Null(await store.Reader.FindUsageEventAsync("req_locked"));

        transaction.Rollback();
        transaction.Dispose();
        await write.WaitAsync(TimeSpan.FromSeconds(10));

        var stored = await store.Reader.FindUsageEventAsync("req_locked");
        Assert.NotNull(stored);
        Assert.Equal(4, stored.CompletionTokens);
    }
}
