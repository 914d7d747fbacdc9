using System.Runtime.Versioning;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>The server the tests run against: how it is chosen, and that it runs scripts as Redis does (atomically).</summary>
public sealed class TestRedisServersTests : IClassFixture<RedisServerReport>, IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cportal-path-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(null, "/x/redis-server", TestRedisServerKind.RedisServer)]
    [InlineData("", null, TestRedisServerKind.Garnet)]
    [InlineData("garnet", "/x/redis-server", TestRedisServerKind.Garnet)]
    [InlineData("GARNET", null, TestRedisServerKind.Garnet)]
    [InlineData("redis-server", "/x/redis-server", TestRedisServerKind.RedisServer)]
    public void Choose_ForcedOrByWhatIsInstalled(string? forced, string? redisServer, TestRedisServerKind expected)
        => Assert.Equal(expected, TestRedisServers.Choose(forced, redisServer));

    [Theory]
    [InlineData("redis-server", "no redis-server on the PATH")]
    [InlineData("valkey", "use redis-server or garnet")]
    public void Choose_RedisServerMissingOrUnknownValue_Throws(string forced, string message)
        => Assert.Contains(message, Assert.Throws<InvalidOperationException>(() => TestRedisServers.Choose(forced, null)).Message, StringComparison.Ordinal);

    [Fact]
    public void DescribeConfigured_NamesTheServer_NeverItsPassword()
    {
        var description = LocalRedisServer.DescribeConfigured("127.0.0.1:6390,password=hunter2-secret,allowAdmin=true");

        Assert.Contains("127.0.0.1:6390", description, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", description, StringComparison.Ordinal);
    }

    [Fact]
    [SupportedOSPlatform("linux")] // like the servers these tests start
    public void FindOnPath_SearchesThePathsFolders_AndSkipsFilesThatDoNotRun()
    {
        var empty = Directory.CreateDirectory(Path.Combine(_folder, "empty")).FullName;
        var plain = Directory.CreateDirectory(Path.Combine(_folder, "plain")).FullName;
        var bin = Directory.CreateDirectory(Path.Combine(_folder, "bin")).FullName;
        File.WriteAllText(Path.Combine(plain, "redis-server"), "");
        File.WriteAllText(Path.Combine(bin, "redis-server"), "");
        File.SetUnixFileMode(Path.Combine(bin, "redis-server"), UnixFileMode.UserRead | UnixFileMode.UserExecute);
        var path = string.Join(Path.PathSeparator, empty, plain, bin);

        Assert.Equal(Path.Combine(bin, "redis-server"), TestRedisServers.FindOnPath("redis-server", path));
        Assert.Null(TestRedisServers.FindOnPath("redis-server", string.Join(Path.PathSeparator, empty, plain)));
    }

    [Fact]
    public async Task SharedServer_RunsEachScriptAtomically_AcrossConnections()
    {
        // A read-modify-write script with work between the read and the write. Run one at a time (Redis; Garnet with
        // --lua-transaction-mode) no increment is lost; interleaved (Garnet without it) some are.
        const string Increment = """
            local v = tonumber(redis.call('GET', KEYS[1]) or '0')
            for i = 1, 20 do redis.call('SET', KEYS[2], i) end
            redis.call('SET', KEYS[1], tostring(v + 1))
            return v + 1
            """;
        const int Connections = 4, Calls = 150;
        using var scope = new RedisTestScope();
        RedisKey[] keys = [scope.Options.KeyPrefix + "{n}:count", scope.Options.KeyPrefix + "{n}:scratch"];
        var clients = Enumerable.Range(0, Connections).Select(_ => scope.Connect().GetDatabase()).ToArray();

        await Task.WhenAll(clients.Select(db => Task.Run(async () =>
        {
            for (var i = 0; i < Calls; i++)
            {
                await db.ScriptEvaluateAsync(Increment, keys);
            }
        })));

        Assert.Equal(Connections * Calls, (long)await clients[0].StringGetAsync(keys[0]));
    }
}
