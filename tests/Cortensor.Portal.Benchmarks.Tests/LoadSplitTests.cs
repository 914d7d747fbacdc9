using Cortensor.Portal.Benchmarks.Load;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>The split of a run's latency into gateway, limits, router and "outside", as BENCHMARKS.md reports it.</summary>
public sealed class LoadSplitTests
{
    /// <summary>100 answers: 98 of 1 ms (gateway 0.1, limits 0.05, router 0.5), two slow ones, and one 503 that must not count.</summary>
    private static LoadResult Run()
    {
        const int n = 101;
        var latency = new long[n];
        var status = new int[n];
        var gateway = new double[n];
        var limits = new double[n];
        var router = new double[n];
        for (var i = 0; i < n; i++)
        {
            (latency[i], status[i], gateway[i], limits[i], router[i]) = i switch
            {
                0 => (Ticks.FromMs(10), 200, 0.2, 0.1, 2.0), // slow: 7.8 ms outside
                1 => (Ticks.FromMs(20), 200, 6.0, 5.5, 4.0), // slower: the limiter waited; 10 ms outside
                2 => (Ticks.FromMs(50), 503, double.NaN, double.NaN, double.NaN),
                _ => (Ticks.FromMs(1), 200, 0.1, 0.05, 0.5),
            };
        }

        return new LoadResult(1000, latency, status, new long[n], TimeSpan.FromSeconds(1)) { GatewayMs = gateway, LimitsMs = limits, RouterMs = router };
    }

    [Fact]
    public void Of_TypicalRequest_SplitsLatencyIntoGatewayRouterAndOutside()
    {
        var split = LoadSplit.Of(Run())!;

        Assert.Equal(0.1, split.Gateway50, 9);
        Assert.Equal(0.05, split.Limits50, 9);
        Assert.Equal(0.5, split.Router50, 9);
        Assert.Equal(0.4, split.Outside50, 6); // 1 − 0.1 − 0.5
    }

    [Fact]
    public void Of_SlowestOnePercent_AreTheSlowAnswers_NotTheError()
    {
        var split = LoadSplit.Of(Run())!;

        // p99 of 100 answers is the 99th smallest (10 ms), so the tail is the 10 ms and 20 ms answers; the 50 ms 503 is
        // not an answer. Nearest-rank median of two values is the lower one.
        Assert.Equal(10, split.TailLatency, 6);
        Assert.Equal(0.2, split.TailGateway, 9);
        Assert.Equal(0.1, split.TailLimits, 9);
        Assert.Equal(2.0, split.TailRouter, 9);
        Assert.Equal(7.8, split.TailOutside, 6); // 10 − 0.2 − 2
        Assert.Equal(0.2, split.Gateway99, 9);
        Assert.Equal(0.1, split.Limits99, 9);
    }

    [Fact]
    public void Of_RunWithoutServerTiming_IsNull()
    {
        var run = new LoadResult(1000, [Ticks.FromMs(1)], [200], [0], TimeSpan.FromSeconds(1)) { GatewayMs = [double.NaN], LimitsMs = [double.NaN], RouterMs = [double.NaN] };

        Assert.Null(LoadSplit.Of(run));
        Assert.Null(LoadSplit.Of(null));
    }
}
