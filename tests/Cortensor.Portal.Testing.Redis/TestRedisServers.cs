using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Cortensor.Portal.Testing.Redis;

/// <summary>The kinds of Redis-protocol server the tests can run against.</summary>
public enum TestRedisServerKind
{
    /// <summary>The machine's <c>redis-server</c>, found on the PATH.</summary>
    RedisServer,

    /// <summary>Microsoft Garnet (NuGet <c>Microsoft.Garnet</c>), with Lua in transaction mode.</summary>
    Garnet,
}

/// <summary>
/// Which server the tests use when they start one: <c>CORTENSOR_TEST_REDIS=redis-server|garnet</c> forces it;
/// otherwise <c>redis-server</c> when one is on the PATH, else Garnet, which needs nothing installed.
/// </summary>
public static class TestRedisServers
{
    /// <summary>The variable that forces the choice.</summary>
    public const string ChoiceVariable = "CORTENSOR_TEST_REDIS";

    /// <summary>
    /// Garnet's settings for the tests. <c>--lua</c>: the limiter is one Lua script. <c>--lua-transaction-mode</c>:
    /// without it Garnet runs a script's commands without locking its keys, so two scripts can interleave and the
    /// limiter would no longer be exact. <c>--commandstats-monitor</c>: <c>INFO commandstats</c>, which the
    /// command-counting tests read. Small memory settings: a test server holds a few thousand keys.
    /// </summary>
    public static IReadOnlyList<string> GarnetArguments(int port) =>
    [
        "--bind", "127.0.0.1", "--port", port.ToString(CultureInfo.InvariantCulture),
        "--lua", "--lua-transaction-mode", "--commandstats-monitor",
        "--index", "1m", "--memory", "256m",
        "--logger-level", "Warning",
    ];

    /// <summary>The Garnet version the tests run (the package's assembly version).</summary>
    public static string GarnetVersion
    {
        get
        {
            var version = typeof(Garnet.GarnetServer).Assembly.GetName().Version;
            return version is null ? "?" : version.ToString(3);
        }
    }

    /// <summary>The server to start, by <see cref="ChoiceVariable"/> or else by what the machine has.</summary>
    /// <exception cref="InvalidOperationException">The variable has an unknown value, or names redis-server and there is none.</exception>
    public static TestRedisServerKind Choose() => Choose(Environment.GetEnvironmentVariable(ChoiceVariable), FindRedisServer());

    /// <summary>The choice for a given variable value and <c>redis-server</c> path (null: none on the PATH).</summary>
    public static TestRedisServerKind Choose(string? forced, string? redisServer)
    {
        switch (forced?.Trim().ToLowerInvariant())
        {
            case null or "":
                return redisServer is null ? TestRedisServerKind.Garnet : TestRedisServerKind.RedisServer;
            case "garnet":
                return TestRedisServerKind.Garnet;
            case "redis-server" or "redis":
                return redisServer is not null
                    ? TestRedisServerKind.RedisServer
                    : throw new InvalidOperationException(
                        $"{ChoiceVariable}=redis-server, but there is no redis-server on the PATH (apt-get install redis-server).");
            default:
                throw new InvalidOperationException($"{ChoiceVariable}='{forced}': use redis-server or garnet.");
        }
    }

    /// <summary>The first executable <c>redis-server</c> in the PATH's folders, or null.</summary>
    public static string? FindRedisServer() => FindOnPath("redis-server", Environment.GetEnvironmentVariable("PATH"));

    /// <summary>The first executable file called <paramref name="name"/> in the folders of <paramref name="path"/>, or null.</summary>
    public static string? FindOnPath(string name, string? path)
    {
        foreach (var folder in (path ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var candidate = Path.Combine(folder, name);
            if (File.Exists(candidate) && IsExecutable(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool IsExecutable(string file)
        => OperatingSystem.IsWindows()
           || (File.GetUnixFileMode(file) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
}
