using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.Writer;

namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>The rate limiting instruments on the package meter (<see cref="UsageWriter.MeterName"/>).</summary>
internal sealed class RateLimitingMetrics
{
    public const string DecisionsName = "cortensor.ratelimit.decisions";
    public const string DegradedName = "cortensor.ratelimit.degraded";
    public const string RecoveringName = "cortensor.ratelimit.recovering";
    public const string OutcomeTagName = "outcome";
    public const string BackendTagName = "backend";

    /// <summary>Decided by the shared store.</summary>
    public const string SharedBackend = "shared";

    /// <summary>Decided by the per-replica fallback (or refused as unavailable) while the shared store is down.</summary>
    public const string FallbackBackend = "fallback";

    /// <summary>Admitted by the shared store after an outage, and checked against the fallback's state carried over from it.</summary>
    public const string RecoveryBackend = "recovery";

    /// <summary>Decided by the in-process limiter used on its own (one replica, no shared store).</summary>
    public const string LocalBackend = "local";

    private readonly Counter<long> _decisions;

    public RateLimitingMetrics(IMeterFactory meterFactory, Func<int>? degraded = null, Func<int>? recovering = null)
    {
        var meter = meterFactory.Create(UsageWriter.MeterName);
        _decisions = meter.CreateCounter<long>(
            DecisionsName,
            unit: "{request}",
            description: "Rate limit decisions, by outcome (allowed, limited, unavailable) and backend (shared, fallback, recovery, local).");
        if (degraded is not null)
        {
            meter.CreateObservableGauge(
                DegradedName,
                degraded,
                unit: "1",
                description: "1 while the shared rate limit store is unreachable and limits are decided per replica, else 0.");
        }

        if (recovering is not null)
        {
            meter.CreateObservableGauge(
                RecoveringName,
                recovering,
                unit: "{rule}",
                description: "Rules decided per replica during a store outage whose local state still applies until the shared store has caught up.");
        }
    }

    public void Decision(RateLimitDecision decision, string backend)
    {
        if (_decisions.Enabled)
        {
            var outcome = decision.Unavailable ? "unavailable" : decision.IsAllowed ? "allowed" : "limited";
            _decisions.Add(1, new TagList { { OutcomeTagName, outcome }, { BackendTagName, backend } });
        }
    }
}
