using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Gateway.Entitlements;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Gateway.Enforcement;

/// <summary>
/// Steps 4 and 5 of the hot path, before any router work: entitlement (the alias is not disabled and is allowed
/// for this key, org and plan), then one rate limit decision for the key and its org. Cached entitlements and one
/// limiter call: no database round trip, at most one Redis round trip.
/// </summary>
internal sealed partial class HotPathEnforcer(
    EntitlementCache entitlements,
    RateLimitPlanner planner,
    IRateLimiter limiter,
    ILogger<HotPathEnforcer> logger)
{
    public async ValueTask EnforceAsync(HttpContext context, GatewayRequestState state, ApiKeyPrincipal principal, CatalogModel model, int estimatedTokens, ProcessingTimer timer)
    {
        KeyEntitlements granted;
        try
        {
            granted = await entitlements.GetAsync(principal, context.RequestAborted);
        }
        catch (EntitlementsUnavailableException)
        {
            throw new GatewayException(GatewayError.EntitlementsUnavailable());
        }

        if (granted.IsDisabledGlobally(model.Alias))
        {
            throw new GatewayException(GatewayError.ModelNotFound(model.Alias));
        }

        if (!granted.IsAllowed(model.Alias))
        {
            throw new GatewayException(GatewayError.ModelNotAllowedByPolicy(model.Alias));
        }

        var request = planner.Plan(RequestIds.Get(context), principal.OrgId, principal.KeyId, granted.PlanId, estimatedTokens);
        if (request is null)
        {
            return; // no limits configured for this key
        }

        var started = timer.Timestamp();
        var decision = await limiter.AcquireAsync(request, context.RequestAborted);
        timer.LimitsDecided(started);
        state.RateLimit = decision;
        state.RateLimitLease = decision.Lease;
        RateLimitHeaders.Apply(context);
        if (decision.IsAllowed)
        {
            return;
        }

        if (decision.Unavailable)
        {
            throw new GatewayException(GatewayError.RateLimiterUnavailable(decision.RetryAfter));
        }

        throw new GatewayException(ToError(decision, model.Alias, principal, estimatedTokens));
    }

    /// <summary>Ends the request's hold: frees its concurrency slots and settles its tokens. Never throws.</summary>
    public void Release(GatewayRequestState state, int actualTokens)
    {
        if (state.RateLimitLease is not { } lease)
        {
            return;
        }

        state.RateLimitLease = null;
        var release = limiter.ReleaseAsync(lease, actualTokens);
        if (!release.IsCompletedSuccessfully)
        {
            _ = ObserveAsync(release.AsTask(), lease.Request.RequestId);
        }
    }

    private async Task ObserveAsync(Task release, string requestId)
    {
        try
        {
            await release.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.ReleaseFailed(logger, requestId, ex);
        }
    }

    private static GatewayError ToError(RateLimitDecision decision, string model, ApiKeyPrincipal principal, int tokens)
    {
        var limited = decision.LimitedBy;
        var retry = decision.RetryAfter;
        var wait = RateLimitHeaders.GoDuration(retry);
        if (limited is null)
        {
            return GatewayError.RateLimited("requests", $"Rate limit reached for {model}. Please try again in {wait}.", retry);
        }

        var subject = limited.Policy.StartsWith("org-", StringComparison.Ordinal) ? $"organization {principal.OrgId}" : $"API key {principal.DisplayPrefix}…";
        var quota = limited.Rule.Quota;
        return limited.Rule.Class switch
        {
            RateLimitClass.Tokens when tokens > quota => GatewayError.RateLimited(
                "tokens",
                $"Request too large for {model} in {subject} on tokens per min (TPM): Limit {quota}. Reduce the size of your request.",
                retry,
                canEverPass: false),
            RateLimitClass.Tokens => GatewayError.RateLimited(
                "tokens",
                $"Rate limit reached for {model} in {subject} on tokens per min (TPM): Limit {quota}. Please try again in {wait}.",
                retry),
            RateLimitClass.Concurrency => GatewayError.RateLimited(
                "requests",
                $"Too many concurrent requests for {subject}: Limit {quota} in flight. Please try again when one finishes.",
                retry),
            _ => GatewayError.RateLimited(
                "requests",
                $"Rate limit reached for {model} in {subject} on {Describe(limited.Rule)}: Limit {quota}. Please try again in {wait}.",
                retry),
        };
    }

    private static string Describe(RateLimitRule rule) => rule.Window == TimeSpan.FromSeconds(1)
        ? "requests per second (RPS)"
        : rule.Window == TimeSpan.FromMinutes(1) ? "requests per min (RPM)" : $"requests per {rule.Window.TotalSeconds:0} s";

    private static partial class Log
    {
        [LoggerMessage(EventId = 1310, Level = LogLevel.Warning, Message = "Releasing the rate limit hold of request {RequestId} failed; its slot expires by its TTL")]
        public static partial void ReleaseFailed(ILogger logger, string requestId, Exception exception);
    }
}
