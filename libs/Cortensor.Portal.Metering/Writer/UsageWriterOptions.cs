using System.ComponentModel.DataAnnotations;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>Tunes the <see cref="UsageWriter"/>: queue size, batching, spill folder, sink retry backoff and the usage journal.</summary>
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

    /// <summary>
    /// Whether usage is journaled ahead (write-ahead): a request is written to a local journal in
    /// <c>{SpillDirectory}/journal</c> when it is admitted and when it ends, so a crash loses no usage. The next start
    /// stores the finished records the sink had not stored and bills requests that never finished as
    /// <c>Interrupted</c>. Off, a crash loses the queued records and every request in flight.
    /// </summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool JournalEnabled { get; set; } = true;

    /// <summary>
    /// How often the journal is fsynced (group commit). Entries reach the operating system before the request goes
    /// on, so a killed process loses nothing; a machine that loses power loses at most this much of the journal.
    /// </summary>
    /// <value>The default value is 5 milliseconds. From 1 millisecond to 1 second.</value>
    public TimeSpan JournalCommitInterval { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// Size from which the journal starts a new segment (copying the entries not yet stored) and deletes the older
    /// ones; the journal stays around this size plus twice the entries not yet stored.
    /// </summary>
    /// <value>The default value is 4 MiB. From 4 KiB to 1 GiB.</value>
    public long JournalSegmentBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// The shortest time between two progress entries of one stream (tokens sent so far, what an interrupted stream
    /// is billed).
    /// </summary>
    /// <value>The default value is 1 second. More than 0, at most 1 hour.</value>
    public TimeSpan JournalProgressInterval { get; set; } = TimeSpan.FromSeconds(1);
}
