using Cortensor.Portal.Benchmarks.Suite;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>Added latencies in the report: a gateway row can come out faster than its baseline in one round.</summary>
public sealed class SignedMillisecondsTests
{
    [Theory]
    [InlineData(0.279, "+0.279")]
    [InlineData(0.0, "+0.000")]
    [InlineData(-0.259, "-0.259")]
    [InlineData(double.NaN, "—")]
    public void Signed_writes_one_sign(double milliseconds, string expected)
        => Assert.Equal(expected, SuiteReport.Signed(milliseconds));
}
