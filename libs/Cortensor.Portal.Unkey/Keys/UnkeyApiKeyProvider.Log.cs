using System.Net;
using Cortensor.Portal.Keys;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Unkey.Keys;

public sealed partial class UnkeyApiKeyProvider
{
    /// <summary>
    /// Event ids 8300-8399. Lines carry key ids, org ids, display prefixes and Unkey's request ids (<c>req_…</c>,
    /// for Unkey support); never a key or the root key.
    /// </summary>
    private static partial class Log
    {
        [LoggerMessage(EventId = 8300, EventName = "UnkeyKeyIssued", Level = LogLevel.Information,
            Message = "Issued API key {KeyId} ({DisplayPrefix}, {Environment}) for org {OrgId} through Unkey (Unkey request {UnkeyRequestId})")]
        public static partial void KeyIssued(ILogger logger, string keyId, string orgId, string displayPrefix, ApiKeyEnvironment environment, string? unkeyRequestId);

        [LoggerMessage(EventId = 8301, EventName = "UnkeyKeyRevoked", Level = LogLevel.Information,
            Message = "Revoked API key {KeyId} of org {OrgId} in Unkey (Unkey request {UnkeyRequestId})")]
        public static partial void KeyRevoked(ILogger logger, string keyId, string orgId, string? unkeyRequestId);

        [LoggerMessage(EventId = 8302, EventName = "UnkeyKeyNotOwned", Level = LogLevel.Debug,
            Message = "Unkey has no key {KeyId} for org {OrgId}")]
        public static partial void KeyNotOwned(ILogger logger, string keyId, string orgId);

        [LoggerMessage(EventId = 8303, EventName = "UnkeyKeyUpdated", Level = LogLevel.Information,
            Message = "Updated API key {KeyId} of org {OrgId} in Unkey (Unkey request {UnkeyRequestId})")]
        public static partial void KeyUpdated(ILogger logger, string keyId, string orgId, string? unkeyRequestId);

        [LoggerMessage(EventId = 8310, EventName = "UnkeyMalformedKeyRejected", Level = LogLevel.Debug,
            Message = "Rejected a key that does not have the shape of a Portal key issued through Unkey, without calling Unkey")]
        public static partial void MalformedKeyRejected(ILogger logger);

        [LoggerMessage(EventId = 8311, EventName = "UnkeyKeyVerified", Level = LogLevel.Debug,
            Message = "Unkey verified key {KeyId} of org {OrgId} (Unkey request {UnkeyRequestId})")]
        public static partial void KeyVerified(ILogger logger, string keyId, string orgId, string? unkeyRequestId);

        [LoggerMessage(EventId = 8312, EventName = "UnkeyKeyRefused", Level = LogLevel.Debug,
            Message = "Unkey refused key {DisplayPrefix} ({KeyId}): {Code} (Unkey request {UnkeyRequestId})")]
        public static partial void KeyRefused(ILogger logger, string displayPrefix, string? keyId, string code, string? unkeyRequestId);

        [LoggerMessage(EventId = 8313, EventName = "UnkeyKeyWithoutIdentity", Level = LogLevel.Warning,
            Message = "Unkey key {KeyId} is valid but has no identity (externalId), so it belongs to no org; refused (Unkey request {UnkeyRequestId})")]
        public static partial void KeyWithoutIdentity(ILogger logger, string? keyId, string? unkeyRequestId);

        [LoggerMessage(EventId = 8314, EventName = "UnkeyKeyEnvironmentMismatch", Level = LogLevel.Warning,
            Message = "Unkey key {KeyId} has meta.environment {MetaEnvironment} but a {Environment} prefix; refused (Unkey request {UnkeyRequestId})")]
        public static partial void EnvironmentMismatch(ILogger logger, string keyId, string metaEnvironment, ApiKeyEnvironment environment, string? unkeyRequestId);

        [LoggerMessage(EventId = 8315, EventName = "UnkeyKeyOfAnotherApi", Level = LogLevel.Warning,
            Message = "Unkey key {KeyId} ({Code}) does not carry meta.portalApiId {ApiId}: a key of another API in the workspace, refused as unknown; give the root key verify_key on {ApiId} only (Unkey request {UnkeyRequestId})")]
        public static partial void KeyOfAnotherApi(ILogger logger, string keyId, string apiId, string code, string? unkeyRequestId);

        [LoggerMessage(EventId = 8320, EventName = "UnkeyUnavailableServingStale", Level = LogLevel.Warning,
            Message = "Unkey could not be asked ({Reason}); key {KeyId} of org {OrgId}, verified {AgeSeconds:0} s ago, keeps working")]
        public static partial void ServingStale(ILogger logger, string reason, string keyId, string orgId, double ageSeconds);

        [LoggerMessage(EventId = 8321, EventName = "UnkeyUnavailableRefused", Level = LogLevel.Warning,
            Message = "Unkey could not be asked ({Reason}); key {DisplayPrefix} was not verified in the last {ServeStaleSeconds:0} s, so it is refused with 503 (Unkey request {UnkeyRequestId})")]
        public static partial void RefusedUnavailable(ILogger logger, string reason, string displayPrefix, double serveStaleSeconds, string? unkeyRequestId, Exception exception);

        [LoggerMessage(EventId = 8322, EventName = "UnkeyVerificationRejected", Level = LogLevel.Error,
            Message = "Unkey rejected the verification call with {Status} ({ErrorCode}, Unkey request {UnkeyRequestId}): check Cortensor:Unkey:RootKey, its verify_key permission on the API and the names in Cortensor:Unkey:RateLimits")]
        public static partial void VerificationRejected(ILogger logger, HttpStatusCode status, string? errorCode, string? unkeyRequestId);

        [LoggerMessage(EventId = 8323, EventName = "UnkeyVerifyPermissionMissing", Level = LogLevel.Error,
            Message = "Unkey answered NOT_FOUND for key {KeyId}, which keys.getKey shows is live: the root key lacks api.{ApiId}.verify_key (Unkey hides a missing permission as NOT_FOUND). Every key is affected; give Cortensor:Unkey:RootKey that permission (Unkey request {UnkeyRequestId})")]
        public static partial void VerifyPermissionMissing(ILogger logger, string keyId, string apiId, string? unkeyRequestId);

        [LoggerMessage(EventId = 8324, EventName = "UnkeyRootKeyCannotReadKey", Level = LogLevel.Error,
            Message = "Unkey answered NOT_FOUND for key {KeyId}, and keys.getKey answered {Status}: the root key lacks api.{ApiId}.verify_key and read_key, or was revoked (Unkey request {UnkeyRequestId})")]
        public static partial void RootKeyCannotReadKey(ILogger logger, string keyId, string apiId, HttpStatusCode status, string? unkeyRequestId);

        [LoggerMessage(EventId = 8325, EventName = "UnkeyNotFoundSpike", Level = LogLevel.Warning,
            Message = "Unkey answered NOT_FOUND {Count} times within {WindowSeconds:0} s: if these are real keys, the root key may lack api.{ApiId}.verify_key (Unkey answers NOT_FOUND then, not 403); otherwise a client is guessing keys")]
        public static partial void NotFoundSpike(ILogger logger, int count, double windowSeconds, string apiId);
    }
}
