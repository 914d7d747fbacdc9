namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>
/// The Redis server shared by the tests of this process: <c>REDIS_CONNECTION</c> when set (CI starts its own), else
/// one throwaway <see cref="RedisServerProcess"/> stopped when the process exits. Tests isolate themselves with a
/// fresh key prefix. Tests that stop the server, or count its commands, start their own
/// <see cref="RedisServerProcess"/> instead.
/// </summary>
internal static class LocalRedisServer
{
    private static readonly Lazy<string> Server = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string ConnectionString => Server.Value;

    private static string Start()
    {
        var configured = Environment.GetEnvironmentVariable("REDIS_CONNECTION");
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return configured;
        }

        var server = RedisServerProcess.StartNew();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => server.Dispose();
        return server.ConnectionString;
    }
}
