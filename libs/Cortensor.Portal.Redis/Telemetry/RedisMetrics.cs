using System.Diagnostics.Metrics;

namespace Cortensor.Portal.Redis.Telemetry;

/// <summary>
/// The instruments of this package, all on its one meter <see cref="MeterName"/>. Only counts: no org, key or request
/// ids as tags.
/// </summary>
public sealed class RedisMetrics : IDisposable
{
    /// <summary>The meter's name, for <c>AddMeter(...)</c>.</summary>
    public const string MeterName = "Cortensor.Portal.Redis";

    public const string LeasesInFlightName = "cortensor.ratelimit.lease.in_flight";
    public const string LeaseRenewalFailuresName = "cortensor.ratelimit.lease.renewal_failures";
    public const string LeasesLostName = "cortensor.ratelimit.lease.lost";
    public const string ReleasesFailedName = "cortensor.ratelimit.release.failed";
    public const string ReleaseRetriesName = "cortensor.ratelimit.release.retries";
    public const string ReleasesPendingName = "cortensor.ratelimit.release.pending";
    public const string ReleasesAbandonedName = "cortensor.ratelimit.release.abandoned";
    public const string AcquiresCompensatedName = "cortensor.ratelimit.acquire.compensated";

    private readonly Meter? _ownMeter;
    private readonly Counter<long> _leaseRenewalFailures;
    private readonly Counter<long> _leasesLost;
    private readonly Counter<long> _releasesFailed;
    private readonly Counter<long> _releaseRetries;
    private readonly Counter<long> _releasesAbandoned;
    private readonly Counter<long> _acquiresCompensated;

    /// <param name="meterFactory">Creates the meter; without one the meter is this object's own (disposed with it).</param>
    /// <param name="leasesInFlight">Read by the in-flight gauge.</param>
    /// <param name="releasesPending">Read by the pending-retries gauge.</param>
    internal RedisMetrics(IMeterFactory? meterFactory, Func<int> leasesInFlight, Func<int> releasesPending)
    {
        var meter = meterFactory?.Create(MeterName) ?? (_ownMeter = new Meter(MeterName));
        meter.CreateObservableGauge(
            LeasesInFlightName,
            leasesInFlight,
            unit: "{request}",
            description: "Concurrency slots this replica holds in Redis for requests in flight, renewed by its heartbeat.");
        meter.CreateObservableGauge(
            ReleasesPendingName,
            releasesPending,
            unit: "{release}",
            description: "Releases that did not reach Redis and wait for their next retry.");
        _leaseRenewalFailures = meter.CreateCounter<long>(
            LeaseRenewalFailuresName,
            unit: "{script}",
            description: "Lease renewal scripts that failed or timed out (the leases expire unless a later renewal lands).");
        _leasesLost = meter.CreateCounter<long>(
            LeasesLostName,
            unit: "{request}",
            description: "In-flight requests whose slot had already expired in Redis when renewed (Redis unreachable for longer than the lease TTL).");
        _releasesFailed = meter.CreateCounter<long>(
            ReleasesFailedName,
            unit: "{release}",
            description: "Releases whose first send failed and that were queued for retry.");
        _releaseRetries = meter.CreateCounter<long>(
            ReleaseRetriesName,
            unit: "{release}",
            description: "Releases sent again after a failure.");
        _releasesAbandoned = meter.CreateCounter<long>(
            ReleasesAbandonedName,
            unit: "{release}",
            description: "Releases given up after one lease TTL of failures (their slots have expired by then).");
        _acquiresCompensated = meter.CreateCounter<long>(
            AcquiresCompensatedName,
            unit: "{request}",
            description: "Acquires that failed or timed out after they may have reached Redis; their slots are released after them.");
    }

    internal void LeaseRenewalFailed() => _leaseRenewalFailures.Add(1);

    internal void LeasesLost(int count) => _leasesLost.Add(count);

    internal void ReleaseFailed() => _releasesFailed.Add(1);

    internal void ReleasesResent(int count) => _releaseRetries.Add(count);

    internal void ReleaseAbandoned() => _releasesAbandoned.Add(1);

    internal void AcquireCompensated() => _acquiresCompensated.Add(1);

    /// <inheritdoc/>
    public void Dispose() => _ownMeter?.Dispose();
}
