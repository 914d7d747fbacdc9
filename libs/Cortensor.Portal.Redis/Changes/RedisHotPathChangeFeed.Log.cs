using Cortensor.Portal.Keys.Changes;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Redis.Changes;

public sealed partial class RedisHotPathChangeFeed
{
    /// <summary>Event ids 8100-8199. Notices carry ids only.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 8100, EventName = "ChangePublishFailed", Level = LogLevel.Warning,
            Message = "Could not publish hot-path change {Kind}:{Id} to Redis; other replicas learn of it when their caches expire")]
        public static partial void PublishFailed(ILogger logger, HotPathChangeKind kind, string? id, Exception exception);

        [LoggerMessage(EventId = 8101, EventName = "ChangeSubscribeFailed", Level = LogLevel.Warning,
            Message = "Could not subscribe to {Channel} yet; the client subscribes again when Redis is reachable")]
        public static partial void SubscribeFailed(ILogger logger, string channel, Exception exception);

        [LoggerMessage(EventId = 8102, EventName = "ChangeMalformedNotice", Level = LogLevel.Warning,
            Message = "Ignored a malformed notice on {Channel}")]
        public static partial void MalformedNotice(ILogger logger, string channel);

        [LoggerMessage(EventId = 8103, EventName = "ChangeSubscriberFailed", Level = LogLevel.Error,
            Message = "A hot-path change subscriber failed on {Kind}:{Id}")]
        public static partial void SubscriberFailed(ILogger logger, HotPathChangeKind kind, string? id, Exception exception);

        [LoggerMessage(EventId = 8104, EventName = "ChangeFeedReconnected", Level = LogLevel.Information,
            Message = "Redis change feed connection to {EndPoint} (re)established; forgetting every cached hot-path entry")]
        public static partial void ConnectionRestored(ILogger logger, string? endPoint);
    }
}
