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
    /// The release of earlier requests, shared by both scripts: <c>release_ops(now, first_key, first_arg, count)</c>
    /// applies <c>count</c> operations, operation j on <c>KEYS[first_key + j]</c> with five ARGV from
    /// <c>first_arg + 5j</c>: class code, quota, window (µs), request id, token delta (actual − charged).
    /// Concurrency: removes the request's slot. Tokens: settles the TAT (<c>Gcra.Settle</c>: never below now; deleted
    /// when ≤ now). Requests: nothing.
    /// </summary>
    private const string ReleaseFunction = """
        local function release_ops(now, first_key, first_arg, count)
          for j = 0, count - 1 do
            local key = KEYS[first_key + j]
            local a = first_arg + 5 * j
            local class = ARGV[a]
            if class == 'c' then
              redis.call('ZREM', key, ARGV[a + 3])
            elseif class == 't' then
              local delta = tonumber(ARGV[a + 4])
              if delta ~= 0 then
                local t = math.floor(tonumber(ARGV[a + 2]) / tonumber(ARGV[a + 1]))
                if t < 1 then t = 1 end
                local tat = tonumber(redis.call('GET', key) or '0') or 0
                if tat < now then tat = now end
                tat = tat + delta * t
                if tat > now then
                  redis.call('SET', key, string.format('%.0f', tat), 'PX', tostring(math.max(1, math.ceil((tat - now) / 1000))))
                else
                  redis.call('DEL', key)
                end
              end
            end
          end
        end

        """;

    /// <summary>
    /// KEYS[1..n]: the state of rule i (a TAT string, or a sorted set of request ids scored by slot expiry); then
    /// KEYS[n+1..n+m]: the keys of m release operations of earlier requests of the same hash tag, carried along.
    /// ARGV: request id, tokens, slot TTL (µs), m, then per rule: class code, quota, window (µs), then per release
    /// operation the five values of <c>release_ops</c>.
    /// Returns: { allowed (1/0), then per rule: allowed (1/0), remaining, reset (µs), retry after (µs) }.
    /// Applies the releases first (they free what this decision may need), then decides every rule; writes this
    /// request's state only when all of them admit (a refusal writes nothing of its own).
    /// </summary>
    public const string Acquire = ReleaseFunction + """
        if redis.replicate_commands then redis.replicate_commands() end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        -- the same instant as a string, exact without a float format (string.format costs ~1 µs a call in Redis's Lua)
        local now_text = clock[1] .. string.format('%06d', tonumber(clock[2]))
        local id = ARGV[1]
        local tokens = tonumber(ARGV[2])
        local slot_ttl = tonumber(ARGV[3])
        local m = tonumber(ARGV[4])
        local n = #KEYS - m
        if m > 0 then release_ops(now, n + 1, 5 + 3 * n, m) end
        local out = { 1 }
        local refused = false
        -- cur: TAT (max(stored, now)) or slots in flight; nxt: TAT to store when admitted (nil: nothing to write)
        local cur, nxt = {}, {}
        for i = 1, n do
          local a = 3 * i + 2
          local class, quota, window = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
          local o = 4 * i - 2
          if class == 'c' then
            local in_flight = redis.call('ZCOUNT', KEYS[i], '(' .. now_text, '+inf')
            cur[i] = in_flight
            if in_flight < quota then
              out[o], out[o + 1], out[o + 2], out[o + 3] = 1, quota - in_flight - 1, 0, 0
            else
              out[o], out[o + 1], out[o + 2], out[o + 3] = 0, 0, 0, 0
              refused = true
            end
          else
            local cost = 1
            if class == 't' then cost = tokens end
            local t = math.floor(window / quota)
            if t < 1 then t = 1 end
            local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
            if tat < now then tat = now end
            cur[i] = tat
            if cost > quota then
              out[o], out[o + 1], out[o + 2], out[o + 3] = 0, 0, tat - now, window
              refused = true
            else
              local new_tat = tat + cost * t
              local allow_at = new_tat - window
              if now < allow_at then
                out[o], out[o + 1], out[o + 2], out[o + 3] = 0, 0, tat - now, allow_at - now
                refused = true
              else
                local left = math.floor((window - (new_tat - now)) / t)
                if left < 0 then left = 0 end
                out[o], out[o + 1], out[o + 2], out[o + 3] = 1, left, new_tat - now, 0
                if cost > 0 then nxt[i] = new_tat end
              end
            end
          end
        end
        if refused then
          out[1] = 0
          -- Refused: nothing is written; rules that admitted report their unchanged state (Gcra.Peek; concurrency: cap - in flight).
          for i = 1, n do
            local o = 4 * i - 2
            if out[o] == 1 then
              local a = 3 * i + 2
              local quota = tonumber(ARGV[a + 1])
              if ARGV[a] == 'c' then
                out[o + 1] = quota - cur[i]
              else
                local window = tonumber(ARGV[a + 2])
                local t = math.max(1, math.floor(window / quota))
                out[o + 1] = math.max(0, math.floor((window - (cur[i] - now)) / t))
                out[o + 2] = cur[i] - now
              end
            end
          end
          return out
        end
        -- integers below 2^53 as exact decimal strings: %.0f for microsecond instants, tostring (%.14g) for milliseconds
        local slot_score, slot_ms
        for i = 1, n do
          if ARGV[3 * i + 2] == 'c' then
            if not slot_score then
              slot_score = string.format('%.0f', now + slot_ttl)
              slot_ms = tostring(math.ceil(slot_ttl / 1000))
            end
            redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now_text)
            redis.call('ZADD', KEYS[i], slot_score, id)
            redis.call('PEXPIRE', KEYS[i], slot_ms)
          elseif nxt[i] then
            redis.call('SET', KEYS[i], string.format('%.0f', nxt[i]), 'PX', tostring(math.max(1, math.ceil((nxt[i] - now) / 1000))))
          end
        end
        return out
        """;

    /// <summary>
    /// KEYS[j]: the key of release operation j; ARGV: five values per operation (see <c>release_ops</c>).
    /// Frees the requests' slots and settles their token rules, in one call for every release of one hash tag.
    /// </summary>
    public const string Release = ReleaseFunction + """
        if redis.replicate_commands then redis.replicate_commands() end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        release_ops(now, 1, 1, #KEYS)
        return 1
        """;

    public static readonly byte[] AcquireSha1 = Sha1(Acquire);

    public static readonly byte[] ReleaseSha1 = Sha1(Release);

#pragma warning disable CA5350 // SHA-1 is what Redis names scripts by; not a security use.
    private static byte[] Sha1(string script) => SHA1.HashData(Encoding.UTF8.GetBytes(script));
#pragma warning restore CA5350
}
