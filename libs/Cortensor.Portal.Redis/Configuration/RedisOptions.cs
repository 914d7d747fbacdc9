using System.ComponentModel.DataAnnotations;

namespace Cortensor.Portal.Redis.Configuration;

/// <summary>Settings of the Redis hot-path state (section <c>Cortensor:Redis</c>).</summary>
public sealed class RedisOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Cortensor:Redis";

    /// <summary>
    /// A StackExchange.Redis configuration string, for example <c>redis-1:6379,redis-2:6379,password=…,ssl=true</c>.
    /// <c>abortConnect</c> is always forced off (the app starts while Redis is down) and commands fail fast while
    /// disconnected instead of queueing.
    /// </summary>
    /// <value>The default value is empty, which fails validation at startup.</value>
    [Required]
    public string ConnectionString { get; set; } = "";

    /// <summary>
    /// Prepended to every Redis key and to the pub/sub channel, so several Portals can share one Redis. It may not
    /// contain <c>{</c> or <c>}</c> (the hash tag of a rate-limit key must be the org id).
    /// </summary>
    /// <value>The default value is <c>cortensor:</c>.</value>
    public string KeyPrefix { get; set; } = "cortensor:";

    /// <summary>
    /// How long one Redis operation on the hot path may take before it is treated as a failure (the rate limiter
    /// then falls back to its per-replica limiter, key verification goes to the store).
    /// </summary>
    /// <value>The default value is 250 milliseconds.</value>
    public TimeSpan OperationTimeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// How long a finished request's release (freeing its concurrency slots, settling its tokens) may wait to ride
    /// on the next rate-limit decision this replica sends for the same org, which saves a Redis round trip per
    /// request. A release that no decision picks up in time is sent on its own, together with every other release
    /// of its org that is waiting. A release that frees a concurrency slot of a key near its cap (or with no
    /// decision in the last second) never waits, so other replicas never refuse on a finished request's slot. Zero
    /// sends every release at once.
    /// </summary>
    /// <value>The default value is 5 milliseconds.</value>
    public TimeSpan ReleaseDelay { get; set; } = TimeSpan.FromMilliseconds(5);

    /// <summary>
    /// The backstop lifetime of a concurrency slot in Redis: each slot is a lease that expires this long after it was
    /// taken or last renewed. While its request is in flight, the replica that admitted it renews it every
    /// <see cref="ConcurrencyLeaseRenewInterval"/>, so a request of any length keeps its slot; a replica that crashed
    /// (or lost Redis for longer than this) stops renewing, and its slots free themselves within this time. A release
    /// that cannot reach Redis is retried for at most this long (by then the slot has expired anyway).
    /// </summary>
    /// <remarks>
    /// Why 30 s: three renewal intervals, so two renewals in a row may be lost (each bounded by
    /// <see cref="OperationTimeout"/>) before a live request loses its slot; and half the default router task timeout
    /// (60 s), so a crashed replica's slots are free again before a request it was serving would have ended. Without
    /// renewals the backstop would have had to outlast the longest request (minutes). Must be at least
    /// 2 × <see cref="ConcurrencyLeaseRenewInterval"/> + <see cref="OperationTimeout"/>. Capped per request by
    /// <c>Cortensor:RateLimits:ConcurrencySlotTtl</c> (the longest a slot is held without a release, renewals included).
    /// </remarks>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan ConcurrencyLeaseTtl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often a replica renews the leases of its in-flight requests' concurrency slots: one script per org (hash
    /// tag) with requests in flight per interval, whatever the request rate, never one per request.
    /// </summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan ConcurrencyLeaseRenewInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a verified key's principal is kept in Redis (revocations delete it at once).</summary>
    /// <value>The default value is 60 seconds.</value>
    public TimeSpan KeyCacheTtl { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long an unknown (well-formed) key is remembered as unknown in Redis.</summary>
    /// <value>The default value is 5 seconds.</value>
    public TimeSpan UnknownKeyTtl { get; set; } = TimeSpan.FromSeconds(5);
}
