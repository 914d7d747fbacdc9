using System.Globalization;
using StackExchange.Redis;

namespace Cortensor.Portal.Benchmarks.Enforcement;

/// <summary>
/// Counts what the gateway sends to Redis: <c>INFO commandstats</c> before and after a phase (calls per command),
/// and, for attribution, <c>SLOWLOG</c> with a zero threshold over a short sample (every command with its
/// arguments, so the two rate limit scripts can be told apart). Uses its own admin connection; its own
/// <c>INFO</c>/<c>SLOWLOG</c>/<c>CONFIG</c> calls are reported separately.
/// </summary>
internal sealed class RedisCommandCounter : IAsyncDisposable
{
    /// <summary>Commands this counter sends itself.</summary>
    public static readonly IReadOnlySet<string> OwnCommands = new HashSet<string>(StringComparer.Ordinal) { "info", "slowlog", "config|get", "config|set", "config" };

    private readonly ConnectionMultiplexer _admin;
    private readonly IServer _server;

    private RedisCommandCounter(ConnectionMultiplexer admin)
    {
        _admin = admin;
        _server = admin.GetServer(admin.GetEndPoints()[0]);
    }

    public static async Task<RedisCommandCounter> ConnectAsync(string connectionString)
    {
        var admin = await ConnectionMultiplexer.ConnectAsync(connectionString + ",allowAdmin=true,name=cportal-bench-admin");
        return new RedisCommandCounter(admin);
    }

    public async Task<string> VersionAsync()
    {
        var info = await _server.InfoAsync("server");
        return info.SelectMany(static g => g).FirstOrDefault(static p => p.Key == "redis_version").Value ?? "?";
    }

    /// <summary>CPU time redis-server has used (<c>used_cpu_user + used_cpu_sys</c>, all its threads).</summary>
    public async Task<TimeSpan> CpuAsync()
    {
        double seconds = 0;
        foreach (var (key, value) in (await _server.InfoAsync("cpu")).SelectMany(static g => g))
        {
            if (key is "used_cpu_user" or "used_cpu_sys")
            {
                seconds += double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture);
            }
        }

        return TimeSpan.FromSeconds(seconds);
    }

    /// <summary>Calls per command (lower case, e.g. <c>evalsha</c>, <c>config|set</c>) since the server started.</summary>
    public async Task<Dictionary<string, long>> CommandCallsAsync()
        => (await CommandStatsAsync()).ToDictionary(static c => c.Key, static c => c.Value.Calls, StringComparer.Ordinal);

    /// <summary>Calls and server time per command (lower case) since the server started (<c>INFO commandstats</c>).</summary>
    public async Task<Dictionary<string, CommandStat>> CommandStatsAsync()
    {
        var stats = new Dictionary<string, CommandStat>(StringComparer.Ordinal);
        foreach (var group in await _server.InfoAsync("commandstats"))
        {
            foreach (var (key, value) in group)
            {
                if (key.StartsWith("cmdstat_", StringComparison.Ordinal))
                {
                    stats[key["cmdstat_".Length..]] = CommandStat.Parse(value);
                }
            }
        }

        return stats;
    }

    public static Dictionary<string, long> Subtract(Dictionary<string, long> after, Dictionary<string, long> before)
    {
        var delta = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (command, calls) in after)
        {
            var d = calls - before.GetValueOrDefault(command);
            if (d != 0)
            {
                delta[command] = d;
            }
        }

        return delta;
    }

    /// <summary>
    /// Logs every command Redis runs while <paramref name="sample"/> runs (SLOWLOG, threshold 0), then restores the
    /// slow-log settings. Returns null when the server refuses CONFIG SET (a managed Redis).
    /// </summary>
    public async Task<IReadOnlyList<CommandTrace>?> TraceAsync(int capacity, Func<Task> sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        string threshold, length;
        try
        {
            threshold = (await _server.ConfigGetAsync("slowlog-log-slower-than")).Single().Value;
            length = (await _server.ConfigGetAsync("slowlog-max-len")).Single().Value;
            await _server.ConfigSetAsync("slowlog-max-len", capacity);
            await _server.ConfigSetAsync("slowlog-log-slower-than", 0);
            await _server.SlowlogResetAsync();
        }
        catch (RedisServerException)
        {
            return null;
        }

        try
        {
            await sample();
            await Task.Delay(300); // releases run after the response
        }
        finally
        {
            await _server.ConfigSetAsync("slowlog-log-slower-than", threshold);
        }

        var traces = await _server.SlowlogGetAsync(capacity);
        await _server.ConfigSetAsync("slowlog-max-len", length);
        await _server.SlowlogResetAsync();
        return traces;
    }

    public async ValueTask DisposeAsync() => await _admin.DisposeAsync();
}

/// <summary>One command's totals in <c>INFO commandstats</c>: how often redis-server ran it and for how long in all.</summary>
/// <param name="Calls">Times run.</param>
/// <param name="Microseconds">Server time spent in it, µs (for a script: the whole script, its inner commands included).</param>
internal readonly record struct CommandStat(long Calls, long Microseconds)
{
    /// <summary>Mean server time per call, µs (0 when never called).</summary>
    public double MicrosecondsPerCall => Calls == 0 ? 0 : (double)Microseconds / Calls;

    public static CommandStat operator -(CommandStat after, CommandStat before) => new(after.Calls - before.Calls, after.Microseconds - before.Microseconds);

    /// <summary>Parses the value of a <c>cmdstat_*</c> line: <c>calls=123,usec=456,usec_per_call=3.70,rejected_calls=0,failed_calls=0</c>.</summary>
    /// <exception cref="FormatException">The value has no <c>calls=</c> or no <c>usec=</c> field.</exception>
    public static CommandStat Parse(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        long? calls = null, usec = null;
        foreach (var part in value.Split(','))
        {
            if (part.StartsWith("calls=", StringComparison.Ordinal))
            {
                calls = long.Parse(part.AsSpan("calls=".Length), NumberStyles.None, CultureInfo.InvariantCulture);
            }
            else if (part.StartsWith("usec=", StringComparison.Ordinal))
            {
                usec = long.Parse(part.AsSpan("usec=".Length), NumberStyles.None, CultureInfo.InvariantCulture);
            }
        }

        return calls is { } c && usec is { } u ? new CommandStat(c, u) : throw new FormatException($"Not a commandstats value: '{value}'.");
    }
}
