using System.Security.Cryptography;
using System.Text;

namespace Cortensor.Portal.Redis.RateLimiting;

/// <summary>
/// The two Lua scripts of <see cref="RedisRateLimiter"/>. Both read the time from Redis (<c>TIME</c>, microseconds), so
/// replicas with skewed clocks share one timeline, and repeat the formulas of
/// <see cref="Cortensor.Portal.Metering.RateLimiting.Gcra"/> exactly (integer microseconds; Lua's doubles hold them
/// exactly below 2^53; numbers are written back with <c>%.0f</c> because Lua's default formatting would round them).
/// </summary>
internal static class RedisRateLimitScripts
{
    /// <summary>Class codes in ARGV.</summary>
    public const string RequestsCode = "r";
    public const string TokensCode = "t";
    public const string ConcurrencyCode = "c";

    /// <summary>
    /// KEYS[i]: the state of rule i (a TAT string, or a sorted set of request ids scored by slot expiry).
    /// ARGV: request id, tokens, slot TTL (µs), then per rule: class code, quota, window (µs).
    /// Returns: { allowed (1/0), then per rule: allowed (1/0), remaining, reset (µs), retry after (µs) }.
    /// Decides every rule first; writes only when all of them admit (a refusal writes nothing).
    /// </summary>
    public const string Acquire = """
        if redis.replicate_commands then redis.replicate_commands() end
        local function fmt(x) return string.format('%.0f', x) end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local id = ARGV[1]
        local tokens = tonumber(ARGV[2])
        local slot_ttl = tonumber(ARGV[3])
        local n = #KEYS
        local out = { 1 }
        local ok_all = true
        -- cur: TAT (max(stored, now)) or slots in flight; nxt: TAT to store when admitted (nil: nothing to write)
        local class, quota, window, cur, nxt = {}, {}, {}, {}, {}
        for i = 1, n do
          local a = 3 + (i - 1) * 3
          class[i] = ARGV[a + 1]
          quota[i] = tonumber(ARGV[a + 2])
          window[i] = tonumber(ARGV[a + 3])
          local o = 4 * (i - 1) + 2
          if class[i] == 'c' then
            local in_flight = redis.call('ZCOUNT', KEYS[i], '(' .. fmt(now), '+inf')
            cur[i] = in_flight
            if in_flight < quota[i] then
              out[o], out[o + 1], out[o + 2], out[o + 3] = 1, quota[i] - in_flight - 1, 0, 0
            else
              out[o], out[o + 1], out[o + 2], out[o + 3] = 0, 0, 0, 0
            end
          else
            local cost = 1
            if class[i] == 't' then cost = tokens end
            local t = math.max(1, math.floor(window[i] / quota[i]))
            local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or '0') or 0, now)
            cur[i] = tat
            if cost > quota[i] then
              out[o], out[o + 1], out[o + 2], out[o + 3] = 0, 0, tat - now, window[i]
            else
              local new_tat = tat + cost * t
              local allow_at = new_tat - window[i]
              if now < allow_at then
                out[o], out[o + 1], out[o + 2], out[o + 3] = 0, 0, tat - now, allow_at - now
              else
                out[o], out[o + 1], out[o + 2], out[o + 3] = 1, math.max(0, math.floor((window[i] - (new_tat - now)) / t)), new_tat - now, 0
                if cost > 0 then nxt[i] = new_tat end
              end
            end
          end
          if out[o] == 0 then ok_all = false end
        end
        if not ok_all then
          out[1] = 0
          -- Refused: nothing is written; rules that admitted report their unchanged state (Gcra.Peek; concurrency: cap - in flight).
          for i = 1, n do
            local o = 4 * (i - 1) + 2
            if out[o] == 1 then
              if class[i] == 'c' then
                out[o + 1] = quota[i] - cur[i]
              else
                local t = math.max(1, math.floor(window[i] / quota[i]))
                out[o + 1] = math.max(0, math.floor((window[i] - (cur[i] - now)) / t))
                out[o + 2] = cur[i] - now
              end
            end
          end
          return out
        end
        for i = 1, n do
          if class[i] == 'c' then
            redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', fmt(now))
            redis.call('ZADD', KEYS[i], fmt(now + slot_ttl), id)
            redis.call('PEXPIRE', KEYS[i], fmt(math.ceil(slot_ttl / 1000)))
          elseif nxt[i] then
            redis.call('SET', KEYS[i], fmt(nxt[i]), 'PX', fmt(math.max(1, math.ceil((nxt[i] - now) / 1000))))
          end
        end
        return out
        """;

    /// <summary>
    /// KEYS[i]: the state of rule i (concurrency slots or a token rule's TAT).
    /// ARGV: request id, token delta (actual − charged), then per key: class code, quota, window (µs).
    /// Removes the request's slots and settles token rules (<c>Gcra.Settle</c>: never below now; deleted when ≤ now).
    /// </summary>
    public const string Release = """
        if redis.replicate_commands then redis.replicate_commands() end
        local function fmt(x) return string.format('%.0f', x) end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local id = ARGV[1]
        local delta = tonumber(ARGV[2])
        for i = 1, #KEYS do
          local a = 2 + (i - 1) * 3
          local class = ARGV[a + 1]
          if class == 'c' then
            redis.call('ZREM', KEYS[i], id)
          elseif delta ~= 0 then
            local t = math.max(1, math.floor(tonumber(ARGV[a + 3]) / tonumber(ARGV[a + 2])))
            local stored = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
            local tat = math.max(now, math.max(stored, now) + delta * t)
            if tat > now then
              redis.call('SET', KEYS[i], fmt(tat), 'PX', fmt(math.max(1, math.ceil((tat - now) / 1000))))
            else
              redis.call('DEL', KEYS[i])
            end
          end
        end
        return 1
        """;

    public static readonly byte[] AcquireSha1 = Sha1(Acquire);

    public static readonly byte[] ReleaseSha1 = Sha1(Release);

#pragma warning disable CA5350 // SHA-1 is what Redis names scripts by; not a security use.
    private static byte[] Sha1(string script) => SHA1.HashData(Encoding.UTF8.GetBytes(script));
#pragma warning restore CA5350
}
