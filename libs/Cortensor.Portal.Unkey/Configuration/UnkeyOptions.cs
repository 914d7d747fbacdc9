using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Unkey.Configuration;

/// <summary>Settings of the Unkey key provider (section <c>Cortensor:Unkey</c>). Validated when the host starts.</summary>
/// <remarks>
/// <para>
/// The root key needs <c>api.&lt;ApiId&gt;.verify_key</c>, <c>create_key</c>, <c>read_key</c>, <c>update_key</c>,
/// <c>delete_key</c> and <c>read_api</c> (plus <c>ratelimit.*.limit</c> for <see cref="Client.UnkeyClient.LimitAsync"/>),
/// on <see cref="ApiId"/> only: Unkey hides what a root key may not see (verifyKey answers NOT_FOUND, createKey and
/// listKeys 404, getKey 403), so a narrowly scoped root key keeps other APIs' keys out on Unkey's side as well.
/// It is sent only in the <c>Authorization</c> header of calls to <see cref="BaseUrl"/> and never logged; keep it in a
/// secret store or an environment variable (<c>Cortensor__Unkey__RootKey</c>), not in a file.
/// </para>
/// <para>
/// Resilience (Microsoft.Extensions.Http.Resilience, pipeline <c>cortensor-unkey</c>): total timeout → retry →
/// circuit breaker → attempt timeout. Only calls that cannot double-spend are retried on 5xx, 408, timeouts and
/// network errors: <c>keys.getKey</c>, <c>apis.listKeys</c>, <c>apis.getApi</c>, and <c>keys.verifyKey</c> only when Unkey
/// provably charges nothing for it (see <see cref="RetryPlainVerifications"/>). <c>keys.createKey</c>, <c>keys.updateKey</c>,
/// <c>keys.deleteKey</c>, <c>ratelimit.limit</c> and spending verifications are retried only when the connection
/// could not be made (the request was never sent).
/// </para>
/// </remarks>
public sealed class UnkeyOptions
{
    /// <summary>The configuration section these options are bound from.</summary>
    public const string SectionName = "Cortensor:Unkey";

    /// <summary>Base URL of the Unkey API (v2 paths are appended).</summary>
    /// <value>The default value is <c>https://api.unkey.com</c>.</value>
    [Required]
    public Uri BaseUrl { get; set; } = new("https://api.unkey.com");

    /// <summary>The Unkey API (keyspace) that holds the Portal's keys, for example <c>api_1234</c>.</summary>
    /// <value>The default value is empty, which fails validation at startup.</value>
    [Required]
    public string ApiId { get; set; } = "";

    /// <summary>The Unkey root key (<c>unkey_…</c>). Never logged.</summary>
    /// <value>The default value is empty, which fails validation at startup.</value>
    [Required]
    public string RootKey { get; set; } = "";

    /// <summary>How long one HTTP attempt may take.</summary>
    /// <value>The default value is 1 second.</value>
    public TimeSpan AttemptTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long one call may take, retries included. Must not be shorter than <see cref="AttemptTimeout"/>.</summary>
    /// <value>The default value is 2.5 seconds.</value>
    public TimeSpan TotalTimeout { get; set; } = TimeSpan.FromSeconds(2.5);

    /// <summary>Retries of a retryable call (0 turns retries off).</summary>
    /// <value>The default value is 2.</value>
    [Range(0, 10)]
    public int MaxRetryAttempts { get; set; } = 2;

    /// <summary>First retry delay; later ones grow exponentially, with jitter (Unkey's own SDKs start at 50 ms).</summary>
    /// <value>The default value is 50 milliseconds.</value>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Share of failed calls (5xx, 408, timeouts, network errors) in <see cref="CircuitBreakerSamplingDuration"/> that opens the circuit.</summary>
    /// <value>The default value is 0.5.</value>
    [Range(0.01, 1.0)]
    public double CircuitBreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Calls needed in the sampling window before the circuit can open.</summary>
    /// <value>The default value is 10.</value>
    [Range(2, int.MaxValue)]
    public int CircuitBreakerMinimumThroughput { get; set; } = 10;

