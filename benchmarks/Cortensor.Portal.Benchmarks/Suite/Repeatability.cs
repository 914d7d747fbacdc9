namespace Cortensor.Portal.Benchmarks.Suite;

/// <summary>One round of the goal rows at the goal rate: each row's p50 and p99 in ms, the baseline row among them.</summary>
internal sealed record RepeatRound(int Round, IReadOnlyDictionary<string, RoundLatency> Rows);

/// <summary>A row's p50 and p99 in one round, ms, and how many of its answers were not 200.</summary>
internal readonly record struct RoundLatency(double P50, double P99, int NotOk);

/// <summary>
/// A row's added p50 and p99 (row minus the baseline of the same round) over every round where both ran, in round
/// order. One fixed-rate run on a shared 2-core machine moves by ±0.05–0.1 ms at p50 and by milliseconds at p99, so
/// a verdict rests on the median of the rounds, and the range shows how far one run can land from it.
/// </summary>
internal sealed record AddedSpread(string Id, double[] P50, double[] P99, int NotOk)
{
    public int Rounds => P50.Length;

    public double MedianP50 => Median(P50);

    public double MedianP99 => Median(P99);

    /// <summary>Every repeated row but the baseline, in first-seen order; rounds without the baseline are left out.</summary>
    public static List<AddedSpread> Of(IEnumerable<RepeatRound> rounds, string baselineId)
    {
        ArgumentNullException.ThrowIfNull(rounds);
        var ordered = rounds.Where(r => r.Rows.ContainsKey(baselineId)).OrderBy(static r => r.Round).ToList();
        var ids = ordered.SelectMany(static r => r.Rows.Keys).Where(id => id != baselineId).Distinct(StringComparer.Ordinal).ToList();
        var spreads = new List<AddedSpread>(ids.Count);
        foreach (var id in ids)
        {
            var p50 = new List<double>();
            var p99 = new List<double>();
            var notOk = 0;
            foreach (var round in ordered)
            {
                if (round.Rows.TryGetValue(id, out var row))
                {
                    var baseline = round.Rows[baselineId];
                    p50.Add(row.P50 - baseline.P50);
                    p99.Add(row.P99 - baseline.P99);
                    notOk += row.NotOk;
                }
            }

            spreads.Add(new AddedSpread(id, [.. p50], [.. p99], notOk));
        }

        return spreads;
    }

    /// <summary>The middle value (the mean of the middle two for an even count); NaN when empty.</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
