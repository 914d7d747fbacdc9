using System.Numerics;
using Cortensor.Portal.Metering.RateLimiting;
using Cortensor.Portal.Redis.RateLimiting;
using Cortensor.Portal.Redis.Tests.Infrastructure;
using CsCheck;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Tests.RateLimiting;

/// <summary>
/// The script's GCRA arithmetic, run in Redis's Lua on random inputs, against <see cref="Gcra"/>: the two must agree
/// exactly, including where products such as window × quota pass 2^53 (Lua's exact doubles).
/// </summary>
public sealed class RedisGcraScriptTests : IDisposable
{
    private const long Now = 1_800_000_000_000_000; // a Unix time in µs, as Redis's TIME gives it

    private readonly RedisTestScope _scope = new();

    public void Dispose() => _scope.Dispose();

    /// <summary>Quotas across magnitudes, with the values that once overflowed the bucket.</summary>
    private static readonly Gen<long> Quota = Gen.Frequency(
        (3, Gen.Long[1, 100]),
        (3, Gen.Long[1, 10_000_000]),
        (3, Gen.Long[1, int.MaxValue]),
        (1, Gen.OneOf(50_000_000L, 90_000L, 7L, 400_000L, int.MaxValue)));

    private static readonly Gen<long> Window = Gen.Frequency(
        (3, Gen.OneOf(1_000_000L, 60_000_000L)),
        (1, Gen.Long[1, 86_400_000_000]));

    [Fact]
    public async Task MulDiv_MatchesBigInteger()
    {
        var db = _scope.Connect().GetDatabase();
        var cases = Gen.Select(Gen.Long[0, int.MaxValue], Gen.Long[0, 86_400_000_000], Gen.Long[1, 86_400_000_000]).Array[1, 50];

        await cases.SampleAsync(
            async batch =>
            {
                var args = batch.SelectMany(static c => new RedisValue[] { c.Item1, c.Item2, c.Item3 }).ToArray();
                var result = (RedisResult[])(await db.ScriptEvaluateAsync(
                    RedisRateLimitScripts.GcraFunctions + """
                        local out = {}
                        for i = 1, #ARGV, 3 do
                          local q, r = muldiv(tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]))
                          out[#out + 1] = string.format('%.0f', q)
                          out[#out + 1] = string.format('%.0f', r)
                        end
                        return out
                        """,
                    values: args))!;
                for (var i = 0; i < batch.Length; i++)
                {
                    var (a, b, m) = batch[i];
                    var quotient = BigInteger.DivRem((BigInteger)a * b, m, out var remainder);
                    Assert.Equal(quotient.ToString(), (string?)result[2 * i]);
                    Assert.Equal(remainder.ToString(), (string?)result[(2 * i) + 1]);
                }
            },
            iter: 200,
            threads: 1);
    }

    [Fact]
    public async Task EvaluateAndSettle_MatchGcra()
    {
        var db = _scope.Connect().GetDatabase();
        // A rule, a TAT some way ahead of now (up to two windows: settles overdraw), a cost and a settle delta.
        var cases = (
            from quota in Quota
            from window in Window
            from aheadTicks in Gen.Long[0, long.MaxValue]
            from cost in Gen.Frequency((3, Gen.Long[0, 100]), (2, Gen.Long[0, quota]), (1, Gen.Long[0, int.MaxValue]))
            from delta in Gen.Long[-int.MaxValue, int.MaxValue]
            let capacity = (Int128)quota * window * 2
            let ahead = (Int128)aheadTicks % (capacity + 1)
            select (quota, window, AheadUs: (long)(ahead / quota), AheadFraction: (long)(ahead % quota), cost, delta)).Array[1, 20];

        await cases.SampleAsync(
            async batch =>
            {
                var args = batch.SelectMany(static c => new RedisValue[] { c.quota, c.window, c.AheadUs, c.AheadFraction, c.cost, c.delta }).ToArray();
                var result = (RedisResult[])(await db.ScriptEvaluateAsync(
                    RedisRateLimitScripts.GcraFunctions + """
                        local out = {}
                        local function put(v) out[#out + 1] = string.format('%.0f', v or -1) end
                        for i = 1, #ARGV, 6 do
                          local quota, window = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
                          local au, af = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
                          local ok, left, reset, retry, nu, nf = gcra(au, af, quota, window, tonumber(ARGV[i + 4]))
                          put(ok) put(left) put(reset) put(retry) put(nu) put(nf)
                          local su, sf = settle(au, af, quota, window, tonumber(ARGV[i + 5]))
                          put(su) put(sf)
                        end
                        return out
                        """,
                    values: args))!;
                for (var i = 0; i < batch.Length; i++)
                {
                    var c = batch[i];
                    var stored = new GcraTat(Now + c.AheadUs, c.AheadFraction);
                    var expected = Gcra.Evaluate(stored, Now, c.quota, c.window, c.cost);
                    var settled = Gcra.Settle(stored, Now, c.quota, c.window, c.delta);
                    var lua = result.Skip(8 * i).Take(8).Select(static v => long.Parse((string)v!, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                    var context = $"quota {c.quota}, window {c.window}, ahead {c.AheadUs}+{c.AheadFraction}/Q, cost {c.cost}, delta {c.delta}";
                    Assert.True(expected.IsAllowed == (lua[0] == 1), context);
                    Assert.True(expected.Remaining == lua[1], $"remaining {expected.Remaining} vs {lua[1]}: {context}");
                    Assert.True(expected.Reset == lua[2], $"reset {expected.Reset} vs {lua[2]}: {context}");
                    Assert.True(expected.RetryAfter == lua[3], $"retry {expected.RetryAfter} vs {lua[3]}: {context}");
                    if (expected.IsAllowed)
                    {
                        Assert.True(expected.Tat == new GcraTat(Now + lua[4], lua[5]), $"tat {expected.Tat} vs {lua[4]}+{lua[5]}: {context}");
                    }

                    Assert.True(settled == new GcraTat(Now + lua[6], lua[7]), $"settle {settled} vs {lua[6]}+{lua[7]}: {context}");
                }
            },
            iter: 200,
            threads: 1);
    }
}
