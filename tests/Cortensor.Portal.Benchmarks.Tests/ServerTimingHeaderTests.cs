using Cortensor.Portal.Benchmarks.Load;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>Reading the gateway's <c>Server-Timing</c> header, as the load generator does for every answer.</summary>
public sealed class ServerTimingHeaderTests
{
    [Theory]
    [InlineData("gateway", 0.412)]
    [InlineData("limits", 0.161)]
    [InlineData("router", 812.5)]
    public void Read_EachMetricOfTheGatewaysHeader(string metric, double expected) =>
        Assert.Equal(expected, ServerTimingHeader.Read("gateway;dur=0.412, limits;dur=0.161, router;dur=812.5", metric));

    [Fact]
    public void Read_MetricAbsent_IsNaN() =>
        Assert.True(double.IsNaN(ServerTimingHeader.Read("gateway;dur=0.4, router;dur=1", "limits")));

    [Fact]
    public void Read_NameIsMatchedWhole_NotAsAPrefix() =>
        Assert.True(double.IsNaN(ServerTimingHeader.Read("gatewayx;dur=5, router;dur=1", "gateway")));

    [Fact]
    public void Read_ParametersInAnyOrder() =>
        Assert.Equal(2.5, ServerTimingHeader.Read("cache;desc=\"hit\", limits;desc=\"redis\";dur=2.5", "limits"));

    [Fact]
    public void Read_MetricWithoutDuration_IsNaN() =>
        Assert.True(double.IsNaN(ServerTimingHeader.Read("limits;desc=\"none\", router;dur=1", "limits")));
}
