using Cortensor.Portal.Benchmarks.Load;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>The per-request CSV of a fixed-rate row.</summary>
public sealed class LatencyCsvTests
{
    [Fact]
    public async Task WriteAsync_OneLinePerRequest_ServerTimingEmptyWhenAbsent()
    {
        var run = new LoadResult(500, [Ticks.FromMs(1.5), Ticks.FromMs(12)], [200, 503], [0, Ticks.FromMs(0.25)], TimeSpan.FromSeconds(1))
        {
            GatewayMs = [0.1, double.NaN],
            LimitsMs = [0.05, double.NaN],
            RouterMs = [0.75, double.NaN],
        };
        var path = Path.Combine(Path.GetTempPath(), "cportal-csv-" + Guid.NewGuid().ToString("N") + ".csv");
        try
        {
            await LatencyCsv.WriteAsync(path, run);

            var lines = await File.ReadAllLinesAsync(path);
            Assert.Equal(
                [
                    "index,scheduled_ms,latency_ms,send_lag_ms,status,gateway_ms,limits_ms,router_ms",
                    "0,0.000,1.500,0.000,200,0.100,0.050,0.750",
                    "1,2.000,12.000,0.250,503,,,", // 500 req/s: one every 2 ms
                ],
                lines);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
