using System.Diagnostics;
using System.Globalization;

namespace Cortensor.Portal.Benchmarks;

/// <summary>
/// CPU time of this process and of every local <c>postgres</c> process (Linux <c>/proc</c>). On a shared 2-core
/// machine wall-clock rates move with whatever else runs; CPU per record does not, and gives the rate the
/// machine would reach if this were the only work on it.
/// </summary>
/// <remarks>Server CPU of postgres processes that end between two samples (autovacuum workers) is not counted.</remarks>
internal readonly record struct CpuUsage(TimeSpan Client, TimeSpan Server);

internal sealed class CpuSample
{
    private const double TicksPerSecond = 100; // USER_HZ on Linux

    private readonly TimeSpan _client;
    private readonly Dictionary<int, long> _server;

    private CpuSample(TimeSpan client, Dictionary<int, long> server)
    {
        _client = client;
        _server = server;
    }

    public static CpuSample Take()
    {
        using var self = Process.GetCurrentProcess();
        return new CpuSample(self.TotalProcessorTime, PostgresTicks());
    }

    public static CpuUsage operator -(CpuSample end, CpuSample start)
    {
        long ticks = 0;
        foreach (var (pid, value) in end._server)
        {
            ticks += value - start._server.GetValueOrDefault(pid);
        }

        return new CpuUsage(end._client - start._client, TimeSpan.FromSeconds(ticks / TicksPerSecond));
    }

    private static Dictionary<int, long> PostgresTicks()
    {
        var ticks = new Dictionary<int, long>();
        if (!Directory.Exists("/proc"))
        {
            return ticks;
        }

        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]))
            {
                continue;
            }

            try
            {
                // pid (comm) state ppid ... utime(14) stime(15): split after the closing parenthesis of comm.
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var open = stat.IndexOf('(', StringComparison.Ordinal);
                var close = stat.LastIndexOf(')');
                if (open < 0 || close < open || stat[(open + 1)..close] != "postgres")
                {
                    continue;
                }

                var fields = stat[(close + 2)..].Split(' ');
                ticks[int.Parse(name, CultureInfo.InvariantCulture)] = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // The process ended while we looked.
            }
        }

        return ticks;
    }
}
