namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// The GCRA (generic cell rate algorithm) arithmetic shared by every <see cref="IRateLimiter"/>: the in-process
/// limiter calls these methods and the Redis Lua script repeats the same formulas, so both give identical answers.
/// </summary>
/// <remarks>
/// <para>Times are integer <b>microseconds</b>, quota and cost integer units. The state of one rule is its TAT
/// (theoretical arrival time, a <see cref="GcraTat"/>): the instant at which the rule is back to its full quota. A
/// missing state is the same as any TAT ≤ now.</para>
/// <para>One unit comes back every <c>W / Q</c> microseconds. That is rarely a whole number (60 s / 90,000 tokens is
/// 666.67 µs), and rounding it is what once let a rule hold more than its quota (a truncated interval of 1 µs made a
/// 50,000,000 tokens-per-minute rule hold 60,000,000). So the arithmetic is exact: it counts in <b>ticks</b> of
/// <c>1/Q</c> µs, in which one unit costs exactly <c>W</c> ticks and the full quota exactly <c>W·Q</c> ticks; a TAT is
/// whole microseconds plus a fraction of <c>Fraction/Q</c> µs. For a cost <c>n</c> (1 for a request, the tokens for a
/// token rule):</para>
/// <code>
/// ahead    = max(0, tat − now)                 -- in ticks: the quota in use now is ahead / W units
/// if n &gt; Q: refused, retryAfter = W       -- can never pass (the cost exceeds the whole quota)
/// next     = ahead + n·W
/// if next &gt; W·Q: refused, retryAfter = ceil((next − W·Q) / Q) µs, remaining = 0, reset = ceil(ahead / Q) µs  (state unchanged)
/// else:           allowed, tat = now + next, remaining = Q − ceil(next / W), reset = ceil(next / Q) µs
/// </code>
/// <para>So 0 ≤ remaining ≤ Q − n always: remaining is exactly the largest cost a next request could be charged now
/// and still pass, never more than the quota the policy advertises. A full quota bursts at once; after that units
/// come back at exactly Q per W.</para>
/// <para>A refusal changes nothing. A cost of 0 is a check only: it passes while the rule is not overdrawn
/// (<c>ahead ≤ W·Q</c>) and reports the current remaining and reset; that is also how a rule that did not refuse
/// reports its state in a refused decision. The state may be deleted (Redis: the key expires) once TAT ≤ now, so give
/// it a TTL of the reset.</para>
/// <para>Settling (<see cref="Settle"/>) adds <c>delta·W</c> ticks to the TAT, never below now and never more than
/// <see cref="MaxOverdraftWindows"/> windows ahead of it (delta is first clamped to ±(MaxOverdraftWindows + 1)·Q, which
/// changes nothing for a TAT within that bound).</para>
/// <para>Products such as <c>W·Q</c> can exceed 2^53 (and so Lua's exact doubles); the Redis script computes
/// them as quotient and remainder (whole microseconds and ticks) and never forms them whole.</para>
/// </remarks>
public static class Gcra
{
    /// <summary>
    /// How many windows ahead a settle may push a TAT: a request that used far more tokens than the rule's quota
    /// blocks the rule for at most this many windows (and the Redis script's numbers stay exact).
    /// </summary>
    public const long MaxOverdraftWindows = 1000;

    /// <summary>Decides one rule for a cost (see the formulas on <see cref="Gcra"/>).</summary>
    /// <param name="stored">The stored TAT; <c>default</c> (or anything ≤ now) when there is none.</param>
    /// <param name="now">The current time in microseconds (not negative).</param>
    /// <param name="quota">Units per window; greater than zero.</param>
    /// <param name="window">The window in microseconds; greater than zero.</param>
    /// <param name="cost">Units to charge: 1 for a request, the tokens for a token rule, 0 for a check only.</param>
    /// <returns>The decision; when allowed, store <see cref="GcraResult.Tat"/> (a refusal leaves the state as it was).</returns>
    public static GcraResult Evaluate(GcraTat stored, long now, long quota, long window, long cost)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(quota);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(window);
        ArgumentOutOfRangeException.ThrowIfNegative(cost);
        ArgumentOutOfRangeException.ThrowIfNegative(now);
        var nowTicks = (Int128)now * quota;
        var ahead = Int128.Max(0, stored.Ticks(quota) - nowTicks);
        if (cost > quota)
        {
            return new GcraResult(false, stored, 0, window, CeilingDivide(ahead, quota));
        }

        var capacity = (Int128)window * quota;
        var next = ahead + ((Int128)cost * window);
        if (next > capacity)
        {
            return new GcraResult(false, stored, 0, CeilingDivide(next - capacity, quota), CeilingDivide(ahead, quota));
        }

