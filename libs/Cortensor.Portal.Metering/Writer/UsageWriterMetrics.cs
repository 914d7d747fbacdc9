using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>The instruments of the <see cref="UsageWriter"/> on the <see cref="UsageWriter.MeterName"/> meter.</summary>
internal sealed class UsageWriterMetrics
{
    public const string QueueDepthName = "cortensor.metering.queue.depth";
    public const string SpillSizeName = "cortensor.metering.spill.size";
    public const string RecordsWrittenName = "cortensor.metering.records.written";
    public const string RecordsSpilledName = "cortensor.metering.records.spilled";
    public const string BatchFailuresName = "cortensor.metering.batch.failures";
    public const string BatchDurationName = "cortensor.metering.batch.duration";
    public const string ResultTagName = "cortensor.metering.batch.result";

    private readonly Counter<long> _written;
    private readonly Counter<long> _spilled;
    private readonly Counter<long> _failures;
    private readonly Histogram<double> _duration;

    public UsageWriterMetrics(IMeterFactory meterFactory, Func<long> queueDepth, Func<long> spillBytes)
    {
        var meter = meterFactory.Create(UsageWriter.MeterName);
        meter.CreateObservableGauge(QueueDepthName, queueDepth, unit: "{record}", description: "Usage records waiting in the in-memory queue.");
        meter.CreateObservableGauge(SpillSizeName, spillBytes, unit: "By", description: "Bytes of usage records in spill files awaiting replay.");
        _written = meter.CreateCounter<long>(RecordsWrittenName, unit: "{record}", description: "Usage records written to the sink, replays included.");
        _spilled = meter.CreateCounter<long>(RecordsSpilledName, unit: "{record}", description: "Usage records appended to a spill file.");
        _failures = meter.CreateCounter<long>(BatchFailuresName, unit: "{batch}", description: "Sink batch writes that failed.");
        _duration = meter.CreateHistogram(
            BatchDurationName,
            unit: "s",
            description: "Duration of sink batch writes.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
    }

    public void Written(int count)
    {
        if (_written.Enabled)
        {
            _written.Add(count);
        }
    }

    public void Spilled(int count)
    {
        if (_spilled.Enabled)
        {
            _spilled.Add(count);
        }
    }

    public void BatchWritten(TimeSpan duration, bool succeeded)
    {
        if (!succeeded && _failures.Enabled)
        {
            _failures.Add(1);
        }

        if (_duration.Enabled)
        {
            _duration.Record(duration.TotalSeconds, new TagList { { ResultTagName, succeeded ? "success" : "failure" } });
        }
    }
}
