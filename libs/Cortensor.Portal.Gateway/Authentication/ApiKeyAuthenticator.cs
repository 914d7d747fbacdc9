using System.Diagnostics;
using System.Globalization;
using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Keys;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Net.Http.Headers;

namespace Cortensor.Portal.Gateway.Authentication;

/// <summary>
/// Reads the customer key from <c>Authorization: Bearer …</c> (or the Azure-style <c>api-key</c> header some
/// OpenAI clients send) and verifies it. The key is never forwarded and never logged.
/// </summary>
/// <remarks>
/// Requests that fail go through <see cref="FailedAuthenticationGuard"/>: an address past its allowance of failures
/// gets 429 before its key is read, and a failure never writes a usage row (it is aggregated).
/// Outcomes: valid → the principal; malformed, unknown, revoked, expired or disabled → 401; forbidden by the
/// provider → 403; a provider rate limit → 429 with <c>Retry-After</c>; a spent allowance → 429
/// <c>insufficient_quota</c>; provider unreachable and the key not remembered → 503 with <c>Retry-After</c>.
/// Rate limits the provider checked go into the request's RateLimit headers; the provider's request id goes into the
/// logs and the trace (<c>cortensor.key_provider.request_id</c>).
/// </remarks>
internal sealed partial class ApiKeyAuthenticator(IApiKeyProvider provider, FailedAuthenticationGuard guard, ILogger<ApiKeyAuthenticator>? logger = null)
{
    /// <summary>Trace tag carrying the key provider's request id (Unkey's <c>req_…</c>).</summary>
    public const string ProviderRequestIdTag = "cortensor.key_provider.request_id";

    private readonly ILogger _logger = logger ?? NullLogger<ApiKeyAuthenticator>.Instance;

    public async ValueTask<ApiKeyPrincipal> AuthenticateAsync(HttpContext context)
    {
        var address = ClientAddress.BucketOf(context.Connection.RemoteIpAddress);
        if (guard.RefuseEarly(context, address) is { } refused)
        {
            throw new GatewayException(refused); // before the key is read: protects the key provider and the store
        }

        var (presented, missing) = ReadPresentedKey(context.Request);
        if (missing is { } absent)
        {
            throw new GatewayException(await guard.FailedAsync(context, address, absent.Reason, chargeAddress: true, absent.Error));
        }

        var verification = await provider.VerifyAsync(presented, context.RequestAborted);
        if (verification.ProviderRequestId is not null || verification.RateLimits.Count > 0)
        {
            Remember(context, verification);
        }

        if (verification.Status == ApiKeyVerificationStatus.Valid && verification.Principal is { } principal)
        {
            return principal;
        }

        if (verification.ProviderRequestId is not null || verification.Status == ApiKeyVerificationStatus.Unavailable)
        {
            Log.KeyRefused(_logger, verification.Status, verification.ProviderCode, verification.ProviderRequestId, RequestIds.Get(context));
        }

        var (reason, clientsFault) = ReasonOf(verification.Status);
        throw new GatewayException(await guard.FailedAsync(context, address, reason, clientsFault, ToError(verification, presented)));
    }

    /// <summary>The failure's reason, and whether it is the client's own (those count against its address).</summary>
    private static (string Reason, bool ClientsFault) ReasonOf(ApiKeyVerificationStatus status) => status switch
    {
        ApiKeyVerificationStatus.Malformed => (FailedAuthenticationReasons.MalformedApiKey, true),
        ApiKeyVerificationStatus.Revoked => (FailedAuthenticationReasons.Revoked, true),
        ApiKeyVerificationStatus.Expired => (FailedAuthenticationReasons.Expired, true),
        ApiKeyVerificationStatus.Disabled => (FailedAuthenticationReasons.Disabled, true),
        ApiKeyVerificationStatus.Forbidden => (FailedAuthenticationReasons.Forbidden, false),
        ApiKeyVerificationStatus.RateLimited => (FailedAuthenticationReasons.ProviderRateLimited, false),
        ApiKeyVerificationStatus.UsageExceeded => (FailedAuthenticationReasons.UsageExceeded, false),
        ApiKeyVerificationStatus.Unavailable => (FailedAuthenticationReasons.ProviderUnavailable, false),
        _ => (FailedAuthenticationReasons.InvalidApiKey, true), // not found, or an outcome this gateway does not know
    };

