using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Redis.RateLimiting;

public sealed partial class RedisRateLimiter
{
    /// <summary>Event ids 8000-8099. Only request ids and counts are logged.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 8000, EventName = "RateLimitReleaseFailed", Level = LogLevel.Warning,
            Message = "Could not release the rate limit lease of request {RequestId} in Redis; retrying its concurrency slots for up to {LeaseTtl} (when they expire anyway)")]
        public static partial void ReleaseFailed(ILogger logger, string requestId, TimeSpan leaseTtl, Exception exception);

        [LoggerMessage(EventId = 8001, EventName = "RateLimitReleaseLanded", Level = LogLevel.Information,
            Message = "The release of request {RequestId} reached Redis after {Attempts} attempts over {Elapsed}")]
        public static partial void ReleaseLanded(ILogger logger, string requestId, int attempts, TimeSpan elapsed);

        [LoggerMessage(EventId = 8002, EventName = "RateLimitReleaseAbandoned", Level = LogLevel.Warning,
            Message = "Gave up releasing request {RequestId} after {Attempts} attempts over {Elapsed}; its slots expire with their lease")]
        public static partial void ReleaseAbandoned(ILogger logger, string requestId, int attempts, TimeSpan elapsed);

        [LoggerMessage(EventId = 8003, EventName = "RateLimitAcquireAbandoned", Level = LogLevel.Debug,
            Message = "The rate limit acquire of request {RequestId} ended with {Outcome} after it may have reached Redis; its concurrency slots are released after it")]
        public static partial void AcquireAbandoned(ILogger logger, string requestId, string outcome);

        [LoggerMessage(EventId = 8004, EventName = "RateLimitLeaseRenewalFailed", Level = LogLevel.Warning,
            Message = "Could not renew {Count} concurrency slot leases in Redis; they expire within {LeaseTtl} unless a later renewal lands")]
        public static partial void LeaseRenewalFailed(ILogger logger, int count, TimeSpan leaseTtl, Exception exception);

        [LoggerMessage(EventId = 8005, EventName = "RateLimitLeasesLost", Level = LogLevel.Warning,
            Message = "{Lost} of {Count} concurrency slots renewed had expired in Redis (unreachable for longer than the lease TTL); they were put back, so those requests count again")]
        public static partial void LeasesLost(ILogger logger, int lost, int count);

        [LoggerMessage(EventId = 8006, EventName = "RateLimitLeasesHeldTooLong", Level = LogLevel.Warning,
            Message = "{Count} requests held their concurrency slots for longer than ConcurrencySlotTtl ({MaxAge}); their leases are no longer renewed")]
        public static partial void LeasesHeldTooLong(ILogger logger, int count, TimeSpan maxAge);
    }
}
