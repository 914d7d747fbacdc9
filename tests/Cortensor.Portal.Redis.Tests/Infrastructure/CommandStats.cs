using System.Globalization;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>
/// Reads <c>INFO commandstats</c>: calls per command, as the server counted them. redis-server counts the commands run
/// inside scripts too; Garnet (started with <c>--commandstats-monitor</c>) counts only what clients send, so on Garnet
/// the tests check the scripts' inner work by its effect on the keys instead.
/// </summary>
internal static class CommandStats
{
    public static async Task<Dictionary<string, long>> ReadAsync(IConnectionMultiplexer admin)
    {
        var server = admin.GetServer(admin.GetEndPoints()[0]);
        var info = await server.InfoAsync("commandstats");
        var calls = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var group in info)
        {
            foreach (var (key, value) in group)
            {
                // cmdstat_get -> calls=12,usec=...
                var name = key.StartsWith("cmdstat_", StringComparison.Ordinal) ? key["cmdstat_".Length..] : key;
                var field = value.Split(',').First(f => f.StartsWith("calls=", StringComparison.Ordinal));
                calls[name] = long.Parse(field["calls=".Length..], CultureInfo.InvariantCulture);
            }
        }

        return calls;
    }

    /// <summary>Whether <paramref name="server"/> counts the commands scripts run (redis-server does, Garnet does not).</summary>
    public static bool CountsCommandsInsideScripts(RedisServerProcess server) => server.Kind == TestRedisServerKind.RedisServer;

    /// <summary>
    /// What a reading should show: <paramref name="sent"/> (the commands clients sent) plus, on a server that counts
    /// them, <paramref name="insideScripts"/>.
    /// </summary>
    public static IEnumerable<KeyValuePair<string, long>> Expected(RedisServerProcess server, Dictionary<string, long> sent, Dictionary<string, long> insideScripts)
        => (CountsCommandsInsideScripts(server) ? sent.Concat(insideScripts) : sent).OrderBy(kv => kv.Key, StringComparer.Ordinal);

    /// <summary>The entries of <paramref name="delta"/> for <paramref name="commands"/>, in the order of <see cref="Expected"/>.</summary>
    public static IEnumerable<KeyValuePair<string, long>> Only(Dictionary<string, long> delta, params string[] commands)
        => delta.Where(kv => commands.Contains(kv.Key, StringComparer.Ordinal)).OrderBy(kv => kv.Key, StringComparer.Ordinal);

    /// <summary>The commands whose count changed between two readings, without the INFO calls of the readings themselves.</summary>
    public static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after)
        => after
            .Select(kv => (kv.Key, Calls: kv.Value - before.GetValueOrDefault(kv.Key)))
            .Where(d => d.Calls != 0 && d.Key != "info")
            .ToDictionary(d => d.Key, d => d.Calls, StringComparer.Ordinal);
}
