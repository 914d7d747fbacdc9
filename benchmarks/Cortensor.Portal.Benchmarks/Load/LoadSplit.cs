using System.Diagnostics;

namespace Cortensor.Portal.Benchmarks.Load;

/// <summary>
/// Where one fixed-rate run's time went, from the gateway's own <c>Server-Timing</c> on each answer (ms): medians and
/// p99 over all answered requests, and medians over the slowest 1 % by client latency (the Tail* values).
/// "Outside" = client latency − gateway − router: the kernel, Kestrel before the endpoint, the response write, the
/// client, and any wait for a core.
/// </summary>
internal sealed record LoadSplit(
    double Gateway50, double Gateway99, double Limits50, double Limits99, double Router50, double Outside50,
    double TailLatency, double TailGateway, double TailLimits, double TailRouter, double TailOutside)
{
    /// <summary>The split of a run whose gateway sent Server-Timing on 200 answers; null otherwise.</summary>
    public static LoadSplit? Of(LoadResult? result)
    {
        if (result is not { } r)
        {
            return null;
        }

        var answered = Enumerable.Range(0, r.Requests).Where(i => r.Status[i] == 200 && i < r.GatewayMs.Length && !double.IsNaN(r.GatewayMs[i])).ToList();
        if (answered.Count == 0)
        {
            return null;
        }

        double Latency(int i) => r.Latency[i] * 1000.0 / Stopwatch.Frequency;
        double Outside(int i) => Latency(i) - r.GatewayMs[i] - (double.IsNaN(r.RouterMs[i]) ? 0 : r.RouterMs[i]);
        double P(IEnumerable<int> set, Func<int, double> value, double p) => LatencyDistribution.NearestRank([.. set.Select(value).Where(static v => !double.IsNaN(v))], p);
        var cut = P(answered, Latency, 0.99);
        var tail = answered.Where(i => Latency(i) >= cut).ToList();
        return new LoadSplit(
            P(answered, i => r.GatewayMs[i], 0.5), P(answered, i => r.GatewayMs[i], 0.99),
            P(answered, i => r.LimitsMs[i], 0.5), P(answered, i => r.LimitsMs[i], 0.99),
            P(answered, i => r.RouterMs[i], 0.5), P(answered, Outside, 0.5),
            P(tail, Latency, 0.5), P(tail, i => r.GatewayMs[i], 0.5), P(tail, i => r.LimitsMs[i], 0.5), P(tail, i => r.RouterMs[i], 0.5), P(tail, Outside, 0.5));
    }
}
