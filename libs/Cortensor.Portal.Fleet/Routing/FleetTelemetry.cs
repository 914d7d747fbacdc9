using System.Diagnostics.Metrics;

namespace Cortensor.Portal.Fleet.Routing;

/// <summary>The fleet's <see cref="Meter"/> (<see cref="Name"/>): stream isolation per pool. Add the name to your exporters.</summary>
public sealed class FleetTelemetry
{
    /// <summary>The meter name.</summary>
    public const string Name = "Cortensor.Portal.Fleet";

    private readonly UpDownCounter<long> _openStreams;
    private readonly UpDownCounter<long> _queuedStreams;
    private readonly Counter<long> _queueWaits;
    private readonly Counter<long> _refusals;
    private readonly Histogram<double> _queueWaitDuration;

    public FleetTelemetry(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        var meter = meterFactory.Create(Name);
        _openStreams = meter.CreateUpDownCounter<long>(
            "cortensor.fleet.streams.open", "{stream}", "Router streams open now, per pool.");
        _queuedStreams = meter.CreateUpDownCounter<long>(
            "cortensor.fleet.streams.queued", "{stream}", "Streams waiting for a free (router, session), per pool.");
        _queueWaits = meter.CreateCounter<long>(
            "cortensor.fleet.streams.queue_waits", "{stream}", "Streams that had to wait for a free (router, session).");
        _refusals = meter.CreateCounter<long>(
            "cortensor.fleet.streams.refused", "{stream}", "Streams refused (503) because every (router, session) stayed busy; tag reason: queue_full or wait_expired.");
        _queueWaitDuration = meter.CreateHistogram<double>(
            "cortensor.fleet.streams.queue_wait.duration", "s", "How long streams that waited spent in the queue (granted or refused).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 60] });
    }

    internal void StreamOpened(string pool) => _openStreams.Add(1, Pool(pool));

    internal void StreamClosed(string pool) => _openStreams.Add(-1, Pool(pool));

    internal void Queued(string pool)
    {
        _queuedStreams.Add(1, Pool(pool));
        _queueWaits.Add(1, Pool(pool));
    }

    internal void Dequeued(string pool, TimeSpan waited)
    {
        _queuedStreams.Add(-1, Pool(pool));
        _queueWaitDuration.Record(waited.TotalSeconds, Pool(pool));
    }

    internal void Refused(string pool, StreamRefusal reason) =>
        _refusals.Add(1, Pool(pool), new KeyValuePair<string, object?>("reason", reason == StreamRefusal.QueueFull ? "queue_full" : "wait_expired"));

    private static KeyValuePair<string, object?> Pool(string pool) => new("pool", pool);
}
