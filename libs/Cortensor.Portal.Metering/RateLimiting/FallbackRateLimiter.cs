using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// Wraps the shared limiter (Redis) with a per-replica <see cref="InProcessRateLimiter"/> used while the shared store
/// is unreachable.
/// </summary>
/// <remarks>
/// <para>Any exception from the primary, other than an <see cref="OperationCanceledException"/> for the caller's own
/// token, is a store failure: the limiter turns <b>degraded</b> for <see cref="RateLimitingOptions.StoreRetryInterval"/>,
/// during which the primary is not called. After that one call tries the primary again (the others stay on the
/// fallback); a success ends the degraded mode, a failure extends it by another interval.</para>
/// <para>While degraded, a request with a rule whose class fails closed
/// (<see cref="RateLimitingOptions.FailureModes"/>) is refused with <see cref="RateLimitDecision.Unavailable"/> and
/// <see cref="RateLimitDecision.RetryAfter"/> = max(1 s, StoreRetryInterval), without counters. Every other request is
/// decided by the fallback with each quota divided by <see cref="RateLimitingOptions.FallbackReplicas"/> (at least 1)
/// and comes back with <see cref="RateLimitDecision.Degraded"/> set; its counters carry the divided quotas.</para>
/// <para>A lease remembers the limiter that admitted it (<see cref="RateLimitLease.Backend"/>) and is released there. A
/// failing release on the primary is logged and swallowed: its slots are freed when their lease in the store expires.</para>
/// <para>No burst at the transitions (<see cref="FallbackCarryOver"/>): the fallback starts each rule from the shared
/// limiter's last known state instead of a full quota, and after the outage a request the shared limiter admits must
/// also pass the fallback's state of each rule the fallback decided, until the shared store has caught up with it.
/// Pushing the local state into the store instead would need a write per rule to the store at recovery, and with
/// several replicas each pushing its own share the store could not tell them apart.</para>
/// <para>Metrics: the observable gauges <c>cortensor.ratelimit.degraded</c> (1 while degraded) and
/// <c>cortensor.ratelimit.recovering</c> (rules whose fallback state still applies), and the counter
/// <c>cortensor.ratelimit.decisions</c> tagged <c>outcome</c> (allowed, limited, unavailable) and <c>backend</c>
/// (shared; fallback while degraded; recovery when the fallback's state was checked too). Logs: a warning when
/// degraded mode starts, information when it ends and when every rule has caught up.</para>
/// </remarks>
public sealed partial class FallbackRateLimiter : IRateLimiter
{
    private static readonly TimeSpan MinimumUnavailableRetryAfter = TimeSpan.FromSeconds(1);

    private readonly IRateLimiter _primary;
    private readonly IOptionsMonitor<RateLimitingOptions> _options;
    private readonly TimeProvider _timeProvider;
    private readonly ILogger _logger;
    private readonly RateLimitingMetrics _metrics;
    private readonly Lock _stateLock = new();
    private volatile bool _degraded;
    private long _retryPrimaryAt;
    private long _degradedSince;
    private long _recoveredAt;

    /// <summary>Creates the limiter.</summary>
    /// <param name="primary">The shared limiter.</param>
    /// <param name="options">Failure modes, fallback replicas, store retry interval and concurrency slot TTL, read at each call.</param>
    /// <param name="timeProvider">The clock (also of the fallback).</param>
    /// <param name="meterFactory">Creates the package meter.</param>
    /// <param name="logger">Logs degraded mode and failed releases.</param>
    public FallbackRateLimiter(
        IRateLimiter primary,
        IOptionsMonitor<RateLimitingOptions> options,
        TimeProvider timeProvider,
        IMeterFactory meterFactory,
        ILogger<FallbackRateLimiter> logger)
    {
        ArgumentNullException.ThrowIfNull(primary);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(logger);
        _primary = primary;
        _options = options;
        _timeProvider = timeProvider;
        _logger = logger;
        Fallback = new InProcessRateLimiter(options, timeProvider);
        CarryOver = new FallbackCarryOver(Fallback, timeProvider, FallbackCarryOver.DefaultCapacity, OnCaughtUp);
        _metrics = new RateLimitingMetrics(meterFactory, () => _degraded ? 1 : 0, () => CarryOver.Recovering);
    }

    /// <summary>True from a store failure until a call to the primary succeeds again.</summary>
    public bool IsDegraded => _degraded;

    /// <summary>The per-replica limiter used while degraded.</summary>
    internal InProcessRateLimiter Fallback { get; }

    /// <summary>The state carried across the transitions.</summary>
    internal FallbackCarryOver CarryOver { get; }

    /// <inheritdoc/>
    public async ValueTask<RateLimitDecision> AcquireAsync(RateLimitRequest request, CancellationToken cancellationToken = default)
    {
        RateLimitConventions.ThrowIfInvalid(request);
        cancellationToken.ThrowIfCancellationRequested();

        if (!_degraded || TryClaimProbe())
        {
            try
            {
                var decision = await _primary.AcquireAsync(request, cancellationToken);
                if (_degraded)
                {
                    MarkRecovered();
                }

                var backend = RateLimitingMetrics.SharedBackend;
                if (!request.Ephemeral && CarryOver.ObserveShared(request, decision))
                {
                    backend = RateLimitingMetrics.RecoveryBackend;
                    var refused = CarryOver.CheckRecovering(request, Divide(request, Math.Max(1, _options.CurrentValue.FallbackReplicas)), decision);
                    if (refused is not null)
                    {
                        await ReleaseSharedAsync(decision.Lease!, request.Tokens, CancellationToken.None);
                        decision = refused;
                    }
                }

                _metrics.Decision(decision, backend);
                return decision;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception ex)
            {
                MarkDegraded(ex);
            }
        }

        var degraded = DecideDegraded(request);
        _metrics.Decision(degraded, RateLimitingMetrics.FallbackBackend);
        return degraded;
    }

