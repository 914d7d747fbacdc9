using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Storage.Tests.Contract;

/// <summary>
/// One store, freshly migrated against an empty database, as seen by <see cref="StoreContractTests"/>.
/// Disposing it removes the database (SQLite: the temp file; Postgres: the schema).
/// </summary>
public sealed class StoreUnderTest : IAsyncDisposable
{
    public required IApiKeyStore Keys { get; init; }

    public required IUsageSink Sink { get; init; }

    public required IUsageReader Reader { get; init; }

    /// <summary>Runs the store's migrator again against the same database (must be a no-op).</summary>
    public required Func<Task> MigrateAgainAsync { get; init; }

    /// <summary>Reads the version recorded in <c>schema_version</c>.</summary>
    public required Func<Task<int>> SchemaVersionAsync { get; init; }

    /// <summary>Removes the database; called once by <see cref="DisposeAsync"/>.</summary>
    public Func<ValueTask>? CleanupAsync { get; init; }

    public ValueTask DisposeAsync() => CleanupAsync?.Invoke() ?? ValueTask.CompletedTask;
}
