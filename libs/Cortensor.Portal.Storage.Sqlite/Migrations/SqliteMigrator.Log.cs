using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Storage.Sqlite.Migrations;

public sealed partial class SqliteMigrator
{
    // Cortensor.Portal.Storage.Sqlite uses EventIds 6000–6999.
    private static partial class Log
    {
        [LoggerMessage(EventId = 6000, EventName = "ApplyingMigration", Level = LogLevel.Information,
            Message = "Applying SQLite migration V{Version:0000} {Description} to {DatabasePath}")]
        public static partial void ApplyingMigration(ILogger logger, int version, string description, string databasePath);

        [LoggerMessage(EventId = 6001, EventName = "SchemaCurrent", Level = LogLevel.Information,
            Message = "SQLite database {DatabasePath} is at schema version {Version}")]
        public static partial void SchemaCurrent(ILogger logger, string databasePath, int version);

        [LoggerMessage(EventId = 6002, EventName = "WalNotEnabled", Level = LogLevel.Warning,
            Message = "SQLite database {DatabasePath} stayed in journal mode {JournalMode} instead of WAL; concurrent readers will block writers")]
        public static partial void WalNotEnabled(ILogger logger, string databasePath, string journalMode);
    }
}
