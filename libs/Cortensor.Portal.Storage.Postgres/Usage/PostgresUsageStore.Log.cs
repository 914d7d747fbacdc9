using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Storage.Postgres.Usage;

public sealed partial class PostgresUsageStore
{
    /// <summary>EventIds 7300-7399.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 7300, EventName = "BatchWritten", Level = LogLevel.Debug,
            Message = "Wrote a usage batch of {Records} records ({Requests} request rows, {Connections} connections) in {ElapsedMs:F1} ms")]
        public static partial void BatchWritten(ILogger logger, int records, int requests, int connections, double elapsedMs);

        [LoggerMessage(EventId = 7301, EventName = "BatchMerged", Level = LogLevel.Debug,
            Message = "A usage batch of {Records} records held rows already stored; merged it ({NewRequests} new request rows, {FilledRequests} stored rows completed) in {ElapsedMs:F1} ms")]
        public static partial void BatchMerged(ILogger logger, int records, long newRequests, long filledRequests, double elapsedMs);
    }
}
