using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Storage.Postgres.Migrations;

public sealed partial class PostgresPartitionMaintenance
{
    /// <summary>EventIds 7100-7199.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7100, EventName = "PartitionCreated", Level = LogLevel.Information,
            Message = "Created partition {Partition} in schema {Schema}")]
        public static partial void PartitionCreated(ILogger logger, string schema, string partition);

        [LoggerMessage(EventId = 7101, EventName = "PartitionDropped", Level = LogLevel.Information,
            Message = "Dropped partition {Partition} of schema {Schema} (past retention)")]
        public static partial void PartitionDropped(ILogger logger, string schema, string partition);

        [LoggerMessage(EventId = 7102, EventName = "RowsMovedFromDefault", Level = LogLevel.Information,
            Message = "Moved {Rows} rows from the default partition into new partition {Partition} of schema {Schema}")]
        public static partial void RowsMovedFromDefault(ILogger logger, string schema, string partition, int rows);
    }
}
