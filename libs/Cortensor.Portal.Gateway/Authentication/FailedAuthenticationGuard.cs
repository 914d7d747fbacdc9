using System.Collections.Concurrent;
using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Telemetry;
using Cortensor.Portal.Metering.RateLimiting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Authentication;

/// <summary>Why a request failed authentication: the aggregates' and the metric's <c>reason</c>.</summary>
internal static class FailedAuthenticationReasons
{
    public const string MissingApiKey = "missing_api_key";
    public const string NotBearer = "not_bearer";
    public const string MalformedApiKey = "malformed_api_key";
    public const string InvalidApiKey = "invalid_api_key";
    public const string Revoked = "api_key_revoked";
    public const string Expired = "api_key_expired";
    public const string Disabled = "api_key_disabled";
    public const string Forbidden = "api_key_forbidden";
    public const string ProviderRateLimited = "key_provider_rate_limited";
    public const string UsageExceeded = "insufficient_quota";
    public const string ProviderUnavailable = "key_verification_unavailable";

    /// <summary>Refused before verification: the address spent its allowance of failures.</summary>
    public const string AddressRateLimited = "address_rate_limited";
}

/// <summary>
/// Bounds what requests that fail authentication can cost: each is counted per client address
/// (<see cref="ClientAddress"/>) on the <see cref="IRateLimiter"/> (in Redis mode shared by every replica, with the
/// in-process fallback while Redis is down) under its own partition (scope <c>ip</c>), and once an address is past
/// <see cref="FailedAuthenticationOptions.Burst"/> its requests are answered 429 before their key is verified. No
/// failure writes a usage row: <see cref="FailedAuthenticationAggregator"/> counts them per address and reason, and
/// <see cref="Report"/> logs one line per pair per interval.
/// </summary>
/// <remarks>
/// Only the client's own failures are charged (no key, not bearer, malformed, unknown, revoked, expired, disabled); a
/// key provider that is down, rate limited or refusing a valid key is aggregated but never blocks an address.
/// A refusal is remembered in this replica until the allowance has refilled by one, so another replica learns of a
/// refused address on its next failure from it (that request is verified, charged, refused and answered 429).
/// Requests without an IP address (in-memory servers, Unix sockets behind a proxy that does not forward the address)
/// are aggregated as <c>unknown</c> but never limited: one bucket for all of them would let anyone lock everyone out.
/// </remarks>
internal sealed partial class FailedAuthenticationGuard
{
    /// <summary>The rate-limit partition scope of client addresses.</summary>
    public const string Scope = "ip";

    /// <summary>The rule's name (policy <c>ip-auth_failures</c>).</summary>
    public const string RuleName = "auth_failures";

    private static readonly TimeSpan MinimumRetryAfter = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(1);

    private readonly IRateLimiter _limiter;
    private readonly InProcessRateLimiter _local;
    private readonly IOptionsMonitor<CortensorGatewayOptions> _options;
    private readonly TimeProvider _time;
    private readonly GatewayTelemetry _telemetry;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, long> _refusedUntil = new(StringComparer.Ordinal);
    private long _nextSweep;
    private long _lastReport;

    public FailedAuthenticationGuard(
        IRateLimiter limiter,
        IOptionsMonitor<CortensorGatewayOptions> options,
        IOptionsMonitor<RateLimitingOptions> rateLimits,
        TimeProvider time,
        GatewayTelemetry telemetry,
        ILogger<FailedAuthenticationGuard> logger)
    {
        _limiter = limiter;
        _local = new InProcessRateLimiter(rateLimits, time);
        _options = options;
        _time = time;
        _telemetry = telemetry;
        _logger = logger;
        _lastReport = time.GetTimestamp();
    }

    public FailedAuthenticationAggregator Aggregates { get; } = new();

    /// <summary>Addresses this replica refuses before verification now (expired ones until the next sweep).</summary>
    internal int RefusedAddresses => _refusedUntil.Count;

    private FailedAuthenticationOptions Options => _options.CurrentValue.FailedAuthentication;

    /// <summary>Before verification: the 429 for an address that spent its allowance, or null.</summary>
    public GatewayError? RefuseEarly(HttpContext context, string? address)
    {
        var options = Options;
        if (address is null || !options.Enabled || !_refusedUntil.TryGetValue(address, out var until))
        {
            return null;
        }

        var now = _time.GetTimestamp();
        if (now >= until)
        {
            _refusedUntil.TryRemove(KeyValuePair.Create(address, until));
            return null;
        }

        Count(context, address, FailedAuthenticationReasons.AddressRateLimited, options);
        return Refusal(_time.GetElapsedTime(now, until));
    }

