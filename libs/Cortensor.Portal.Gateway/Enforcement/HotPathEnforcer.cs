using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Gateway.Entitlements;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Inference;
using Cortensor.Portal.Gateway.Telemetry;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Metering.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Gateway.Enforcement;

/// <summary>
/// Steps 4 and 5 of the hot path, then the router call: entitlement (the alias is not disabled and is allowed for
/// this key, org and plan), one rate limit decision for the key and its org, and only then (or, with speculative
/// admission, while the decision is on its way) the router call. Cached entitlements and one limiter call: no
/// database round trip, at most one Redis round trip. Right before the router is called the request is written to
/// the usage journal, so a crash from then on still bills it (as interrupted).
/// </summary>
internal sealed partial class HotPathEnforcer(
    EntitlementCache entitlements,
    RateLimitPlanner planner,
    IRateLimiter limiter,
    AdmissionHeadroom headroom,
    GatewayTelemetry telemetry,
    IUsageJournal journal,
    TimeProvider time,
    ILogger<HotPathEnforcer> logger)
{
    /// <summary>
    /// Admits the request, then runs <paramref name="call"/> (the router call) with the token to pass on, and returns
    /// its result. Refusals throw <see cref="GatewayException"/> (429, 503) before any router work, except that a
    /// speculative call already started is cancelled and its result handed to <paramref name="discard"/>.
    /// </summary>
    public async Task<T> CallAdmittedAsync<T>(
        HttpContext context,
        GatewayRequestState state,
        ApiKeyPrincipal principal,
        RoutedRequest routed,
        ProcessingTimer timer,
        Func<CancellationToken, Task<T>> call,
        Func<T, ValueTask>? discard = null)
    {
        var granted = await GetEntitlementsAsync(context, principal, routed.Model);
        var request = planner.Plan(RequestIds.Get(context), principal.OrgId, principal.KeyId, granted.PlanId, routed.EstimatedPromptTokens);
        if (request is null)
        {
            // No limits configured for this key.
            state.Routed(routed.Model.Pool, routed.Target.RouterId, routed.EstimatedPromptTokens);
            Journal(context, state, principal, routed);
            timer.RouterStarted();
            return await call(context.RequestAborted);
        }

        var started = timer.Timestamp();
        var acquire = limiter.AcquireAsync(request, context.RequestAborted);
        // A limiter that answered at once (in process) has nothing to overlap: its decisions are not even remembered.
        var remote = !acquire.IsCompleted;
        if (!remote || !headroom.MaySpeculate(principal.KeyId, request.Tokens))
        {
            var decision = await acquire;
            timer.LimitsDecided(started);
            Admit(context, state, principal, routed, decision, remote);
            Journal(context, state, principal, routed);
            timer.RouterStarted();
            return await call(context.RequestAborted);
        }

        return await SpeculateAsync(context, state, principal, routed, timer, started, acquire, call, discard);
    }

    /// <summary>
    /// The router call starts now; its result is used only once the decision admits the request. The call gets a
    /// token of its own (linked to the client's) so a refusal can cancel it; a stream's reads keep using that token
    /// after this method returns, so it is disposed with the response.
    /// </summary>
    private async Task<T> SpeculateAsync<T>(
        HttpContext context,
        GatewayRequestState state,
        ApiKeyPrincipal principal,
        RoutedRequest routed,
        ProcessingTimer timer,
        long started,
        ValueTask<RateLimitDecision> acquire,
        Func<CancellationToken, Task<T>> call,
        Func<T, ValueTask>? discard)
    {
        var speculation = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        context.Response.RegisterForDispose(speculation);
        Journal(context, state, principal, routed);
        timer.RouterStarted();
        var routerCall = call(speculation.Token);
        try
        {
            var decision = await acquire;
            timer.LimitsDecided(started);
            Admit(context, state, principal, routed, decision, remember: true);
        }
        catch (Exception refusal)
        {
            // Refused, or the limiter failed, or the client left: the router's work is thrown away and the client
            // gets exactly what it would have got without speculation.
            await speculation.CancelAsync();
            await DiscardAsync(routerCall, discard, RequestIds.Get(context));
            state.UpstreamFailed = false;
            state.UpstreamStatus = null;
            telemetry.RecordSpeculativeAdmission(admitted: false);
            if (refusal is GatewayException)
            {
                Log.SpeculativeCallRefused(logger, RequestIds.Get(context), routed.Target.RouterId);
            }

            throw;
        }

        telemetry.RecordSpeculativeAdmission(admitted: true);
        return await routerCall;
    }

    /// <summary>Writes the request's start to the usage journal (no fsync wait): from here a crash bills it as interrupted.</summary>
    private void Journal(HttpContext context, GatewayRequestState state, ApiKeyPrincipal principal, RoutedRequest routed)
    {
        var requestId = RequestIds.Get(context);
        if (state.ReceivedAt == default)
        {
            state.ReceivedAt = time.GetUtcNow();
        }

        journal.Started(new UsageStart
        {
            RequestId = requestId,
            StartedAt = state.ReceivedAt,
            OrgId = principal.OrgId,
            KeyId = principal.KeyId,
            Model = routed.Model.Alias,
            Pool = routed.Model.Pool,
            RouterId = routed.Target.RouterId,
            EstimatedPromptTokens = routed.EstimatedPromptTokens,
            Stream = state.Stream,
            Method = context.Request.Method,
            Path = context.Request.Path.Value ?? "",
        });
        state.Journaled(journal, requestId);
    }

    private async Task DiscardAsync<T>(Task<T> routerCall, Func<T, ValueTask>? discard, string requestId)
    {
        try
        {
            var result = await routerCall;
            if (discard is not null)
            {
                await discard(result);
            }
        }
        catch (Exception ex)
        {
            // Cancelled (as asked) or failed: either way nothing of it reaches the client.
            Log.SpeculativeCallEnded(logger, requestId, ex.GetType().Name);
        }
    }

    private async ValueTask<KeyEntitlements> GetEntitlementsAsync(HttpContext context, ApiKeyPrincipal principal, CatalogModel model)
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

        return granted;
    }

    /// <summary>Notes the decision (headers, lease, and when <paramref name="remember"/> the key's headroom); throws the client's error when refused.</summary>
    private void Admit(HttpContext context, GatewayRequestState state, ApiKeyPrincipal principal, RoutedRequest routed, RateLimitDecision decision, bool remember)
    {
        state.RateLimit = decision;
        state.RateLimitLease = decision.Lease;
        RateLimitHeaders.Apply(context);
        if (remember)
        {
            headroom.Observe(principal.KeyId, decision);
        }

        if (decision.IsAllowed)
        {
            state.Routed(routed.Model.Pool, routed.Target.RouterId, routed.EstimatedPromptTokens);
            return;
        }

        if (decision.Unavailable)
        {
            throw new GatewayException(GatewayError.RateLimiterUnavailable(decision.RetryAfter));
        }

        throw new GatewayException(ToError(decision, routed.Model.Alias, principal, routed.EstimatedPromptTokens));
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
        [LoggerMessage(EventId = 1310, Level = LogLevel.Warning, Message = "Releasing the rate limit hold of request {RequestId} failed; its slot is freed when its lease expires")]
        public static partial void ReleaseFailed(ILogger logger, string requestId, Exception exception);

        [LoggerMessage(EventId = 1311, Level = LogLevel.Information, Message = "Request {RequestId} was refused after its router call to {RouterId} had started speculatively; the call was cancelled")]
        public static partial void SpeculativeCallRefused(ILogger logger, string requestId, string routerId);

        [LoggerMessage(EventId = 1312, Level = LogLevel.Debug, Message = "Request {RequestId}: the discarded speculative router call ended with {Outcome}")]
        public static partial void SpeculativeCallEnded(ILogger logger, string requestId, string outcome);
    }
}
