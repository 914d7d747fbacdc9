using Cortensor.Portal.Benchmarks.Suite;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>The goal rows' rounds at 1,000 req/s: added latency per round against that round's own baseline, and the medians.</summary>
public sealed class AddedSpreadTests
{
    private static RepeatRound Round(int number, params (string Id, double P50, double P99, int NotOk)[] rows) =>
        new(number, rows.ToDictionary(static r => r.Id, static r => new RoundLatency(r.P50, r.P99, r.NotOk), StringComparer.Ordinal));

    [Fact]
    public void Of_SubtractsEachRoundsOwnBaseline_InRoundOrder()
    {
        // Given out of order: the spread follows the round numbers.
        var spreads = AddedSpread.Of(
        [
            Round(2, ("direct", 0.40, 3.0, 0), ("portal", 0.70, 5.0, 1)),
            Round(0, ("direct", 0.30, 2.0, 0), ("portal", 0.55, 4.5, 0)),
            Round(1, ("direct", 0.35, 2.5, 0), ("portal", 0.60, 2.5, 2)),
        ], "direct");

        var portal = Assert.Single(spreads);
        Assert.Equal("portal", portal.Id);
        Assert.Equal(3, portal.Rounds);
        Assert.Equal([0.25, 0.25, 0.30], portal.P50.Select(static v => Math.Round(v, 6)));
        Assert.Equal([2.5, 0.0, 2.0], portal.P99.Select(static v => Math.Round(v, 6)));
        Assert.Equal(0.25, portal.MedianP50, 6);
        Assert.Equal(2.0, portal.MedianP99, 6);
        Assert.Equal(3, portal.NotOk);
    }

    [Fact]
    public void Of_SkipsRoundsWithoutBaseline_AndRowsMissingFromARound()
    {
        var spreads = AddedSpread.Of(
        [
            Round(0, ("direct", 0.30, 2.0, 0), ("yarp", 0.45, 3.0, 0), ("portal", 0.60, 4.0, 0)),
            Round(1, ("yarp", 9.0, 9.0, 0), ("portal", 9.0, 9.0, 0)), // no baseline: not comparable
            Round(2, ("direct", 0.32, 2.2, 0), ("portal", 0.52, 3.2, 0)),
        ], "direct");

        Assert.Equal(["yarp", "portal"], spreads.Select(static s => s.Id));
        var yarp = spreads[0];
        Assert.Equal(1, yarp.Rounds);
        Assert.Equal(0.15, yarp.P50[0], 6);
        var portal = spreads[1];
        Assert.Equal(2, portal.Rounds);
        Assert.Equal(0.25, portal.MedianP50, 6); // (0.30 + 0.20) / 2
    }

    [Theory]
    [InlineData(new double[] { 3, 1, 2 }, 2)]
    [InlineData(new double[] { 4, 1, 3, 2 }, 2.5)]
    [InlineData(new double[] { -0.5 }, -0.5)]
    public void Median(double[] values, double expected) => Assert.Equal(expected, AddedSpread.Median(values), 9);

    [Fact]
    public void Median_OfNothing_IsNaN() => Assert.True(double.IsNaN(AddedSpread.Median([])));
}
