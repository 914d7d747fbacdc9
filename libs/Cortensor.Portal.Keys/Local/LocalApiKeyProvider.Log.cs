using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Keys.Local;

public sealed partial class LocalApiKeyProvider
{
    /// <summary>Event ids 3000-3099. Only key ids and display prefixes are logged, never a secret.</summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 3000, EventName = "KeyIssued", Level = LogLevel.Information,
            Message = "Issued API key {KeyId} ({DisplayPrefix}, {Environment}) for org {OrgId}")]
        public static partial void KeyIssued(ILogger logger, string keyId, string orgId, string displayPrefix, ApiKeyEnvironment environment);

        [LoggerMessage(EventId = 3001, EventName = "KeyRevoked", Level = LogLevel.Information,
            Message = "Revoked API key {KeyId} of org {OrgId}")]
        public static partial void KeyRevoked(ILogger logger, string keyId, string orgId);

        [LoggerMessage(EventId = 3002, EventName = "RevokeFoundNoKey", Level = LogLevel.Debug,
            Message = "Revoke found no active API key {KeyId} in org {OrgId}")]
        public static partial void RevokeFoundNoKey(ILogger logger, string keyId, string orgId);

        [LoggerMessage(EventId = 3010, EventName = "MalformedKeyRejected", Level = LogLevel.Debug,
            Message = "Rejected a malformed API key without lookup")]
        public static partial void MalformedKeyRejected(ILogger logger);

        [LoggerMessage(EventId = 3011, EventName = "KeyNotFound", Level = LogLevel.Debug,
            Message = "No API key matches {DisplayPrefix}")]
        public static partial void KeyNotFound(ILogger logger, string displayPrefix);

        [LoggerMessage(EventId = 3012, EventName = "RevokedKeyRejected", Level = LogLevel.Information,
            Message = "Rejected revoked API key {KeyId} ({DisplayPrefix})")]
        public static partial void RevokedKeyRejected(ILogger logger, string keyId, string displayPrefix);

        [LoggerMessage(EventId = 3013, EventName = "ExpiredKeyRejected", Level = LogLevel.Information,
            Message = "Rejected expired API key {KeyId} ({DisplayPrefix})")]
        public static partial void ExpiredKeyRejected(ILogger logger, string keyId, string displayPrefix);
    }
}
