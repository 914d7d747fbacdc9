using System.Globalization;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>Reads <c>INFO commandstats</c>: calls per command, as the server counted them (commands run inside scripts included).</summary>
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

    /// <summary>The commands whose count changed between two readings, without the INFO calls of the readings themselves.</summary>
    public static Dictionary<string, long> Delta(Dictionary<string, long> before, Dictionary<string, long> after)
        => after
            .Select(kv => (kv.Key, Calls: kv.Value - before.GetValueOrDefault(kv.Key)))
            .Where(d => d.Calls != 0 && d.Key != "info")
            .ToDictionary(d => d.Key, d => d.Calls, StringComparer.Ordinal);
}
