using Garnet;
using StackExchange.Redis;

namespace Cortensor.Portal.Testing.Redis;

/// <summary>
/// The Redis-protocol server shared by the tests of this process, chosen once: <c>REDIS_CONNECTION</c> when set
/// (CI may start its own); else, by <see cref="TestRedisServers.Choose()"/>, a throwaway <c>redis-server</c> process
/// or Garnet started inside this process, either on a free 127.0.0.1 port and stopped when the process exits. Tests
/// isolate themselves with a fresh key prefix. Tests that stop the server start their own
/// <see cref="RedisServerProcess"/> instead.
/// </summary>
public static class LocalRedisServer
{
    private static readonly Lazy<(string ConnectionString, string Description)> Server = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>A StackExchange.Redis configuration string for the shared server.</summary>
    public static string ConnectionString => Server.Value.ConnectionString;

    /// <summary>Which server the tests use, e.g. "Garnet 2.2.12 in-process on 127.0.0.1:PORT (Lua, transaction mode)".</summary>
    public static string Description => Server.Value.Description;

    private static (string, string) Start()
    {
        var (connection, description) = StartServer();
        // Once per test process, on standard error: dotnet test shows it, so a run says which server it tested.
        Console.Error.WriteLine($"Redis-protocol tests: {description}");
        return (connection, description);
    }

    /// <summary>What the test log says of a configured server: never the password its connection string may hold.</summary>
    public static string DescribeConfigured(string connectionString) =>
        "REDIS_CONNECTION " + ConfigurationOptions.Parse(connectionString).ToString(includePassword: false);

    private static (string, string) StartServer()
    {
        var configured = Environment.GetEnvironmentVariable("REDIS_CONNECTION");
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return (configured, DescribeConfigured(configured));
        }

        if (TestRedisServers.Choose() == TestRedisServerKind.RedisServer)
        {
            var process = RedisServerProcess.StartNew(TestRedisServerKind.RedisServer);
            AppDomain.CurrentDomain.ProcessExit += (_, _) => process.Dispose();
            return (process.ConnectionString, process.Description);
        }

        var port = TestRedisServers.FreePort();
        var garnet = new GarnetServer([.. TestRedisServers.GarnetArguments(port)]);
        garnet.Start();
        GarnetWarmUp.Run(port);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => garnet.Dispose();
        return ($"127.0.0.1:{port},allowAdmin=true",
            $"Garnet {TestRedisServers.GarnetVersion} in-process on 127.0.0.1:{port} (Lua, transaction mode)");
    }
}