    /// <inheritdoc/>
    public async ValueTask ReleaseAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        ArgumentOutOfRangeException.ThrowIfNegative(actualTokens);
        if (ReferenceEquals(lease.Backend, Fallback))
        {
            await Fallback.ReleaseAsync(lease, actualTokens, cancellationToken);
            return;
        }

        await ReleaseSharedAsync(lease, actualTokens, cancellationToken);
    }

    /// <summary>Releases a lease of the primary; a refused-after-all one keeps its charges (no token refund).</summary>
    private async ValueTask ReleaseSharedAsync(RateLimitLease lease, int actualTokens, CancellationToken cancellationToken)
    {
        if (!lease.Request.Ephemeral)
        {
            CarryOver.ReleasedShared(lease.Request);
        }

        try
        {
            await _primary.ReleaseAsync(lease, actualTokens, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            Log.ReleaseFailed(_logger, lease.Request.RequestId, ex);
        }
    }

    private RateLimitDecision DecideDegraded(RateLimitRequest request)
    {
        var options = _options.CurrentValue;
        if (FailsClosed(request, options.FailureModes))
        {
            return new RateLimitDecision
            {
                IsAllowed = false,
                Unavailable = true,
                Counters = [],
                RetryAfter = options.StoreRetryInterval > MinimumUnavailableRetryAfter ? options.StoreRetryInterval : MinimumUnavailableRetryAfter,
            };
        }

        var divided = Divide(request, Math.Max(1, options.FallbackReplicas));
        var rules = RateLimitConventions.CountRules(request);
        Span<int> held = rules <= 16 ? stackalloc int[rules] : new int[rules];
        if (!request.Ephemeral)
        {
            CarryOver.PrepareFallback(request, held);
        }

        var decision = Fallback.Acquire(divided, held);
        return decision with { Degraded = true };
    }

    private static bool FailsClosed(RateLimitRequest request, RateLimitFailureModes modes)
    {
        foreach (var (partition, rule) in request.EnumerateRules())
        {
            var mode = rule.Class switch
            {
                RateLimitClass.Requests => modes.Requests,
                RateLimitClass.Tokens => modes.Tokens,
                _ => modes.Concurrency,
            };
            if (mode == RateLimitFailureMode.FailClosed)
            {
                return true;
            }
        }

        return false;
    }

    private static RateLimitRequest Divide(RateLimitRequest request, int replicas)
    {
        if (replicas == 1)
        {
            return request;
        }

        var partitions = new RateLimitPartition[request.Partitions.Count];
        for (var p = 0; p < partitions.Length; p++)
        {
            var partition = request.Partitions[p];
            var rules = new RateLimitRule[partition.Rules.Count];
            for (var r = 0; r < rules.Length; r++)
            {
                var rule = partition.Rules[r];
                rules[r] = rule with { Quota = Math.Max(1, rule.Quota / replicas) };
            }

            partitions[p] = partition with { Rules = rules };
        }

        return request with { Partitions = partitions };
    }

    /// <summary>While degraded: true for the one caller that gets to try the primary once the retry time has come.</summary>
    private bool TryClaimProbe()
    {
        var due = Interlocked.Read(ref _retryPrimaryAt);
        var now = _timeProvider.GetTimestamp();
        return now >= due && Interlocked.CompareExchange(ref _retryPrimaryAt, now + RetryIntervalTicks(), due) == due;
    }

    private void MarkDegraded(Exception exception)
    {
        var now = _timeProvider.GetTimestamp();
        var interval = _options.CurrentValue.StoreRetryInterval;
        lock (_stateLock)
        {
            Interlocked.Exchange(ref _retryPrimaryAt, now + RetryIntervalTicks());
            if (_degraded)
            {
                Log.StoreStillUnavailable(_logger, interval, exception);
                return;
            }

            _degradedSince = now;
            CarryOver.BeginOutage();
            _degraded = true;
        }

        Log.StoreUnavailable(_logger, interval, exception);
    }

    private void MarkRecovered()
    {
        TimeSpan outage;
        lock (_stateLock)
        {
            if (!_degraded)
            {
                return;
            }

            _degraded = false;
            _recoveredAt = _timeProvider.GetTimestamp();
            outage = _timeProvider.GetElapsedTime(_degradedSince);
        }

        Log.StoreRecovered(_logger, outage, CarryOver.Recovering);
    }

    private void OnCaughtUp()
    {
        if (!_degraded)
        {
            Log.StoreCaughtUp(_logger, _timeProvider.GetElapsedTime(Interlocked.Read(ref _recoveredAt)));
        }
    }

    private long RetryIntervalTicks() =>
        (long)(_options.CurrentValue.StoreRetryInterval.TotalSeconds * _timeProvider.TimestampFrequency);
}
