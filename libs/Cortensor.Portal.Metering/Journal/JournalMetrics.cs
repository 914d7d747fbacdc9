using System.Diagnostics;
using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.Writer;

namespace Cortensor.Portal.Metering.Journal;

/// <summary>The instruments of the usage journal on the <see cref="UsageWriter.MeterName"/> meter.</summary>
internal sealed class JournalMetrics
{
    public const string CommitDurationName = "cortensor.metering.journal.commit.duration";
    public const string CommittedBytesName = "cortensor.metering.journal.committed";
    public const string SizeName = "cortensor.metering.journal.size";
    public const string OpenName = "cortensor.metering.journal.open";
    public const string RecoveredName = "cortensor.metering.journal.recovered";
    public const string FailuresName = "cortensor.metering.journal.failures";
    public const string RollsName = "cortensor.metering.journal.rolls";
    public const string KindTagName = "cortensor.metering.journal.kind";
    public const string OperationTagName = "cortensor.metering.journal.operation";

    private readonly Histogram<double> _commitDuration;
    private readonly Counter<long> _committed;
    private readonly Counter<long> _recovered;
    private readonly Counter<long> _failures;
    private readonly Counter<long> _rolls;

    public JournalMetrics(IMeterFactory meterFactory, Func<long> diskBytes, Func<long> open)
    {
        var meter = meterFactory.Create(UsageWriter.MeterName);
        meter.CreateObservableGauge(SizeName, diskBytes, unit: "By", description: "Bytes in usage journal segments on disk.");
        meter.CreateObservableGauge(OpenName, open, unit: "{request}", description: "Requests journaled and not yet stored by the usage sink.");
        _commitDuration = meter.CreateHistogram(
            CommitDurationName,
            unit: "s",
            description: "Duration of a journal group commit (one fsync of the active segment).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] });
        _committed = meter.CreateCounter<long>(CommittedBytesName, unit: "By", description: "Journal bytes made durable by group commits.");
        _recovered = meter.CreateCounter<long>(RecoveredName, unit: "{record}", description: "Usage records rebuilt from a previous run's journal on start, tag kind = finished or interrupted.");
        _failures = meter.CreateCounter<long>(FailuresName, unit: "{failure}", description: "Journal writes or commits that failed, tag operation = write or commit.");
        _rolls = meter.CreateCounter<long>(RollsName, unit: "{segment}", description: "Journal segments started (open entries copied over, older segments deleted).");
    }

    public void Committed(long bytes, TimeSpan duration)
    {
        if (_committed.Enabled)
        {
            _committed.Add(bytes);
        }

        if (_commitDuration.Enabled)
        {
            _commitDuration.Record(duration.TotalSeconds);
        }
    }

    public void Recovered(int finished, int interrupted)
    {
        if (!_recovered.Enabled)
        {
            return;
        }

        if (finished > 0)
        {
            _recovered.Add(finished, new KeyValuePair<string, object?>(KindTagName, "finished"));
        }

        if (interrupted > 0)
        {
            _recovered.Add(interrupted, new KeyValuePair<string, object?>(KindTagName, "interrupted"));
        }
    }

    public void Failed(string operation)
    {
        if (_failures.Enabled)
        {
            _failures.Add(1, new TagList { { OperationTagName, operation } });
        }
    }

    public void Rolled()
    {
        if (_rolls.Enabled)
        {
            _rolls.Add(1);
        }
    }
}
