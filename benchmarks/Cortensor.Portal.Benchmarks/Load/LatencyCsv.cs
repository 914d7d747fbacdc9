using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Cortensor.Portal.Benchmarks.Load;

/// <summary>
/// One fixed-rate run as CSV, a line per request in send order, so a tail can be placed in time (a burst every 200 ms
/// points at a periodic job; scattered single requests at the scheduler). <c>gateway_ms</c>, <c>limits_ms</c> and <c>router_ms</c> are the
/// gateway's own <c>Server-Timing</c> (empty without one): a slow request with a short gateway time lost its time
/// outside the gateway's handler.
/// </summary>
internal static class LatencyCsv
{
    public const string Header = "index,scheduled_ms,latency_ms,send_lag_ms,status,gateway_ms,limits_ms,router_ms";

    public static async Task WriteAsync(string path, LoadResult result)
    {
        var interval = 1000.0 / result.OfferedRate;
        var text = new StringBuilder(Header.Length + 2 + (result.Requests * 32));
        text.Append(Header).Append('\n');
        for (var i = 0; i < result.Requests; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"{i},{i * interval:F3},{Milliseconds(result.Latency[i]):F3},{Milliseconds(result.SendLag[i]):F3},{result.Status[i]},{Optional(result.GatewayMs, i)},{Optional(result.LimitsMs, i)},{Optional(result.RouterMs, i)}\n");
        }

        await File.WriteAllTextAsync(path, text.ToString());
    }

    private static string Optional(double[] values, int i) =>
        i < values.Length && !double.IsNaN(values[i]) ? values[i].ToString("F3", CultureInfo.InvariantCulture) : "";

    private static double Milliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
