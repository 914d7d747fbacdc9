using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Metering.Journal;

internal sealed partial class UsageJournal
{
    /// <summary>Event ids 2020-2039 (the writer's range). Only counts and paths are logged.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 2021, EventName = "JournalLineSkipped", Level = LogLevel.Warning,
            Message = "Skipped an unreadable line at byte {Offset} of usage journal segment {Segment} (a write torn by a crash)")]
        public static partial void LineSkipped(ILogger logger, long offset, string segment);

        [LoggerMessage(EventId = 2022, EventName = "JournalWriteFailed", Level = LogLevel.Error,
            Message = "Could not write to the usage journal in {JournalDirectory}; usage is kept in memory only until a write succeeds")]
        public static partial void WriteFailed(ILogger logger, string journalDirectory, Exception exception);

        [LoggerMessage(EventId = 2023, EventName = "JournalWriteRecovered", Level = LogLevel.Information,
            Message = "Writes to the usage journal in {JournalDirectory} succeed again")]
        public static partial void WriteRecovered(ILogger logger, string journalDirectory);

        [LoggerMessage(EventId = 2024, EventName = "JournalCommitFailed", Level = LogLevel.Error,
            Message = "Could not fsync the usage journal in {JournalDirectory}; retrying every commit interval")]
        public static partial void CommitFailed(ILogger logger, string journalDirectory, Exception exception);

        [LoggerMessage(EventId = 2025, EventName = "JournalCommitRecovered", Level = LogLevel.Information,
            Message = "The usage journal in {JournalDirectory} is committed to disk again")]
        public static partial void CommitRecovered(ILogger logger, string journalDirectory);

        [LoggerMessage(EventId = 2026, EventName = "JournalDeleteFailed", Level = LogLevel.Warning,
            Message = "Could not delete usage journal segment {Segment}")]
        public static partial void DeleteFailed(ILogger logger, string segment, Exception exception);
    }
}
