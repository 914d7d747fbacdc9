using System.Collections.Concurrent;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Metering.Tests.TestDoubles;

/// <summary>Forwards to an <see cref="InMemoryUsageSink"/> and remembers every call.</summary>
internal class RecordingSink : IUsageSink
{
    private readonly ConcurrentQueue<int> _batchSizes = new();
    private int _calls;
    private int _failures;

    public InMemoryUsageSink Store { get; } = new();

    public ConcurrentDictionary<string, int> Received { get; } = new(StringComparer.Ordinal);

    public IReadOnlyCollection<int> BatchSizes => _batchSizes.ToArray();

    public int Calls => Volatile.Read(ref _calls);

    public int Failures => Volatile.Read(ref _failures);

    public async Task WriteBatchAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _calls);
        _batchSizes.Enqueue(batch.Count);
        try
        {
            await BeforeWriteAsync(batch, cancellationToken);
        }
        catch
        {
            Interlocked.Increment(ref _failures);
            throw;
        }

        foreach (var record in batch)
        {
            Received.AddOrUpdate(record.Usage.RequestId, 1, static (_, n) => n + 1);
        }

        await Store.WriteBatchAsync(batch, cancellationToken);
    }

    protected virtual Task BeforeWriteAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>Fails every write while <see cref="Failing"/> is set (a database outage).</summary>
internal sealed class FlakySink : RecordingSink
{
    public volatile bool Failing = true;

    protected override Task BeforeWriteAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken) =>
        Failing ? throw new InvalidOperationException("database is down") : Task.CompletedTask;
}

/// <summary>Blocks every write until <see cref="Open"/> is called.</summary>
internal sealed class GatedSink : RecordingSink
{
    private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public void Open() => _gate.TrySetResult();

    protected override Task BeforeWriteAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken) =>
        _gate.Task.WaitAsync(cancellationToken);
}

/// <summary>Never finishes a write and ignores cancellation (a hung database driver).</summary>
internal sealed class HungSink : RecordingSink
{
    protected override Task BeforeWriteAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken) =>
        new TaskCompletionSource().Task;
}

/// <summary>Fails a seeded random share of writes.</summary>
internal sealed class RandomFailingSink(int seed, double failureRate) : RecordingSink
{
    private readonly Random _random = new(seed);
    private readonly Lock _lock = new();

    protected override Task BeforeWriteAsync(IReadOnlyList<UsageRecord> batch, CancellationToken cancellationToken)
    {
        bool fail;
        lock (_lock)
        {
            fail = _random.NextDouble() < failureRate;
        }

        return fail ? throw new InvalidOperationException("random failure") : Task.CompletedTask;
    }
}
