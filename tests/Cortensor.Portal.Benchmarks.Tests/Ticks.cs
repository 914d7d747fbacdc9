using System.Diagnostics;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>Latencies as the load generator records them: Stopwatch ticks.</summary>
internal static class Ticks
{
    public static long FromMs(double ms) => (long)Math.Round(ms * Stopwatch.Frequency / 1000.0);
}
