using System.Security.Cryptography;
using System.Text;

namespace Cortensor.Portal.Redis.RateLimiting;

/// <summary>
/// The Lua scripts of <see cref="RedisRateLimiter"/>. All read the time from Redis (<c>TIME</c>, microseconds), so
/// replicas with skewed clocks share one timeline, and repeat the formulas of
/// <see cref="Cortensor.Portal.Metering.RateLimiting.Gcra"/> exactly (integers only: Lua's doubles hold them exactly
/// below 2^53, and products that may pass it go through <c>muldiv</c>; numbers are written back with <c>%.0f</c>
/// because Lua's default formatting would round them).
/// </summary>
internal static class RedisRateLimitScripts
{
    /// <summary>Class codes in ARGV.</summary>
    public const string RequestsCode = "r";
    public const string TokensCode = "t";
    public const string ConcurrencyCode = "c";

    /// <summary>
    /// The exact GCRA arithmetic of <c>Gcra</c> in Lua's doubles, shared by both scripts. A TAT is stored as
    /// <c>"us"</c> or <c>"us.frac"</c>: whole microseconds plus <c>frac</c> ticks of 1/Q µs (written with a dot so that
    /// a script of an older version, during a rolling upgrade, still reads it as a number within 1 µs of the TAT). Products such as W·Q can
    /// pass 2^53, so amounts in ticks are kept as two numbers (whole microseconds, ticks below Q) and <c>muldiv</c>
    /// divides a product without forming it whole.
    /// <c>release_ops(now, first_key, first_arg, count)</c> applies <c>count</c> operations, operation j on
    /// <c>KEYS[first_key + j]</c> with five ARGV from <c>first_arg + 5j</c>: class code, quota, window (µs), request id,
    /// token delta (actual − charged). Concurrency: removes the request's slot. Tokens: settles the TAT
    /// (<c>Gcra.Settle</c>: never below now; deleted when not after now). Requests: nothing.
    /// </summary>
    internal const string GcraFunctions = """
        -- floor(a * b / m) and the remainder, exact for integers a, b >= 0 and 0 < m < 2^52 (quotient below 2^53)
        local function muldiv(a, b, m)
          -- a float product even where numbers have an integer subtype (Lua 5.4 engines), so a huge one cannot wrap
          local p = (a * 1.0) * b
          if p < 4503599627370496 then
            local q = math.floor(p / m)
            local r = p - q * m
            if r < 0 then q, r = q - 1, r + m elseif r >= m then q, r = q + 1, r - m end
            return q, r
          end
          local bq = math.floor(b / m)
          local br = b - bq * m
          if br < 0 then bq, br = bq - 1, br + m elseif br >= m then bq, br = bq + 1, br - m end
          -- a * br, one bit of a at a time: every partial remainder stays below 2m
          local q, r, bit, rest = 0, 0, 1, a
          while bit * 2 <= rest do bit = bit * 2 end
          while bit >= 1 do
            q, r = q * 2, r * 2
            if r >= m then q, r = q + 1, r - m end
            if rest >= bit then
              rest = rest - bit
              r = r + br
              if r >= m then q, r = q + 1, r - m end
            end
            bit = bit / 2
          end
          return a * bq + q, r
        end

        -- ceil(s / m) for integers 0 <= s < 2^53, 0 < m
        local function ceildiv(s, m)
          local q = math.floor(s / m)
          if q * m > s then q = q - 1 elseif (q + 1) * m <= s then q = q + 1 end
          if q * m < s then q = q + 1 end
          return q
        end

        -- Gcra.Evaluate on the TAT's lead over now (au µs + af ticks of 1/quota µs): allowed (1/0), remaining, reset (µs),
        -- retry after (µs), and when allowed the new lead (nu, nf)
        local function gcra(au, af, quota, window, cost)
          local reset = au
          if af > 0 then reset = reset + 1 end
          if cost > quota then return 0, 0, reset, window end
          local cu, cf = muldiv(cost, window, quota)
          local nu, nf = au + cu, af + cf
          if nf >= quota then nu, nf = nu + 1, nf - quota end
          if nu > window or (nu == window and nf > 0) then
            local retry = nu - window
            if nf > 0 then retry = retry + 1 end
            return 0, 0, reset, retry
          end
          -- remaining = quota - ceil((nu * quota + nf) / window): never above quota - cost, never below 0
          local x, y = muldiv(nu, quota, window)
          local next_reset = nu
          if nf > 0 then next_reset = next_reset + 1 end
          return 1, quota - x - ceildiv(y + nf, window), next_reset, 0, nu, nf
        end

        -- Gcra.Settle on the TAT's lead over now: moves it by delta * window / quota µs, never below now and at most
        -- 1000 windows (Gcra.MaxOverdraftWindows) ahead; delta is clamped to +-1001 quotas first, as there
        local function settle(au, af, quota, window, delta)
          local du, df = muldiv(math.min(math.abs(delta), 1001 * quota), window, quota)
          if delta > 0 then
            au, af = au + du, af + df
            if af >= quota then au, af = au + 1, af - quota end
          else
            au, af = au - du, af - df
            if af < 0 then au, af = au - 1, af + quota end
            if au < 0 then return 0, 0 end
          end
          if au >= 1000 * window then return 1000 * window, 0 end
          return au, af
        end

        -- the stored TAT as its lead over now (us, frac); 0, 0 when not after now. A fraction left by a larger quota carries over.
        local function read_ahead(key, now, quota)
          local v = redis.call('GET', key)
          if not v then return 0, 0 end
          local sep = string.find(v, '.', 1, true)
          local us, frac
          if sep then
            us, frac = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
          else
            us, frac = tonumber(v), 0
          end
          if not us or not frac or frac < 0 then return 0, 0 end
          if frac >= quota then
            local carry = math.floor(frac / quota)
            us, frac = us + carry, frac - carry * quota
          end
          if us < now or (us == now and frac == 0) then return 0, 0 end
          return us - now, frac
        end

        -- stores the TAT now + ahead (deleted when ahead is zero), expiring when the rule is back to its full quota
        local function write_ahead(key, now, us, frac)
          if us <= 0 and frac == 0 then
            redis.call('DEL', key)
            return
          end
          local value = string.format('%.0f', now + us)
          if frac > 0 then value = value .. '.' .. string.format('%.0f', frac) end
          local reset = us
          if frac > 0 then reset = reset + 1 end
          redis.call('SET', key, value, 'PX', tostring(math.max(1, math.ceil(reset / 1000))))
        end

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
                local quota, window = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
                local us, frac = read_ahead(key, now, quota)
                write_ahead(key, now, settle(us, frac, quota, window, delta))
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
    public const string Acquire = GcraFunctions + """
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
        -- cur/curf: the TAT's lead over now (µs, ticks) or slots in flight; nxt/nxtf: the lead to store when admitted (nil: nothing to write)
        local cur, curf, nxt, nxtf = {}, {}, {}, {}
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
            -- the TAT's lead over now, in whole µs and ticks of 1/quota µs
            local au, af = read_ahead(KEYS[i], now, quota)
            cur[i], curf[i] = au, af
            local ok, left, reset, retry, nu, nf = gcra(au, af, quota, window, cost)
            out[o], out[o + 1], out[o + 2], out[o + 3] = ok, left, reset, retry
            if ok == 0 then
              refused = true
            elseif cost > 0 then
              nxt[i], nxtf[i] = nu, nf
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
                local _, left, reset = gcra(cur[i], curf[i], quota, tonumber(ARGV[a + 2]), 0)
                out[o + 1], out[o + 2] = left, reset
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
            write_ahead(KEYS[i], now, nxt[i], nxtf[i])
          end
        end
        return out
        """;

    /// <summary>
    /// KEYS[j]: the key of release operation j; ARGV: five values per operation (see <c>release_ops</c>).
    /// Frees the requests' slots and settles their token rules, in one call for every release of one hash tag.
    /// </summary>
    public const string Release = GcraFunctions + """
        if redis.replicate_commands then redis.replicate_commands() end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        release_ops(now, 1, 1, #KEYS)
        return 1
        """;

    /// <summary>
    /// KEYS[j]: a concurrency slot set of one hash tag; ARGV[1]: the lease TTL (µs); ARGV[j + 1]: the request id whose
    /// slot in KEYS[j] is renewed. Sets each slot's expiry to now + TTL, and makes each set live at least that long.
    /// A slot that was gone or already expired (Redis out of reach for longer than the TTL, or released since the
    /// caller's snapshot) is put back all the same: the caller renews only requests it believes still run, so their
    /// slots must count. Returns the indexes j of those slots; the caller releases again the ones whose request
    /// ended meanwhile (that release runs after this script, on the same connection).
    /// </summary>
    public const string Renew = """
        if redis.replicate_commands then redis.replicate_commands() end
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local ttl = tonumber(ARGV[1])
        local score = string.format('%.0f', now + ttl)
        local ms = math.ceil(ttl / 1000)
        local missing = {}
        local seen = {}
        for j = 1, #KEYS do
          local key = KEYS[j]
          local held = redis.call('ZSCORE', key, ARGV[j + 1])
          if not held or tonumber(held) <= now then missing[#missing + 1] = j end
          redis.call('ZADD', key, score, ARGV[j + 1])
          if not seen[key] then
            seen[key] = true
            -- never shortens a set's life (a slot of a replica configured with a longer TTL may be in it)
            if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, tostring(ms)) end
          end
        end
        return missing
        """;

    public static readonly byte[] AcquireSha1 = Sha1(Acquire);

    public static readonly byte[] ReleaseSha1 = Sha1(Release);

    public static readonly byte[] RenewSha1 = Sha1(Renew);

#pragma warning disable CA5350 // SHA-1 is what Redis names scripts by; not a security use.
    private static byte[] Sha1(string script) => SHA1.HashData(Encoding.UTF8.GetBytes(script));
#pragma warning restore CA5350
}
