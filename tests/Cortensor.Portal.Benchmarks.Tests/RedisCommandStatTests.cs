using Cortensor.Portal.Benchmarks.Enforcement;
using StackExchange.Redis;
using Cortensor.Portal.Testing.Redis;
using TestRedisServer = Cortensor.Portal.Testing.Redis.RedisServerProcess;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>The suite's reading of <c>INFO commandstats</c>: the rate-limit scripts' calls and server time per phase.</summary>
public sealed class RedisCommandStatTests
{
    [Fact]
    public void Parse_ReadsCallsAndServerTime()
    {
        var stat = CommandStat.Parse("calls=5300,usec=574639,usec_per_call=108.42,rejected_calls=0,failed_calls=0");

        Assert.Equal(new CommandStat(5300, 574639), stat);
        Assert.Equal(574639.0 / 5300, stat.MicrosecondsPerCall, 9);
    }

    [Theory]
    [InlineData("usec=10,usec_per_call=1.00")]
    [InlineData("calls=10,usec_per_call=1.00")]
    [InlineData("")]
    public void Parse_WithoutCallsOrTime_Throws(string value) =>
        Assert.Throws<FormatException>(() => CommandStat.Parse(value));

    [Fact]
    public void Difference_IsThePhase_AndAnUnusedCommandCostsNothingPerCall()
    {
        var phase = new CommandStat(1_200, 90_000) - new CommandStat(200, 10_000);

        Assert.Equal(new CommandStat(1_000, 80_000), phase);
        Assert.Equal(80, phase.MicrosecondsPerCall);
        Assert.Equal(0, default(CommandStat).MicrosecondsPerCall);
    }

    [Fact]
    public async Task CommandStats_CountExactlyTheScriptsRunBetweenTwoReadings()
    {
        // redis-server, or Garnet (started with --commandstats-monitor) when the machine has none.
        using var server = TestRedisServer.StartNew();
        await using var counter = await RedisCommandCounter.ConnectAsync(server.ConnectionString);
        await using var client = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var db = client.GetDatabase();
        var sha1 = await client.GetServer(client.GetEndPoints()[0]).ScriptLoadAsync("return redis.call('INCR', KEYS[1])");

        var before = (await counter.CommandStatsAsync()).GetValueOrDefault("evalsha");
        for (var i = 0; i < 7; i++)
        {
            await db.ScriptEvaluateAsync(sha1, ["n"]);
        }

        var phase = (await counter.CommandStatsAsync())["evalsha"] - before;

        Assert.Equal(7, phase.Calls);
        if (server.Kind == TestRedisServerKind.RedisServer)
        {
            Assert.InRange(phase.Microseconds, 1, 7_000_000);
        }
        else
        {
            // Garnet 2.2.12 counts calls but does not time them: it reports usec=0, so the suite's per-script
            // server time reads 0 there (the benchmarks measure redis-server).
            Assert.Equal(0, phase.Microseconds);
        }


        Assert.Equal(7, (long)await db.StringGetAsync("n"));
    }
}
