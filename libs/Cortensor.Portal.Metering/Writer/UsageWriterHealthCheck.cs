using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>
/// Readiness of the usage pipeline, from <see cref="UsageWriter.GetStatus"/>. Nothing is lost in any state (the
/// writer spills rather than drops), so most states are only <see cref="HealthStatus.Degraded"/>:
/// <list type="bullet">
/// <item>Degraded: the queue is at least <see cref="NearFullFraction"/> full, the sink is failing (records are
/// spilling to disk; the store's own check says why), the usage journal cannot be written, or spilled records are
/// waiting to be replayed.</item>
/// <item>The registration's failure status (Unhealthy unless changed): the queue is full, so every new record is
/// written to disk on the request path, or the writer has stopped.</item>
/// </list>
/// </summary>
public sealed class UsageWriterHealthCheck(UsageWriter writer) : IHealthCheck
{
    /// <summary>The name <c>AddCortensorMetering</c> registers this check under.</summary>
    public const string Name = "usage-writer";

    /// <summary>Share of <see cref="UsageWriterOptions.QueueCapacity"/> from which the queue counts as nearly full.</summary>
    public const double NearFullFraction = 0.8;

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        return Task.FromResult(Evaluate(writer.GetStatus(), context.Registration.FailureStatus));
    }

    private static HealthCheckResult Evaluate(UsageWriterStatus status, HealthStatus failureStatus)
    {
        var queue = string.Create(CultureInfo.InvariantCulture, $"{status.QueueDepth}/{status.QueueCapacity}");
        if (status.IsStopped)
        {
            return new HealthCheckResult(failureStatus, "the usage writer has stopped");
        }

        if (status.QueueDepth >= status.QueueCapacity)
        {
            return new HealthCheckResult(failureStatus, $"usage queue full ({queue}): new usage records are written to disk on the request path");
        }

        if (!status.IsSinkHealthy)
        {
            return HealthCheckResult.Degraded(string.Create(CultureInfo.InvariantCulture, $"the usage store is failing: usage is spilling to disk ({status.SpillBytes} bytes waiting)"));
        }

        if (status.IsJournalFailing)
        {
            return HealthCheckResult.Degraded("the usage journal cannot be written to disk: a crash now could lose usage");
        }

        if (status.QueueDepth >= status.QueueCapacity * NearFullFraction)
        {
            return HealthCheckResult.Degraded($"usage queue nearly full ({queue})");
        }

        if (status.SpillBytes > 0)
        {
            return HealthCheckResult.Degraded(string.Create(CultureInfo.InvariantCulture, $"{status.SpillBytes} bytes of spilled usage waiting to be replayed"));
        }

        return HealthCheckResult.Healthy();
    }
}
