using System.Collections.Concurrent;

namespace Cortensor.Portal.Metering.Usage;

/// <summary>
/// A thread-safe, process-local <see cref="IUsageSink"/> and <see cref="IUsageReader"/>: the embedded default until a
/// durable store replaces it, and a test double. Idempotent by request id: the first record written for an id wins
/// and later ones are counted as duplicates and ignored. Nothing survives a restart.
/// </summary>
public sealed class InMemoryUsageSink : IUsageSink, IUsageReader
{
    private readonly ConcurrentDictionary<string, UsageRecord> _records = new(StringComparer.Ordinal);
    private long _batches;
    private long _received;
    private long _duplicates;

    /// <summary>Distinct request ids stored.</summary>
    public int Count => _records.Count;

    /// <summary>Batches accepted by <see cref="WriteBatchAsync"/>.</summary>
    public long BatchCount => Interlocked.Read(ref _batches);

    /// <summary>Records received, duplicates included.</summary>
    public long ReceivedCount => Interlocked.Read(ref _received);

    /// <summary>Records ignored because their request id was already stored.</summary>
    public long DuplicateCount => Interlocked.Read(ref _duplicates);

    /// <summary>A snapshot of the stored records (one per request id), in no particular order.</summary>
    public IReadOnlyCollection<UsageRecord> Records => _records.Values.ToArray();

    /// <summary>Returns whether a record with <paramref name="requestId"/> is stored.</summary>
    public bool Contains(string requestId) => _records.ContainsKey(requestId);

    /// <summary>Gets the stored record of <paramref name="requestId"/>.</summary>
    public bool TryGet(string requestId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out UsageRecord? record) =>
        _records.TryGetValue(requestId, out record);

    /// <inheritdoc />
    public Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        cancellationToken.ThrowIfCancellationRequested();

        foreach (var record in batch)
        {
            ArgumentNullException.ThrowIfNull(record);
            if (!_records.TryAdd(record.Usage.RequestId, record))
            {
                Interlocked.Increment(ref _duplicates);
            }
        }

        Interlocked.Add(ref _received, batch.Count);
        Interlocked.Increment(ref _batches);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<UsageTotals> GetTotalsAsync(string orgId, DateTimeOffset from, DateTimeOffset to, string? keyId = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        long requests = 0, prompt = 0, completion = 0;
        foreach (var record in _records.Values)
        {
            var usage = record.Usage;
            if (string.Equals(usage.OrgId, orgId, StringComparison.Ordinal)
                && (keyId is null || string.Equals(usage.KeyId, keyId, StringComparison.Ordinal))
                && usage.OccurredAt >= from
                && usage.OccurredAt < to)
            {
                requests++;
                prompt += usage.PromptTokens;
                completion += usage.CompletionTokens;
            }
        }

        return Task.FromResult(new UsageTotals(requests, prompt, completion));
    }

    /// <inheritdoc />
    public Task<UsageEvent?> FindUsageEventAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        return Task.FromResult(_records.TryGetValue(requestId, out var record) ? record.Usage : null);
    }

    /// <inheritdoc />
    public Task<RequestLogEntry?> FindRequestLogAsync(string requestId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(requestId);
        return Task.FromResult(_records.TryGetValue(requestId, out var record) ? record.Log : null);
    }
}
