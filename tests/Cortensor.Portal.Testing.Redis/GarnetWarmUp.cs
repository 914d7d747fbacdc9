using StackExchange.Redis;

namespace Cortensor.Portal.Testing.Redis;

/// <summary>
/// Runs each kind of command the Portal sends once or twice on a fresh Garnet, before a test gets it. Garnet is a .NET
/// program: its first script, sorted-set command or publish is JIT-compiled on the spot and can take longer than a
/// test's 250 ms operation timeout, which would make a test of outage handling see an outage that is not there.
/// </summary>
internal static class GarnetWarmUp
{
    // The commands of the limiter's scripts, then cleaned up; keys under their own prefix, gone afterwards.
    private const string Script = """
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        redis.call('SET', KEYS[1], string.format('%.0f', now), 'PX', '1000')
        redis.call('GET', KEYS[1])
        redis.call('ZADD', KEYS[2], string.format('%.0f', now + 1000), ARGV[1])
        redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
        redis.call('PEXPIRE', KEYS[2], '1000')
        redis.call('ZREM', KEYS[2], ARGV[1])
        redis.call('DEL', KEYS[1], KEYS[2])
        return 1
        """;

    public static void Run(int port)
    {
        using var connection = ConnectionMultiplexer.Connect($"127.0.0.1:{port},allowAdmin=true,connectTimeout=10000,syncTimeout=10000");
        var db = connection.GetDatabase();
        RedisKey[] keys = ["cportal-warmup:{w}:tat", "cportal-warmup:{w}:slots"];
        for (var i = 0; i < 3; i++)
        {
            db.ScriptEvaluate(Script, keys, ["id"]);
            db.StringSet(keys[0], "1", TimeSpan.FromSeconds(1), When.NotExists);
            db.StringGet(keys[0]);
            db.KeyDelete(keys[0]);
            connection.GetSubscriber().Publish(RedisChannel.Literal("cportal-warmup"), "1");
        }

        connection.GetServer(connection.GetEndPoints()[0]).Info("commandstats");
    }
}