        return new GcraResult(
            true,
            GcraTat.FromTicks(nowTicks + next, quota),
            quota - CeilingDivide(next, window),
            0,
            CeilingDivide(next, quota));
    }

    /// <summary>
    /// The state of a rule without charging it: <see cref="Evaluate"/> with a cost of 0. A refused decision reports
    /// its rules that did not refuse this way.
    /// </summary>
    /// <param name="stored">The stored TAT; <c>default</c> (or anything ≤ now) when there is none.</param>
    /// <param name="now">The current time in microseconds.</param>
    /// <param name="quota">Units per window; greater than zero.</param>
    /// <param name="window">The window in microseconds; greater than zero.</param>
    /// <returns>The current remaining and reset (allowed unless the rule is overdrawn by a settle).</returns>
    public static GcraResult Peek(GcraTat stored, long now, long quota, long window) =>
        Evaluate(stored, now, quota, window, 0);

    /// <summary>
    /// Settles a token rule after the request: the TAT moves by <c>delta·W/Q</c> µs (exactly), never below now and
    /// never more than <see cref="MaxOverdraftWindows"/> windows ahead of it. A positive delta charges tokens used
    /// beyond the admission estimate (it may overdraw the rule, which then refuses until it has paid back); a negative
    /// delta refunds.
    /// </summary>
    /// <param name="stored">The stored TAT; <c>default</c> (or anything ≤ now) when there is none.</param>
    /// <param name="now">The current time in microseconds (not negative).</param>
    /// <param name="quota">Units per window; greater than zero.</param>
    /// <param name="window">The window in microseconds; greater than zero.</param>
    /// <param name="delta">Actual tokens minus the tokens charged at admission.</param>
    /// <returns>The TAT to store; when it is not after now the state may be deleted.</returns>
    public static GcraTat Settle(GcraTat stored, long now, long quota, long window, long delta)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(quota);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(window);
        ArgumentOutOfRangeException.ThrowIfNegative(now);
        var nowTicks = (Int128)now * quota;
        // A delta beyond the cap moves the TAT to a bound either way; clamped first so the script's product stays exact.
        var bound = (MaxOverdraftWindows + 1) * quota;
        delta = Math.Clamp(delta, -bound, bound);
        var limit = nowTicks + ((Int128)MaxOverdraftWindows * window * quota);
        var tat = Int128.Max(stored.Ticks(quota), nowTicks) + ((Int128)delta * window);
        return GcraTat.FromTicks(Int128.Clamp(tat, nowTicks, limit), quota);
    }

    /// <summary><c>ceil(value / divisor)</c> for a value ≥ 0 and a divisor &gt; 0.</summary>
    private static long CeilingDivide(Int128 value, long divisor) => (long)((value + divisor - 1) / divisor);
}

/// <summary>
/// A GCRA theoretical arrival time: <see cref="Microseconds"/> plus <see cref="Fraction"/>/quota of a microsecond, so
/// that the emission interval W/Q needs no rounding (see <see cref="Gcra"/>).
/// </summary>
/// <param name="Microseconds">Whole microseconds (the clock's unit).</param>
/// <param name="Fraction">Ticks of 1/quota µs beyond <paramref name="Microseconds"/>: 0 ≤ Fraction &lt; quota as written by <see cref="Gcra"/>.</param>
public readonly record struct GcraTat(long Microseconds, long Fraction)
{
    /// <summary>A TAT at a whole microsecond.</summary>
    /// <param name="microseconds">The instant.</param>
    /// <returns>The TAT.</returns>
    public static GcraTat At(long microseconds) => new(microseconds, 0);

    /// <summary>Whether the rule is still using part of its quota at <paramref name="now"/> (otherwise its state may be dropped).</summary>
    /// <param name="now">The current time in microseconds.</param>
    /// <returns>True when the TAT is after now.</returns>
    public bool IsAfter(long now) => Microseconds > now || (Microseconds == now && Fraction > 0);

    /// <summary>The TAT in ticks of 1/quota µs. A fraction left by a larger quota (a reload lowered it) simply carries over.</summary>
    internal Int128 Ticks(long quota) => ((Int128)Microseconds * quota) + Fraction;

    internal static GcraTat FromTicks(Int128 ticks, long quota) =>
        new((long)(ticks / quota), (long)(ticks % quota));
}

/// <summary>The outcome of <see cref="Gcra.Evaluate"/>; every time is in microseconds.</summary>
/// <param name="IsAllowed">Whether the cost fits.</param>
/// <param name="Tat">When allowed, the TAT to store; when refused, the stored TAT passed in (unchanged).</param>
/// <param name="Remaining">Units left after this decision, 0 ≤ remaining ≤ quota (0 when refused).</param>
/// <param name="RetryAfter">When refused, the wait until the same cost would fit (the window when it never can); 0 when allowed.</param>
/// <param name="Reset">Time until the rule is back to its full quota.</param>
public readonly record struct GcraResult(bool IsAllowed, GcraTat Tat, long Remaining, long RetryAfter, long Reset);