    private static void Remember(HttpContext context, ApiKeyVerification verification)
    {
        var state = GatewayRequestState.Of(context);
        if (verification.ProviderRequestId is { } providerRequestId)
        {
            state.KeyProviderRequestId = providerRequestId;
            Activity.Current?.SetTag(ProviderRequestIdTag, providerRequestId);
        }

        if (verification.RateLimits.Count > 0)
        {
            state.ProviderRateLimits = verification.RateLimits;
            RateLimitHeaders.Apply(context); // also on a successful response (error responses apply them again)
        }
    }

    private static GatewayError ToError(ApiKeyVerification verification, string presented) => verification.Status switch
    {
        ApiKeyVerificationStatus.Revoked => GatewayError.RevokedApiKey(DisplayPrefix(presented)),
        ApiKeyVerificationStatus.Expired => GatewayError.ExpiredApiKey(DisplayPrefix(presented)),
        ApiKeyVerificationStatus.Disabled => GatewayError.DisabledApiKey(DisplayPrefix(presented)),
        ApiKeyVerificationStatus.Forbidden when verification.ProviderCode is "INSUFFICIENT_PERMISSIONS" => GatewayError.ApiKeyForbidden(
            "insufficient_permissions",
            $"The API key {DisplayPrefix(presented)}… lacks a permission this request needs."),
        ApiKeyVerificationStatus.Forbidden => GatewayError.ApiKeyForbidden(
            "api_key_forbidden",
            $"The API key {DisplayPrefix(presented)}… may not be used from here."),
        ApiKeyVerificationStatus.RateLimited => RateLimited(verification, presented),
        ApiKeyVerificationStatus.UsageExceeded => GatewayError.InsufficientQuota(),
        ApiKeyVerificationStatus.Unavailable => GatewayError.KeyVerificationUnavailable(verification.RetryAfter ?? TimeSpan.FromSeconds(1)),
        _ => GatewayError.InvalidApiKey(Mask(presented)), // malformed, unknown, or an outcome this gateway does not know
    };

    private static GatewayError RateLimited(ApiKeyVerification verification, string presented)
    {
        var retry = verification.RetryAfter is { } after && after > TimeSpan.Zero ? after : TimeSpan.FromSeconds(1);
        var wait = RateLimitHeaders.GoDuration(retry);
        var limit = verification.RateLimits.FirstOrDefault(l => l.Exceeded);
        var subject = $"API key {DisplayPrefix(presented)}…";
        var message = limit is null
            ? $"Rate limit reached for {subject}. Please try again in {wait}."
            : string.Create(CultureInfo.InvariantCulture, $"Rate limit reached for {subject} on {limit.Name}: Limit {limit.Limit} per {RateLimitHeaders.GoDuration(limit.Window)}. Please try again in {wait}.");
        return GatewayError.RateLimited("requests", message, retry);
    }

    /// <summary>The presented key, or why there is none.</summary>
    private static (string Key, (GatewayError Error, string Reason)? Missing) ReadPresentedKey(HttpRequest request)
    {
        var authorization = request.Headers[HeaderNames.Authorization].ToString();
        if (authorization.Length == 0)
        {
            var apiKeyHeader = request.Headers["api-key"].ToString().Trim();
            return apiKeyHeader.Length > 0 ? (apiKeyHeader, null) : ("", (GatewayError.MissingApiKey(), FailedAuthenticationReasons.MissingApiKey));
        }

        const string scheme = "Bearer ";
        if (!authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return ("", (GatewayError.NotBearer(), FailedAuthenticationReasons.NotBearer));
        }

        var key = authorization.AsSpan(scheme.Length).Trim();
        return key.Length > 0 ? (key.ToString(), null) : ("", (GatewayError.MissingApiKey(), FailedAuthenticationReasons.MissingApiKey));
    }

    /// <summary>OpenAI-style mask: a few leading characters and the last four, so users can tell keys apart.</summary>
    internal static string Mask(string key)
    {
        if (key.Length < 16)
        {
            return "***";
        }

        var head = key.IndexOf('_', 3) is var i and > 0 and < 12 ? i + 1 : 6;
        return string.Concat(key.AsSpan(0, head), "***", key.AsSpan(key.Length - 4));
    }

    private static string DisplayPrefix(string key) => key.Length > 16 ? key[..16] : Mask(key);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1400, EventName = "ApiKeyRefusedByProvider", Level = LogLevel.Information,
            Message = "Request {RequestId}: the key provider answered {Status} (code {ProviderCode}, provider request {ProviderRequestId})")]
        public static partial void KeyRefused(ILogger logger, ApiKeyVerificationStatus status, string? providerCode, string? providerRequestId, string requestId);
    }
}
