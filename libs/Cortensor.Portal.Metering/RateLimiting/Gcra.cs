namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// The GCRA (generic cell rate algorithm) arithmetic shared by every <see cref="IRateLimiter"/>: the in-process
/// limiter calls these methods and the Redis Lua script repeats the same formulas, so both give identical answers.
/// </summary>
/// <remarks>
/// <para>Every value is an integer number of <b>microseconds</b> (times, durations) or units (quota, cost). The state
/// of one rule is one number, the TAT (theoretical arrival time): the instant at which the rule is back to its full
/// quota. A missing state is the same as any TAT ≤ now (pass 0).</para>
/// <para>For a rule of quota <c>Q</c> per window <c>W</c> and a cost <c>n</c> (1 for a request, the tokens for a token
/// rule):</para>
/// <code>
/// T        = max(1, floor(W / Q))        -- emission interval: one unit comes back every T
/// tat      = max(storedTat, now)
/// if n &gt; Q: refused, retryAfter = W   -- can never pass (the cost exceeds the whole quota)
/// newTat   = tat + n * T
/// allowAt  = newTat - W
/// if now &lt; allowAt: refused, retryAfter = allowAt - now, remaining = 0, reset = tat - now  (state unchanged)
/// else:              allowed, store newTat, remaining = max(0, floor((W - (newTat - now)) / T)), reset = newTat - now
/// </code>
/// <para>A refusal changes nothing. A cost of 0 is a check only: it passes while <c>now ≥ tat − W</c> (the bucket is
/// not overdrawn) and reports the current remaining and reset; that is also how a rule that did not refuse reports its
/// state in a refused decision. The state may be deleted (Redis: the key expires) once <c>tat ≤ now</c>, so give the
/// key a TTL of <c>tat − now</c>.</para>
/// <para>Settling (<see cref="Settle"/>) adds <c>delta * T</c> to the TAT, never below now:
/// <c>max(now, max(storedTat, now) + delta * T)</c>.</para>
/// <para>T is truncated, so a full quota always fits in W; a quota above W µs (over a million per second) behaves as
/// one unit per µs. Microsecond timestamps (about 1.8e15 for Unix time) and <c>n * T</c> stay below 2^53, so Lua's
/// double-precision numbers hold them exactly (use <c>math.floor</c> for the divisions).</para>
/// </remarks>
public static class Gcra
{
    /// <summary>The emission interval <c>T = max(1, floor(window / quota))</c>, in microseconds.</summary>
    /// <param name="quota">Units per window; greater than zero.</param>
    /// <param name="window">The window in microseconds; greater than zero.</param>
    /// <returns>The time, in microseconds, after which one unit comes back.</returns>
    public static long EmissionInterval(long quota, long window)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(quota);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(window);
        return Math.Max(1, window / quota);
    }

    /// <summary>Decides one rule for a cost (see the formulas on <see cref="Gcra"/>).</summary>
    /// <param name="storedTat">The stored TAT in microseconds; 0 (or anything ≤ now) when there is none.</param>
    /// <param name="now">The current time in microseconds.</param>
    /// <param name="quota">Units per window; greater than zero.</param>
    /// <param name="window">The window in microseconds; greater than zero.</param>
    /// <param name="cost">Units to charge: 1 for a request, the tokens for a token rule, 0 for a check only.</param>
    /// <returns>The decision; when allowed, store <see cref="GcraResult.Tat"/> (a refusal leaves the state as it was).</returns>
    public static GcraResult Evaluate(long storedTat, long now, long quota, long window, long cost)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(cost);
        var t = EmissionInterval(quota, window);
        var tat = Math.Max(storedTat, now);
        if (cost > quota)
        {
            return new GcraResult(false, storedTat, 0, window, tat - now);
        }

        var newTat = tat + (cost * t);
        var allowAt = newTat - window;
        if (now < allowAt)
        {
            return new GcraResult(false, storedTat, 0, allowAt - now, tat - now);
        }

        return new GcraResult(true, newTat, Math.Max(0, (window - (newTat - now)) / t), 0, newTat - now);
    }

    /// <summary>
    /// The state of a rule without charging it: <see cref="Evaluate"/> with a cost of 0. A refused decision reports
    /// its rules that did not refuse this way.
    /// </summary>
    /// <param name="storedTat">The stored TAT in microseconds; 0 (or anything ≤ now) when there is none.</param>
    /// <param name="now">The current time in microseconds.</param>
    /// <param name="quota">Units per window; greater than zero.</param>
    /// <param name="window">The window in microseconds; greater than zero.</param>
    /// <returns>The current remaining and reset (allowed unless the rule is overdrawn by a settle).</returns>
    public static GcraResult Peek(long storedTat, long now, long quota, long window) =>
        Evaluate(storedTat, now, quota, window, 0);

    /// <summary>
    /// Settles a token rule after the request: <c>max(now, max(storedTat, now) + delta * T)</c>. A positive delta
    /// charges tokens used beyond the admission estimate (it may overdraw the rule, which then refuses until it has
    /// paid back); a negative delta refunds, never below now.
    /// </summary>
    /// <param name="storedTat">The stored TAT in microseconds; 0 (or anything ≤ now) when there is none.</param>
    /// <param name="now">The current time in microseconds.</param>
    /// <param name="quota">Units per window; greater than zero.</param>
    /// <param name="window">The window in microseconds; greater than zero.</param>
    /// <param name="delta">Actual tokens minus the tokens charged at admission.</param>
    /// <returns>The TAT to store; when it is ≤ now the state may be deleted.</returns>
    public static long Settle(long storedTat, long now, long quota, long window, long delta)
    {
        var t = EmissionInterval(quota, window);
        return Math.Max(now, Math.Max(storedTat, now) + (delta * t));
    }
}

/// <summary>The outcome of <see cref="Gcra.Evaluate"/>; every time is in microseconds.</summary>
/// <param name="IsAllowed">Whether the cost fits.</param>
/// <param name="Tat">When allowed, the TAT to store; when refused, the stored TAT passed in (unchanged).</param>
/// <param name="Remaining">Units left after this decision (0 when refused).</param>
/// <param name="RetryAfter">When refused, the wait until the same cost would fit (the window when it never can); 0 when allowed.</param>
/// <param name="Reset">Time until the rule is back to its full quota.</param>
public readonly record struct GcraResult(bool IsAllowed, long Tat, long Remaining, long RetryAfter, long Reset);
