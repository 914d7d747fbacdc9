using Cortensor.Portal.Benchmarks.Suite;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>The <c>suite</c> command line.</summary>
public sealed class SuiteSettingsTests
{
    [Fact]
    public void Parse_DiagnosticOptions()
    {
        var settings = SuiteSettings.Parse(
        [
            "--rates", "500,1000", "--only", "yarp,portal-redis-pg", "--gateway-env", "DOTNET_GCDynamicAdaptationMode=0",
            "--gateway-env", "A=b=c", "--latency-csv", "out/csv", "--no-portkey", "--repeats", "5",
        ]);

        Assert.Equal([500, 1000], settings.Rates);
        Assert.True(settings.Only.SetEquals(["yarp", "portal-redis-pg"]));
        Assert.Equal("0", settings.GatewayEnvironment["DOTNET_GCDynamicAdaptationMode"]);
        Assert.Equal("b=c", settings.GatewayEnvironment["A"]); // split at the first '='
        Assert.Equal("out/csv", settings.LatencyCsvDirectory);
        Assert.True(settings.NoPortkey);
        Assert.Equal(5, settings.Repeats);
        Assert.Equal(10_000, settings.Streams); // untouched defaults
    }

    [Theory]
    [InlineData("--gateway-env", "NO_EQUALS")]
    [InlineData("--gateway-env", "=value")]
    [InlineData("--rates", "0")]
    [InlineData("--rates", "1000,x")]
    [InlineData("--seconds", "-1")]
    [InlineData("--repeats", "-1")]
    [InlineData("--frobnicate", "1")]
    public void Parse_BadOption_Refused(string name, string value) =>
        Assert.Throws<FormatException>(() => SuiteSettings.Parse([name, value]));

    [Fact]
    public void Parse_Repeats_DefaultThree_QuickNone_ZeroAllowed()
    {
        Assert.Equal(3, SuiteSettings.Parse([]).Repeats);
        Assert.Equal(0, SuiteSettings.Parse(["--quick"]).Repeats);
        Assert.Equal(0, SuiteSettings.Parse(["--repeats", "0"]).Repeats);
        Assert.Equal(2, SuiteSettings.Parse(["--quick", "--repeats", "2"]).Repeats);
    }

    [Fact]
    public void Parse_OptionWithoutValue_Refused() =>
        Assert.Throws<FormatException>(() => SuiteSettings.Parse(["--latency-csv"]));
}
