using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Storage.Postgres.Migrations;

public sealed partial class PostgresMigrator
{
    /// <summary>Cortensor.Portal.Storage.Postgres uses EventIds 7000-7999; the migrator 7000-7099.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7000, EventName = "SchemaCreated", Level = LogLevel.Information,
            Message = "Created Postgres schema {Schema}")]
        public static partial void SchemaCreated(ILogger logger, string schema);

        [LoggerMessage(EventId = 7001, EventName = "MigrationApplied", Level = LogLevel.Information,
            Message = "Applied migration {Version} ({Description}) to schema {Schema} in {ElapsedMs:F0} ms")]
        public static partial void MigrationApplied(ILogger logger, string schema, int version, string description, double elapsedMs);

        [LoggerMessage(EventId = 7002, EventName = "MigrationAppliedElsewhere", Level = LogLevel.Information,
            Message = "Migration {Version} of schema {Schema} was applied by another instance meanwhile")]
        public static partial void MigrationAppliedElsewhere(ILogger logger, string schema, int version);

        [LoggerMessage(EventId = 7003, EventName = "SchemaUpToDate", Level = LogLevel.Debug,
            Message = "Schema {Schema} is up to date at version {Version}")]
        public static partial void SchemaUpToDate(ILogger logger, string schema, int version);
    }
}
