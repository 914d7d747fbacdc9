using Cortensor.Portal.Benchmarks.Load;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>Nearest-rank percentiles of the load generator's latencies (Stopwatch ticks in, milliseconds out).</summary>
public sealed class LatencyDistributionTests
{
    [Fact]
    public void Percentiles_NearestRank_OfOneToHundredMilliseconds()
    {
        // Shuffled on purpose: the distribution sorts.
        var samples = Enumerable.Range(1, 100).Select(static i => Ticks.FromMs(i)).Reverse().ToArray();
        var distribution = new LatencyDistribution(samples);

        Assert.Equal(100, distribution.Count);
        Assert.Equal(50, distribution.Milliseconds(0.5), 6);
        Assert.Equal(90, distribution.Milliseconds(0.9), 6);
        Assert.Equal(99, distribution.Milliseconds(0.99), 6);
        Assert.Equal(100, distribution.MaxMilliseconds, 6);
        Assert.Equal(1, distribution.Milliseconds(0), 6);
    }

    [Fact]
    public void Percentile_OfFewSamples_RoundsTheRankUp()
    {
        var distribution = new LatencyDistribution([Ticks.FromMs(1), Ticks.FromMs(2), Ticks.FromMs(3)]);

        Assert.Equal(2, distribution.Milliseconds(0.5), 6); // rank ceil(1.5) = 2
        Assert.Equal(3, distribution.Milliseconds(0.99), 6);
    }

    [Fact]
    public void Percentile_WithoutSamples_IsNaN() =>
        Assert.True(double.IsNaN(new LatencyDistribution([]).Milliseconds(0.5)));

    [Fact]
    public void NearestRank_OfPlainValues_LeavesTheInputUnsorted()
    {
        double[] values = [3, 1, 2, 4];

        Assert.Equal(2, LatencyDistribution.NearestRank(values, 0.5));
        Assert.Equal(4, LatencyDistribution.NearestRank(values, 0.99));
        Assert.Equal([3, 1, 2, 4], values);
        Assert.True(double.IsNaN(LatencyDistribution.NearestRank([], 0.5)));
    }
}