    /// <summary>The circuit breaker's sampling window.</summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan CircuitBreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the circuit stays open (calls fail at once) before a trial call.</summary>
    /// <value>The default value is 10 seconds.</value>
    public TimeSpan CircuitBreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Serve-stale window: while Unkey is unreachable, slow, failing (5xx, 429, a rejected root key) or the circuit is
    /// open, a key that Unkey verified as valid within this window keeps working (until its own expiry); a key not
    /// verified within it is refused with 503 and <c>Retry-After</c>. Zero refuses every key while Unkey is down.
    /// </summary>
    /// <value>The default value is 5 minutes.</value>
    public TimeSpan ServeStaleFor { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The <c>Retry-After</c> given with a 503 when a key cannot be verified (unless Unkey sent its own).</summary>
    /// <value>The default value is 2 seconds.</value>
    public TimeSpan UnavailableRetryAfter { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// How long a valid verification is reused without asking Unkey again. Zero (the default) asks Unkey on every
    /// request, which Unkey's own rate limits and credits need: a cached answer is neither counted nor charged.
    /// Revocations through the Portal drop the entry at once on every replica that shares the change feed.
    /// </summary>
    /// <value>The default value is zero (no cache).</value>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.Zero;

    /// <summary>Most keys remembered for serve-stale and the cache; past it the memory starts over.</summary>
    /// <value>The default value is 100,000.</value>
    [Range(1, int.MaxValue)]
    public int MaxRememberedKeys { get; set; } = 100_000;

    /// <summary>
    /// Unkey rate limits checked on every verification (<c>ratelimits</c> of <c>keys.verifyKey</c>). Each must exist
    /// on the key or its identity (else Unkey answers 412), unless it gives both a limit and a duration. They come back
    /// in the gateway's <c>RateLimit</c> headers as <c>unkey-&lt;name&gt;</c>.
    /// </summary>
    /// <value>The default value is empty (only limits with <c>autoApply</c> are checked).</value>
    [ValidateEnumeratedItems]
    public IList<UnkeyRateLimitCheck> RateLimits { get; } = [];

    /// <summary>
    /// Credits charged per verification (<c>credits.cost</c>). <see langword="null"/> leaves Unkey's default: 1 for a
    /// key that has credits, nothing for a key without. 0 charges nothing.
    /// </summary>
    /// <value>The default value is <see langword="null"/>.</value>
    [Range(0L, 1_000_000_000_000L)]
    public long? CreditCost { get; set; }

    /// <summary>
    /// Whether a verification may be sent again after a 5xx or a timeout when Unkey provably charged nothing for it:
    /// the Portal names no rate limit (<see cref="RateLimits"/> is empty) and either sends a credit cost of 0 or knows
    /// the key has no credits, and the key's last answer from Unkey (remembered for <see cref="ServeStaleFor"/>) showed
    /// no credits and no rate limit, so no <c>autoApply</c> limit counts it. Anything else is never sent twice: Unkey
    /// charges 1 credit when <c>credits</c> is omitted and the key has credits, and counts every <c>autoApply</c>
    /// limit, so an answer lost to a timeout would be charged again. A key first seen (or not remembered) is not retried.
    /// </summary>
    /// <remarks>
    /// The proof is the key's last answer: a limit or credits added in Unkey since then is seen on the next answer.
    /// Turn this off to never send a verification twice.
    /// </remarks>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool RetryPlainVerifications { get; set; } = true;

    /// <summary>
    /// Whether a key verified by Unkey must carry <c>meta.portalApiId</c> equal to <see cref="ApiId"/> (the Portal sets
    /// it on every key it issues). Unkey's <c>keys.verifyKey</c> takes no API id and does not return one: the root
    /// key's <c>verify_key</c> permissions choose which APIs' keys it accepts, so with a workspace-wide root key a key of
    /// another API in the same workspace would verify. A key without the marker is refused as unknown.
    /// </summary>
    /// <remarks>
    /// Keys issued before this marker existed, or created in the Unkey dashboard, lack it: add
    /// <c>"portalApiId": "&lt;ApiId&gt;"</c> to their meta (<c>keys.updateKey</c>), or set this to false while the root
    /// key has <c>verify_key</c> on <see cref="ApiId"/> only (Unkey then answers NOT_FOUND for other APIs' keys itself).
    /// </remarks>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool RequireApiIdMarker { get; set; } = true;

    /// <summary>
    /// NOT_FOUND answers within <see cref="NotFoundSpikeWindow"/> that raise a warning (once per window). A spike usually
    /// means the root key lost <c>verify_key</c> (Unkey then answers NOT_FOUND for every key) or a client is guessing.
    /// </summary>
    /// <value>The default value is 100.</value>
    [Range(1, int.MaxValue)]
    public int NotFoundSpikeThreshold { get; set; } = 100;

    /// <summary>The window <see cref="NotFoundSpikeThreshold"/> counts in.</summary>
    /// <value>The default value is 1 minute.</value>
    public TimeSpan NotFoundSpikeWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long the readiness probe's verdict on the root key is reused before Unkey is asked again.</summary>
    /// <value>The default value is 1 minute.</value>
    public TimeSpan ProbeInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Random bytes of a new key (<c>byteLength</c> of <c>keys.createKey</c>): 32 bytes ≈ 44 base58 characters, 256 bits.</summary>
    /// <value>The default value is 32.</value>
    [Range(16, 255)]
    public int KeyByteLength { get; set; } = 32;
}

/// <summary>One Unkey rate limit checked on every verification.</summary>
public sealed class UnkeyRateLimitCheck
{
    /// <summary>The limit's name on the key or its identity (3–255 characters; 3–128 with <see cref="AttachToIssuedKeys"/>).</summary>
    [Required]
    public string Name { get; set; } = "";

    /// <summary>Units one request consumes.</summary>
    /// <value>The default value is 1.</value>
    [Range(0L, long.MaxValue)]
    public long Cost { get; set; } = 1;

    /// <summary>With <see cref="Duration"/>: an ad-hoc limit keyed on the key, no configuration needed in Unkey.</summary>
    [Range(0L, long.MaxValue)]
    public long? Limit { get; set; }

    /// <summary>With <see cref="Limit"/>: the ad-hoc limit's window (at least 1 second).</summary>
    public TimeSpan? Duration { get; set; }

    /// <summary>
    /// Create this limit (<see cref="Name"/>, <see cref="Limit"/>, <see cref="Duration"/>) on every key the Portal
    /// issues, and name it without a limit or duration when verifying, so Unkey reads it from the key (where it can be
    /// changed per key in Unkey). Without this, a check with a limit and a duration is ad hoc (the same limit for every
    /// key; an ad-hoc limit replaces a configured one of the same name), and a check with neither must exist on each
    /// key or its identity, or Unkey answers 412 (keys issued by the Portal have none).
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool AttachToIssuedKeys { get; set; }
}
