using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Metering.RateLimiting;

public sealed partial class FallbackRateLimiter
{
    /// <summary>Event ids 2100-2199. Only request ids and durations are logged, never keys.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 2100, EventName = "RateLimitStoreUnavailable", Level = LogLevel.Warning,
            Message = "Rate limit store failed; deciding limits per replica (fail-open rules at quota / replicas, fail-closed rules refused) and retrying the store every {RetryInterval}")]
        public static partial void StoreUnavailable(ILogger logger, TimeSpan retryInterval, Exception exception);

        [LoggerMessage(EventId = 2101, EventName = "RateLimitStoreStillUnavailable", Level = LogLevel.Debug,
            Message = "Rate limit store is still failing; next try in {RetryInterval}")]
        public static partial void StoreStillUnavailable(ILogger logger, TimeSpan retryInterval, Exception exception);

        [LoggerMessage(EventId = 2102, EventName = "RateLimitStoreRecovered", Level = LogLevel.Information,
            Message = "Rate limit store recovered after {OutageDuration}; limits are shared again, and {RecoveringRules} rules the replica decided meanwhile are also checked against that local state until the store has caught up")]
        public static partial void StoreRecovered(ILogger logger, TimeSpan outageDuration, int recoveringRules);

        [LoggerMessage(EventId = 2103, EventName = "RateLimitReleaseFailed", Level = LogLevel.Warning,
            Message = "Could not release the rate limit lease of request {RequestId} in the store; its concurrency slots are freed when their lease in the store expires")]
        public static partial void ReleaseFailed(ILogger logger, string requestId, Exception exception);

        [LoggerMessage(EventId = 2104, EventName = "RateLimitStoreCaughtUp", Level = LogLevel.Information,
            Message = "Rate limit store has caught up with every rule decided locally during the outage, {SinceRecovery} after it recovered; limits are decided by the store alone")]
        public static partial void StoreCaughtUp(ILogger logger, TimeSpan sinceRecovery);
    }
}
