using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Metering.Writer;

public sealed partial class UsageWriter
{
    /// <summary>Event ids 2000-2099. Only counts, paths and request ids are logged, never prompts or keys.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 2000, EventName = "SinkUnavailable", Level = LogLevel.Warning,
            Message = "Usage sink failed writing a batch of {Count} records; spilling usage records to {SpillDirectory} until it recovers")]
        public static partial void SinkUnavailable(ILogger logger, int count, string spillDirectory, Exception exception);

        [LoggerMessage(EventId = 2001, EventName = "SinkProbeFailed", Level = LogLevel.Debug,
            Message = "Usage sink is still failing; next probe in {Backoff}")]
        public static partial void SinkProbeFailed(ILogger logger, TimeSpan backoff, Exception exception);

        [LoggerMessage(EventId = 2002, EventName = "SinkRecovered", Level = LogLevel.Information,
            Message = "Usage sink recovered after {OutageDuration}; replaying {SpillBytes} bytes of spilled records")]
        public static partial void SinkRecovered(ILogger logger, TimeSpan outageDuration, long spillBytes);

        [LoggerMessage(EventId = 2003, EventName = "QueueFull", Level = LogLevel.Warning,
            Message = "Usage queue is full ({QueueCapacity} records); recording straight to the spill file in {SpillDirectory}")]
        public static partial void QueueFull(ILogger logger, int queueCapacity, string spillDirectory);

        [LoggerMessage(EventId = 2004, EventName = "RecordedAfterStop", Level = LogLevel.Information,
            Message = "Usage recorded after the writer stopped goes to the spill file in {SpillDirectory} for the next start")]
        public static partial void RecordedAfterStop(ILogger logger, string spillDirectory);

        [LoggerMessage(EventId = 2005, EventName = "LeftoverSpillFound", Level = LogLevel.Information,
            Message = "Found {SpillBytes} bytes of spilled usage records in {SpillDirectory}; replaying them")]
        public static partial void LeftoverSpillFound(ILogger logger, long spillBytes, string spillDirectory);

        [LoggerMessage(EventId = 2006, EventName = "SpillFileReplayed", Level = LogLevel.Information,
            Message = "Replayed {Count} usage records ({Skipped} unreadable lines skipped) from {SpillFile}")]
        public static partial void SpillFileReplayed(ILogger logger, long count, int skipped, string spillFile);

        [LoggerMessage(EventId = 2007, EventName = "SpillLineSkipped", Level = LogLevel.Warning,
            Message = "Skipped an unreadable line at byte {Offset} of spill file {SpillFile} (a write torn by a crash)")]
        public static partial void SpillLineSkipped(ILogger logger, long offset, string spillFile);

        [LoggerMessage(EventId = 2008, EventName = "SpillReplayFailed", Level = LogLevel.Error,
            Message = "Could not replay spilled usage records at {SpillPath}; retrying later")]
        public static partial void SpillReplayFailed(ILogger logger, string spillPath, Exception exception);

        [LoggerMessage(EventId = 2009, EventName = "SpillFailed", Level = LogLevel.Error,
            Message = "Could not append {Count} usage records to the spill file in {SpillDirectory}")]
        public static partial void SpillFailed(ILogger logger, int count, string spillDirectory, Exception exception);

        [LoggerMessage(EventId = 2010, EventName = "RecordsLost", Level = LogLevel.Critical,
            Message = "{Count} usage records were lost: the writer is stopping and neither the sink nor the spill file took them")]
        public static partial void RecordsLost(ILogger logger, int count);

        [LoggerMessage(EventId = 2011, EventName = "ShutdownDeadlineReached", Level = LogLevel.Warning,
            Message = "Shutdown deadline reached with {QueueDepth} usage records queued; spilling them to {SpillDirectory} for the next start")]
        public static partial void ShutdownDeadlineReached(ILogger logger, int queueDepth, string spillDirectory);

        [LoggerMessage(EventId = 2012, EventName = "LoopFailed", Level = LogLevel.Error,
            Message = "Unexpected error in the usage writer loop")]
        public static partial void LoopFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 2020, EventName = "JournalRecovered", Level = LogLevel.Information,
            Message = "Recovered {Finished} finished and {Interrupted} interrupted usage records from {Segments} journal segments ({Skipped} unreadable lines skipped) in {JournalDirectory}; they are replayed to the store")]
        public static partial void JournalRecovered(ILogger logger, int finished, int interrupted, int segments, int skipped, string journalDirectory);

        [LoggerMessage(EventId = 2027, EventName = "JournalRecoveryFailed", Level = LogLevel.Error,
            Message = "Could not recover the usage journal in {JournalDirectory}; its segments are kept for the next start")]
        public static partial void JournalRecoveryFailed(ILogger logger, string journalDirectory, Exception exception);

        [LoggerMessage(EventId = 2028, EventName = "JournalFolderInUse", Level = LogLevel.Warning,
            Message = "The usage journal folder {JournalDirectory} is in use by another usage writer (one process per spill folder); this writer runs without a journal, so a crash can lose its usage")]
        public static partial void JournalFolderInUse(ILogger logger, string journalDirectory);

        [LoggerMessage(EventId = 2029, EventName = "JournalFolderInUseInProcess", Level = LogLevel.Information,
            Message = "The usage journal folder {JournalDirectory} is in use by another usage writer of this process (set a spill folder per host); this writer runs without a journal")]
        public static partial void JournalFolderInUseInProcess(ILogger logger, string journalDirectory);
    }
}
