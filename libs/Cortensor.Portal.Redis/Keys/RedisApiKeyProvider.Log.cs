using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Redis.Keys;

public sealed partial class RedisApiKeyProvider
{
    /// <summary>Event ids 8200-8299. Only key ids are logged, never a key or its hash.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 8200, EventName = "KeyCacheReadFailed", Level = LogLevel.Debug,
            Message = "Redis key cache unavailable; verifying against the store")]
        public static partial void CacheReadFailed(ILogger logger, Exception exception);

        [LoggerMessage(EventId = 8201, EventName = "KeyCacheWriteFailed", Level = LogLevel.Debug,
            Message = "Could not update the Redis key cache for {KeyId}")]
        public static partial void CacheWriteFailed(ILogger logger, string? keyId, Exception exception);

        [LoggerMessage(EventId = 8202, EventName = "KeyTombstoneDeferred", Level = LogLevel.Warning,
            Message = "Revoked API key {KeyId} but could not mark it revoked in Redis; retrying when Redis is back")]
        public static partial void TombstoneDeferred(ILogger logger, string keyId, Exception exception);

        [LoggerMessage(EventId = 8203, EventName = "KeyCacheEntryUnreadable", Level = LogLevel.Warning,
            Message = "Ignored an unreadable entry in the Redis key cache")]
        public static partial void UnreadableEntry(ILogger logger);
    }
}
