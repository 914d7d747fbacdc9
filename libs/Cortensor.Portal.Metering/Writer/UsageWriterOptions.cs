using System.ComponentModel.DataAnnotations;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>Tunes the <see cref="UsageWriter"/>: queue size, batching, spill folder and sink retry backoff.</summary>
public sealed class UsageWriterOptions
{
    public const int DefaultQueueCapacity = 100_000;

    public const int DefaultMaxBatchSize = 5_000;

    /// <summary>
    /// Records the in-memory queue holds before <see cref="UsageWriter.Record"/> writes straight to the spill file
    /// (the backpressure). Memory use is bounded by this times the size of one record.
    /// </summary>
    /// <value>The default value is 100,000.</value>
    [Range(1, 10_000_000)]
    public int QueueCapacity { get; set; } = DefaultQueueCapacity;

    /// <summary>The most records handed to <c>IUsageSink.WriteBatchAsync</c> in one call (also for replays).</summary>
    /// <value>The default value is 5,000.</value>
    [Range(1, 1_000_000)]
    public int MaxBatchSize { get; set; } = DefaultMaxBatchSize;

    /// <summary>How long a batch waits for more records after its first one before it is written anyway.</summary>
    /// <value>The default value is 200 milliseconds. Zero writes whatever is queued at once.</value>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>
    /// Folder of the spill files (JSON Lines, one usage record per line) used while the sink is down or the queue is
    /// full. Hosts should point it at persistent storage; one writer (process) per folder.
    /// </summary>
    /// <value>The default value is <c>App_Data/spill</c> under <see cref="AppContext.BaseDirectory"/>.</value>
    [Required]
    public string SpillDirectory { get; set; } = Path.Combine(AppContext.BaseDirectory, "App_Data", "spill");

    /// <summary>Wait before the first probe of a failed sink; it doubles after each failed probe.</summary>
    /// <value>The default value is 1 second.</value>
    public TimeSpan RetryInitialDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between two probes of a failed sink.</summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(30);
}
