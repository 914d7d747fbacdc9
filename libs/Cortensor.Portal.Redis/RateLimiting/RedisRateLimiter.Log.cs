using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Redis.RateLimiting;

public sealed partial class RedisRateLimiter
{
    /// <summary>Event ids 8000-8099. Only request ids are logged.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 8000, EventName = "RateLimitReleaseFailed", Level = LogLevel.Warning,
            Message = "Could not release the rate limit lease of request {RequestId} in Redis; its concurrency slots expire by their TTL")]
        public static partial void ReleaseFailed(ILogger logger, string requestId, Exception exception);
    }
}
