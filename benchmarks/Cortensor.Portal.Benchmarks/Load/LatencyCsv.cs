using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Cortensor.Portal.Benchmarks.Load;

/// <summary>
/// One fixed-rate run as CSV, a line per request in send order, so a tail can be placed in time (a burst every 200 ms
/// points at a periodic job; scattered single requests at the scheduler).
/// </summary>
internal static class LatencyCsv
{
    public const string Header = "index,scheduled_ms,latency_ms,send_lag_ms,status";

    public static async Task WriteAsync(string path, LoadResult result)
    {
        var interval = 1000.0 / result.OfferedRate;
        var text = new StringBuilder(Header.Length + 2 + (result.Requests * 32));
        text.Append(Header).Append('\n');
        for (var i = 0; i < result.Requests; i++)
        {
            text.Append(CultureInfo.InvariantCulture, $"{i},{i * interval:F3},{Milliseconds(result.Latency[i]):F3},{Milliseconds(result.SendLag[i]):F3},{result.Status[i]}\n");
        }

        await File.WriteAllTextAsync(path, text.ToString());
    }

    private static double Milliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
