namespace Cortensor.Portal.Metering.Writer;

/// <summary>What <see cref="UsageWriter.GetStatus"/> reports: the writer's backlog at one moment.</summary>
/// <param name="QueueDepth">Records waiting in the in-memory queue.</param>
/// <param name="QueueCapacity">Records the queue holds before new ones spill straight to disk.</param>
/// <param name="SpillBytes">Bytes of spilled records not replayed yet.</param>
/// <param name="IsSinkHealthy">False from a failed sink write until a write succeeds again.</param>
/// <param name="IsStopped">True once the writer is stopping: new records go to the spill file for the next run.</param>
public readonly record struct UsageWriterStatus(int QueueDepth, int QueueCapacity, long SpillBytes, bool IsSinkHealthy, bool IsStopped)
{
    /// <summary>True while the usage journal cannot be written or fsynced: a crash now could lose usage.</summary>
    public bool IsJournalFailing { get; init; }
}