    /// <summary>
    /// After a failed verification: counts it, charges the address when the failure is the client's own, and returns
    /// the error to answer: <paramref name="error"/>, or a 429 when the address is past its allowance.
    /// </summary>
    public async ValueTask<GatewayError> FailedAsync(HttpContext context, string? address, string reason, bool chargeAddress, GatewayError error)
    {
        var options = Options;
        Count(context, address, reason, options);
        if (!chargeAddress || address is null || !options.Enabled)
        {
            return error;
        }

        var request = new RateLimitRequest
        {
            RequestId = RequestIds.Get(context),
            HashTag = Scope + ":" + address,
            Ephemeral = true, // one partition per address: nothing kept for customers' keys may be evicted by a flood
            Partitions = [new RateLimitPartition(Scope, address, [new RateLimitRule(RuleName, RateLimitClass.Requests, options.Burst, options.Window)])],
        };

        // Not the client's token: a failure is charged even when the client has already gone.
        var decision = await _limiter.AcquireAsync(request, CancellationToken.None);
        if (decision.Unavailable)
        {
            // The shared store is down and request limits fail closed: these are still counted, in this replica.
            decision = await _local.AcquireAsync(request, CancellationToken.None);
        }

        if (decision.IsAllowed)
        {
            return error;
        }

        var retryAfter = decision.RetryAfter > MinimumRetryAfter ? decision.RetryAfter : MinimumRetryAfter;
        Remember(address, retryAfter, options);
        return Refusal(retryAfter);
    }

    /// <summary>Logs the interval's aggregates (one line per address and reason) and starts a new interval.</summary>
    public void Report()
    {
        var now = _time.GetTimestamp();
        var seconds = _time.GetElapsedTime(Interlocked.Exchange(ref _lastReport, now), now).TotalSeconds;
        foreach (var (address, reason, count) in Aggregates.Drain())
        {
            if (address is null)
            {
                Log.UntrackedFailures(_logger, count, reason, seconds, Options.MaxTrackedAddresses);
            }
            else
            {
                Log.Failures(_logger, count, address, reason, seconds);
            }
        }
    }

    private void Count(HttpContext context, string? address, string reason, FailedAuthenticationOptions options)
    {
        GatewayRequestState.Of(context).AuthenticationFailed = true;
        Aggregates.Record(address, reason, options.MaxTrackedAddresses);
        _telemetry.RecordAuthenticationFailure(reason);
    }

    private void Remember(string address, TimeSpan retryAfter, FailedAuthenticationOptions options)
    {
        var now = _time.GetTimestamp();
        var until = now + (long)(retryAfter.TotalSeconds * _time.TimestampFrequency);
        if (_refusedUntil.Count >= options.MaxTrackedAddresses && !_refusedUntil.ContainsKey(address))
        {
            Sweep(now);
            if (_refusedUntil.Count >= options.MaxTrackedAddresses)
            {
                return; // still charged on the limiter: its failures get 429 after verification instead of before
            }
        }

        _refusedUntil.AddOrUpdate(address, until, (_, previous) => Math.Max(previous, until));
    }

    /// <summary>Drops expired refusals, at most once per <see cref="SweepInterval"/> (a full table is scanned).</summary>
    private void Sweep(long now)
    {
        var due = Interlocked.Read(ref _nextSweep);
        if (now < due || Interlocked.CompareExchange(ref _nextSweep, now + (long)(SweepInterval.TotalSeconds * _time.TimestampFrequency), due) != due)
        {
            return;
        }

        foreach (var (address, until) in _refusedUntil)
        {
            if (until <= now)
            {
                _refusedUntil.TryRemove(KeyValuePair.Create(address, until));
            }
        }
    }

    private static GatewayError Refusal(TimeSpan retryAfter) => GatewayError.RateLimited(
        "requests",
        $"Too many requests with a missing or invalid API key came from your address. Please try again in {RateLimitHeaders.GoDuration(retryAfter)}.",
        retryAfter);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1410, EventName = "FailedAuthenticationAggregate", Level = LogLevel.Information,
            Message = "{Count} requests from {ClientAddress} failed authentication ({Reason}) in the last {IntervalSeconds:0} s")]
        public static partial void Failures(ILogger logger, long count, string clientAddress, string reason, double intervalSeconds);

        [LoggerMessage(EventId = 1411, EventName = "FailedAuthenticationUntracked", Level = LogLevel.Warning,
            Message = "{Count} requests failed authentication ({Reason}) in the last {IntervalSeconds:0} s from addresses not itemized: more than {MaxTrackedAddresses} (address, reason) pairs in the interval")]
        public static partial void UntrackedFailures(ILogger logger, long count, string reason, double intervalSeconds, int maxTrackedAddresses);
    }
}
