using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Cortensor.Portal.Unkey.Client;
using Cortensor.Portal.Unkey.Configuration;
using Cortensor.Portal.Unkey.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Cortensor.Portal.Unkey.Keys;

/// <summary>
/// An <see cref="IApiKeyProvider"/> on Unkey's v2 API: keys are created, verified, listed, updated and revoked in
/// Unkey; the Portal keeps no copy of them.
/// </summary>
/// <remarks>
/// <para>
/// <b>Verification</b> (<c>keys.verifyKey</c>): a key without the shape of <see cref="UnkeyKeyShape"/> is malformed
/// with no I/O. Unkey's <c>data.valid</c>/<c>data.code</c> map to <see cref="ApiKeyVerificationStatus"/>:
/// <c>VALID</c> → Valid; <c>NOT_FOUND</c> → NotFound; <c>DISABLED</c> → Disabled; <c>EXPIRED</c> → Expired (all
/// 401); <c>FORBIDDEN</c>, <c>INSUFFICIENT_PERMISSIONS</c> → Forbidden (403); <c>RATE_LIMITED</c> → RateLimited
/// (429, <see cref="ApiKeyVerification.RetryAfter"/> from the limit's reset time); <c>USAGE_EXCEEDED</c> →
/// UsageExceeded (429 <c>insufficient_quota</c>); any other code → NotFound (invalid). The principal's org is
/// <c>identity.externalId</c> (a key without one is refused); <c>meta.allowedModels</c>, <c>meta.plan</c>,
/// <c>meta.scopes</c> (else the key's permissions) and <c>meta.environment</c> (which must agree with the prefix)
/// give its policy; the rate limits Unkey checked come back as <c>unkey-&lt;name&gt;</c> in
/// <see cref="ApiKeyVerification.RateLimits"/>; Unkey's <c>meta.requestId</c> is in
/// <see cref="ApiKeyVerification.ProviderRequestId"/> and in the logs. A key whose <c>meta</c> lacks
/// <see cref="ApiIdMetaField"/> = <see cref="UnkeyOptions.ApiId"/> belongs to another API of the workspace and is
/// refused as NotFound (see <see cref="UnkeyOptions.RequireApiIdMarker"/>). <c>NOT_FOUND</c> for a key that verified as
/// valid before is checked with <c>keys.getKey</c>: a live key means the root key lost <c>verify_key</c> (Unkey hides
/// that as NOT_FOUND), which is handled like Unkey being down, not as an unknown key.
/// </para>
/// <para>
/// <b>Unkey down</b>: when the call times out, the circuit is open, the network fails, or Unkey answers with an error
/// status (5xx, its workspace 429, or a 4xx that means the root key or the configuration is wrong), a key that
/// Unkey verified as valid within <see cref="UnkeyOptions.ServeStaleFor"/> keeps working (serve-stale, until its own
/// expiry); any other key gets <see cref="ApiKeyVerificationStatus.Unavailable"/> (503 with <c>Retry-After</c>). The
/// <c>cortensor.unkey.degraded</c> counter and a warning say which. A definite answer from Unkey (valid or not)
/// always replaces what is remembered, and a revocation through any replica that shares the
/// <see cref="IHotPathChangeFeed"/> forgets the key at once.
/// </para>
/// <para>
/// <b>Issuance</b> (<c>keys.createKey</c>): the Portal's live/test prefix, the org id as the identity's
/// <c>externalId</c>, <see cref="UnkeyOptions.KeyByteLength"/> random bytes, and <c>meta.environment</c>,
/// <c>meta.allowedModels</c>, <c>meta.scopes</c>. <b>Revocation</b> soft-deletes the key (<c>keys.deleteKey</c>), after
/// <c>keys.getKey</c> has shown that it belongs to the org (another org's key id is "not found"). Unkey keys carry no
/// Portal checksum and Unkey never returns a key's hash, so listed records have an empty
/// <see cref="ApiKeyRecord.Hash"/> and a revoked key is simply absent from the list.
/// </para>
/// </remarks>
public sealed partial class UnkeyApiKeyProvider : IApiKeyProvider, IDisposable
{
    /// <summary>Longest accepted <see cref="IssueApiKeyRequest.Name"/> (Unkey's limit).</summary>
    public const int MaxNameLength = 255;

    /// <summary>Prefix of the rate limit names in <see cref="ApiKeyVerification.RateLimits"/> and the RateLimit headers.</summary>
    public const string RateLimitNamePrefix = "unkey-";

    /// <summary>
    /// The <c>meta</c> field that marks a key as issued for the configured <see cref="UnkeyOptions.ApiId"/>. verifyKey
    /// returns a key's meta with no extra call, but no API id (v2_keys_verify_key/handler.go builds the answer from
    /// the key, its identity and its limits only), so the marker is how the Portal tells its keys from other APIs'.
    /// </summary>
    public const string ApiIdMetaField = "portalApiId";

    /// <summary>Latest expiry Unkey accepts (2100-01-01, <c>maximum: 4102444800000</c> in the createKey and updateKey schemas).</summary>
    public static readonly DateTimeOffset MaxExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(4_102_444_800_000);

    private const int ListPageSize = 100;
    private const int MaxListPages = 1000;

    private static readonly HashSet<string> KnownCodes = new(StringComparer.Ordinal)
    {
        "VALID", "NOT_FOUND", "FORBIDDEN", "INSUFFICIENT_PERMISSIONS", "USAGE_EXCEEDED", "RATE_LIMITED", "DISABLED", "EXPIRED",
    };

    private readonly UnkeyClient _client;
    private readonly UnkeyKeyShape _shape;
    private readonly TimeProvider _time;
    private readonly UnkeyOptions _options;
    private readonly IHotPathChangeFeed _changes;
    private readonly UnkeyMetrics _metrics;
    private readonly ILogger<UnkeyApiKeyProvider> _logger;
    private readonly IDisposable _subscription;
    private readonly UnkeyVerifyKeyRequest _verifyTemplate;
    private readonly IReadOnlyList<UnkeyKeyRateLimit>? _issuedLimits;
    private readonly ConcurrentDictionary<string, Remembered> _memory = new(StringComparer.Ordinal);
    private readonly Lock _notFoundGate = new();
    private DateTimeOffset _notFoundWindowStart = DateTimeOffset.MinValue;
    private int _notFoundInWindow;

    /// <param name="client">The Unkey API client.</param>
    /// <param name="format">Supplies the live and test prefixes.</param>
    /// <param name="time">The clock for expiry, serve-stale and the cache.</param>
    /// <param name="options">API id, serve-stale window, cache, checked rate limits and credit cost.</param>
    /// <param name="changes">Where revocations are announced to (and heard from) every replica.</param>
    /// <param name="metrics">The provider's instruments.</param>
    /// <param name="logger">Logs ids and Unkey request ids, never keys.</param>
    public UnkeyApiKeyProvider(
        UnkeyClient client,
        ApiKeyFormat format,
        TimeProvider time,
        IOptions<UnkeyOptions> options,
        IHotPathChangeFeed changes,
        UnkeyMetrics metrics,
        ILogger<UnkeyApiKeyProvider> logger)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(logger);
        _client = client;
        _shape = new UnkeyKeyShape(format);
        _time = time;
        _options = options.Value;
        _changes = changes;
        _metrics = metrics;
        _logger = logger;
        _verifyTemplate = new UnkeyVerifyKeyRequest
        {
            Key = "",
            Credits = _options.CreditCost is { } cost ? new UnkeyCreditsCost { Cost = cost } : null,
            Ratelimits = _options.RateLimits.Count == 0
                ? null
                : [.. _options.RateLimits.Select(static r => new UnkeyVerifyRateLimit
                {
                    Name = r.Name,
                    Cost = r.Cost,

                    // A limit attached to the key is named only: sending limit and duration would make it ad hoc,
                    // which replaces the key's own limit of that name (internal/services/keys/validation.go).
                    Limit = r.AttachToIssuedKeys ? null : r.Limit,
                    Duration = !r.AttachToIssuedKeys && r.Duration is { } d ? (long)d.TotalMilliseconds : null,
                })],
        };
        _issuedLimits = _options.RateLimits.Any(static r => r.AttachToIssuedKeys)
            ? [.. _options.RateLimits.Where(static r => r.AttachToIssuedKeys).Select(static r => new UnkeyKeyRateLimit
            {
                Name = r.Name,
                Limit = r.Limit ?? 1,
                Duration = (long)(r.Duration ?? TimeSpan.FromSeconds(1)).TotalMilliseconds,
            })]
            : null;
        _subscription = changes.Subscribe(OnChange);
    }

    /// <summary>The shape check applied before any call.</summary>
    public UnkeyKeyShape Shape => _shape;

    /// <summary>Keys remembered for serve-stale (and the cache), for tests and diagnostics.</summary>
    public int RememberedCount => _memory.Count;

    /// <inheritdoc/>
    public async ValueTask<ApiKeyVerification> VerifyAsync(string presentedKey, CancellationToken cancellationToken = default)
    {
        if (!_shape.TryParse(presentedKey, out var environment, out var displayPrefix))
        {
            _metrics.Verification("malformed");
            Log.MalformedKeyRejected(_logger);
            return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Malformed);
        }

        var memoryKey = Convert.ToHexString(ApiKeyHasher.Hash(presentedKey));
        if (_options.CacheTtl > TimeSpan.Zero && _memory.TryGetValue(memoryKey, out var cached) && cached.FreshUntil > _time.GetUtcNow())
        {
            _metrics.Verification("cached");
            return cached.Principal.ExpiresAt is { } expiresAt && expiresAt <= _time.GetUtcNow()
                ? ApiKeyVerification.Failed(ApiKeyVerificationStatus.Expired)
                : ApiKeyVerification.Valid(cached.Principal);
        }

        _memory.TryGetValue(memoryKey, out var remembered);
        UnkeyResponse<UnkeyVerifyKeyData> response;
        try
        {
            response = await _client.VerifyKeyAsync(_verifyTemplate with { Key = presentedKey }, ChargesNothing(remembered), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && Classify(ex) is { } reason)
        {
            return Degraded(memoryKey, displayPrefix, reason, ex);
        }

        if (response.Data.Code == "NOT_FOUND")
        {
            CountNotFound(remembered is not null);
            if (remembered is not null)
            {
                return await ConfirmNotFoundAsync(response, remembered, memoryKey, displayPrefix, cancellationToken).ConfigureAwait(false);
            }
        }

        return Map(response, memoryKey, environment, displayPrefix);
    }

    /// <summary>
    /// Whether sending this verification twice provably costs the key nothing (<see cref="UnkeyOptions.RetryPlainVerifications"/>):
    /// no limit named, and the key's last answer showed no rate limit (so none auto-applies) and no credits, or the
    /// cost sent is 0. A key with no remembered answer gives no proof.
    /// </summary>
    private bool ChargesNothing(Remembered? remembered)
        => _options.RetryPlainVerifications
            && _verifyTemplate.Ratelimits is null
            && _verifyTemplate.Credits is not { Cost: > 0 }
            && remembered is { HadRateLimits: false } known
            && (!known.HadCredits || _verifyTemplate.Credits is { Cost: 0 });

    /// <summary>
    /// NOT_FOUND for a key Unkey verified as valid before. Either it was deleted in Unkey, or the root key lost
    /// <c>verify_key</c>: Unkey then answers NOT_FOUND rather than 403 so as not to leak that a key exists
    /// (v2_keys_verify_key/handler.go, 403_test.go), for every key. <c>keys.getKey</c> on the remembered id tells them
    /// apart (404 for a deleted key); only a confirmed deletion locks the key out.
    /// </summary>
    private async Task<ApiKeyVerification> ConfirmNotFoundAsync(UnkeyResponse<UnkeyVerifyKeyData> response, Remembered remembered, string memoryKey, string displayPrefix, CancellationToken cancellationToken)
    {
        var keyId = remembered.Principal.KeyId;
        try
        {
            var key = (await _client.GetKeyAsync(new UnkeyGetKeyRequest { KeyId = keyId }, cancellationToken).ConfigureAwait(false)).Data;
            if (!IsMarkedForThisApi(key.Meta))
            {
                return Map(response, memoryKey, default, displayPrefix); // no longer a key of this API: NOT_FOUND stands
            }

            Log.VerifyPermissionMissing(_logger, keyId, _options.ApiId, response.RequestId);
            return Degraded(memoryKey, displayPrefix, "verify_permission", new UnkeyApiException(System.Net.HttpStatusCode.OK, new UnkeyError { Title = "NOT_FOUND for a live key", Detail = "keys.verifyKey answered NOT_FOUND for a key keys.getKey shows is live." }, response.RequestId));
        }
        catch (UnkeyApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return Map(response, memoryKey, default, displayPrefix); // deleted in Unkey: NOT_FOUND stands
        }
        catch (UnkeyApiException ex) when (ex.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.Unauthorized)
        {
            Log.RootKeyCannotReadKey(_logger, keyId, _options.ApiId, ex.StatusCode, ex.RequestId);
            return Degraded(memoryKey, displayPrefix, "root_key_permissions", ex);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested && Classify(ex) is { } reason)
        {
            return Degraded(memoryKey, displayPrefix, reason, ex);
        }
    }

    /// <summary>Counts NOT_FOUND answers and warns once per window when they pass the threshold.</summary>
    private void CountNotFound(bool knownKey)
    {
        _metrics.NotFound(knownKey);
        var now = _time.GetUtcNow();
        int count;
        lock (_notFoundGate)
        {
            if (now - _notFoundWindowStart >= _options.NotFoundSpikeWindow)
            {
                _notFoundWindowStart = now;
                _notFoundInWindow = 0;
            }

            count = ++_notFoundInWindow;
        }

        if (count == _options.NotFoundSpikeThreshold + 1)
        {
            Log.NotFoundSpike(_logger, count, _options.NotFoundSpikeWindow.TotalSeconds, _options.ApiId);
        }
    }

    private bool IsMarkedForThisApi(JsonElement? meta)
        => !_options.RequireApiIdMarker || string.Equals(ReadString(meta, ApiIdMetaField), _options.ApiId, StringComparison.Ordinal);

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">
    /// The org id is empty or not a valid Unkey <c>externalId</c> (1–255 characters of letters, digits, <c>_</c>,
    /// <c>.</c>, <c>-</c>), the name is longer than <see cref="MaxNameLength"/>, the environment is unknown, or the
    /// expiry is not in the future.
    /// </exception>
    /// <exception cref="UnkeyApiException">Unkey refused the call.</exception>
    /// <exception cref="InvalidOperationException">Unkey returned a key without the configured prefix and shape.</exception>
    public async Task<IssuedApiKey> IssueAsync(IssueApiKeyRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var now = _time.GetUtcNow();
        Validate(request, now);

        var meta = new JsonObject { ["environment"] = EnvironmentName(request.Environment), [ApiIdMetaField] = _options.ApiId };
        if (request.AllowedModels is { } allowedModels)
        {
            meta["allowedModels"] = ToJsonArray(allowedModels);
        }

        if (request.Scopes is { Count: > 0 } scopes)
        {
            meta["scopes"] = ToJsonArray(scopes);
        }

        var response = await _client.CreateKeyAsync(
            new UnkeyCreateKeyRequest
            {
                ApiId = _options.ApiId,
                Prefix = _shape.GetUnkeyPrefix(request.Environment),
                Name = string.IsNullOrEmpty(request.Name) ? null : request.Name,
                ByteLength = _options.KeyByteLength,
                ExternalId = request.OrgId,
                Meta = meta,
                Expires = request.ExpiresAt?.ToUnixTimeMilliseconds(),
                Ratelimits = _issuedLimits,
            },
            cancellationToken).ConfigureAwait(false);

        var secret = response.Data.Key;
        var keyId = response.Data.KeyId;
        if (string.IsNullOrEmpty(keyId)
            || !_shape.TryParse(secret, out var environment, out var displayPrefix)
            || environment != request.Environment)
        {
            throw new InvalidOperationException(
                $"Unkey created key {keyId ?? "(no id)"} without the configured prefix and base58 shape; check the prefix and byte length settings of API {_options.ApiId}.");
        }

        var record = new ApiKeyRecord
        {
            KeyId = keyId,
            OrgId = request.OrgId,
            Name = request.Name ?? "",
            Environment = request.Environment,
            Hash = ApiKeyHasher.Hash(secret),
            DisplayPrefix = displayPrefix,
            Scopes = [.. request.Scopes ?? []],
            AllowedModels = request.AllowedModels is null ? null : [.. request.AllowedModels],
            CreatedAt = now,
            ExpiresAt = request.ExpiresAt,
        };
        Log.KeyIssued(_logger, keyId, request.OrgId, displayPrefix, request.Environment, response.RequestId);
        return new IssuedApiKey(secret, record);
    }

    /// <inheritdoc/>
    /// <exception cref="UnkeyApiException">Unkey failed or refused the call (other than "no such key").</exception>
    public async Task<bool> RevokeAsync(string orgId, string keyId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orgId);
        ArgumentNullException.ThrowIfNull(keyId);
        if (await FindOwnedAsync(orgId, keyId, cancellationToken).ConfigureAwait(false) is null)
        {
            return false;
        }

        UnkeyResponse<UnkeyEmptyData> deleted;
        try
        {
            deleted = await _client.DeleteKeyAsync(new UnkeyDeleteKeyRequest { KeyId = keyId }, cancellationToken).ConfigureAwait(false);
        }
        catch (UnkeyApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            Log.KeyNotOwned(_logger, keyId, orgId);
            return false;
        }

        await ForgetEverywhereAsync(keyId, cancellationToken).ConfigureAwait(false);
        Log.KeyRevoked(_logger, keyId, orgId, deleted.RequestId);
        return true;
    }

    /// <summary>
    /// Changes a key of <paramref name="orgId"/> in Unkey (<c>keys.updateKey</c>): name, enabled, expiry, allowed
    /// models, plan. The key is forgotten by every replica's cache at once.
    /// </summary>
    /// <param name="orgId">The org the key must belong to.</param>
    /// <param name="keyId">The key.</param>
    /// <param name="update">What to change; defaults keep the current values.</param>
    /// <param name="cancellationToken">Cancels the calls.</param>
    /// <returns>False when the org has no such key.</returns>
    /// <exception cref="ArgumentException">The new name is too long or the new expiry is not in the future.</exception>
    /// <exception cref="UnkeyApiException">Unkey failed or refused the call (other than "no such key").</exception>
    public async Task<bool> UpdateAsync(string orgId, string keyId, UnkeyKeyUpdate update, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orgId);
        ArgumentNullException.ThrowIfNull(keyId);
        ArgumentNullException.ThrowIfNull(update);
        if (update.Name is { Length: > MaxNameLength })
        {
            throw new ArgumentException($"Name must be at most {MaxNameLength} characters.", nameof(update));
        }

        if (update.ExpiresAt is { } newExpiry && (newExpiry <= _time.GetUtcNow() || newExpiry > MaxExpiresAt))
        {
            throw new ArgumentException("ExpiresAt must be in the future and no later than 2100-01-01 (Unkey's limit).", nameof(update));
        }

        if (await FindOwnedAsync(orgId, keyId, cancellationToken).ConfigureAwait(false) is not { } current)
        {
            return false;
        }

        var body = new JsonObject { ["keyId"] = keyId };
        if (update.Name is not null)
        {
            // Unkey's name is 1–255 characters or null (cleared): an empty name would be a 400.
            body["name"] = update.Name.Length == 0 ? null : update.Name;
        }

        if (update.Enabled is { } enabled)
        {
            body["enabled"] = enabled;
        }

        if (update.NeverExpires)
        {
            body["expires"] = null;
        }
        else if (update.ExpiresAt is { } expiresAt)
        {
            body["expires"] = expiresAt.ToUnixTimeMilliseconds();
        }

        if (update.AllowedModels is not null || update.AllowAllModels || update.PlanId is not null || update.ClearPlan)
        {
            // meta is replaced as a whole: start from the current one so environment and scopes stay.
            var meta = current.Meta is { ValueKind: JsonValueKind.Object } currentMeta ? JsonObject.Create(currentMeta) ?? [] : [];
            if (update.AllowAllModels)
            {
                meta.Remove("allowedModels");
            }
            else if (update.AllowedModels is { } models)
            {
                meta["allowedModels"] = ToJsonArray(models);
            }

            if (update.ClearPlan)
            {
                meta.Remove("plan");
            }
            else if (update.PlanId is { } plan)
            {
                meta["plan"] = plan;
            }

            body["meta"] = meta;
        }

        UnkeyResponse<UnkeyEmptyData> updated;
        try
        {
            updated = await _client.UpdateKeyAsync(body, cancellationToken).ConfigureAwait(false);
        }
        catch (UnkeyApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            Log.KeyNotOwned(_logger, keyId, orgId);
            return false;
        }

        await ForgetEverywhereAsync(keyId, cancellationToken).ConfigureAwait(false);
        Log.KeyUpdated(_logger, keyId, orgId, updated.RequestId);
        return true;
    }

    /// <inheritdoc/>
    /// <exception cref="UnkeyApiException">Unkey failed or refused the call.</exception>
    public async Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(orgId);
        if (!IsExternalId(orgId))
        {
            return []; // no such identity can exist in Unkey
        }

        var records = new List<ApiKeyRecord>();
        string? cursor = null;
        for (var page = 0; page < MaxListPages; page++)
        {
            var response = await _client.ListKeysAsync(
                new UnkeyListKeysRequest { ApiId = _options.ApiId, ExternalId = orgId, Limit = ListPageSize, Cursor = cursor },
                cancellationToken).ConfigureAwait(false);
            foreach (var key in response.Data)
            {
                if (ToRecord(key, orgId) is { } record)
                {
                    records.Add(record);
                }
            }

            if (response.Pagination is not { HasMore: true, Cursor: { Length: > 0 } next } || next == cursor)
            {
                break;
            }

            cursor = next;
        }

        return [.. records.OrderBy(static r => r.CreatedAt).ThenBy(static r => r.KeyId, StringComparer.Ordinal)];
    }

    /// <inheritdoc/>
    public void Dispose() => _subscription.Dispose();

    private ApiKeyVerification Map(UnkeyResponse<UnkeyVerifyKeyData> response, string memoryKey, ApiKeyEnvironment environment, string displayPrefix)
    {
        var data = response.Data;
        var requestId = response.RequestId;
        var code = data.Code ?? "";
        var now = _time.GetUtcNow();
        var limits = ToRateLimits(data.Ratelimits, now);
        // Unkey sends the key's meta with every code once it found the key, but leaves it out when the key has none
        // or it cannot be parsed: only a VALID answer must carry the marker; a refusal is checked when meta is there,
        // so an own key keeps its 429/403 rather than becoming 401.
        var isValid = data.Valid && code == "VALID";
        if (!string.IsNullOrEmpty(data.KeyId)
            && (isValid || data.Meta is { ValueKind: JsonValueKind.Object })
            && !IsMarkedForThisApi(data.Meta))
        {
            // A key of another API in the workspace (a root key with verify_key on more than ApiId): unknown here.
            _memory.TryRemove(memoryKey, out _);
            _metrics.Verification("OTHER_API");
            Log.KeyOfAnotherApi(_logger, data.KeyId, _options.ApiId, code, requestId);
            return Refused(ApiKeyVerificationStatus.NotFound, "NOT_FOUND", requestId, []);
        }

        if (isValid)
        {
            if (string.IsNullOrEmpty(data.KeyId) || data.Identity?.ExternalId is not { Length: > 0 } orgId)
            {
                _memory.TryRemove(memoryKey, out _);
                _metrics.Verification("NO_IDENTITY");
                Log.KeyWithoutIdentity(_logger, data.KeyId, requestId);
                return Refused(ApiKeyVerificationStatus.NotFound, code, requestId, limits);
            }

            if (ReadString(data.Meta, "environment") is { } metaEnvironment
                && !string.Equals(metaEnvironment, EnvironmentName(environment), StringComparison.OrdinalIgnoreCase))
            {
                _memory.TryRemove(memoryKey, out _);
                _metrics.Verification("ENVIRONMENT_MISMATCH");
                Log.EnvironmentMismatch(_logger, data.KeyId, metaEnvironment, environment, requestId);
                return Refused(ApiKeyVerificationStatus.NotFound, code, requestId, limits);
            }

            var principal = new ApiKeyPrincipal
            {
                KeyId = data.KeyId,
                OrgId = orgId,
                Environment = environment,
                DisplayPrefix = displayPrefix,
                Scopes = ReadStrings(data.Meta, "scopes") ?? data.Permissions ?? [],
                AllowedModels = ReadStrings(data.Meta, "allowedModels"),
                ExpiresAt = data.Expires is { } expires ? DateTimeOffset.FromUnixTimeMilliseconds(expires) : null,
                PlanId = ReadString(data.Meta, "plan"),
            };
            Remember(memoryKey, principal, now, hadCredits: data.Credits is not null, hadRateLimits: data.Ratelimits is { Count: > 0 });
            _metrics.Verification(code);
            Log.KeyVerified(_logger, principal.KeyId, orgId, requestId);
            return ApiKeyVerification.Valid(principal) with { RateLimits = limits, ProviderCode = code, ProviderRequestId = requestId };
        }

        // A definite "no" from Unkey: nothing remembered may outlive it.
        _memory.TryRemove(memoryKey, out _);
        var known = KnownCodes.Contains(code) && code != "VALID";
        _metrics.Verification(known ? code : "UNKNOWN");
        Log.KeyRefused(_logger, displayPrefix, data.KeyId, code, requestId);
        var status = code switch
        {
            "NOT_FOUND" => ApiKeyVerificationStatus.NotFound,
            "DISABLED" => ApiKeyVerificationStatus.Disabled,
            "EXPIRED" => ApiKeyVerificationStatus.Expired,
            "FORBIDDEN" or "INSUFFICIENT_PERMISSIONS" => ApiKeyVerificationStatus.Forbidden,
            "RATE_LIMITED" => ApiKeyVerificationStatus.RateLimited,
            "USAGE_EXCEEDED" => ApiKeyVerificationStatus.UsageExceeded,
            _ => ApiKeyVerificationStatus.NotFound, // unknown (newer) codes are treated as invalid
        };
        var refused = Refused(status, code, requestId, limits);
        return status == ApiKeyVerificationStatus.RateLimited ? refused with { RetryAfter = RetryAfter(limits) } : refused;
    }

    private static ApiKeyVerification Refused(ApiKeyVerificationStatus status, string code, string? requestId, IReadOnlyList<ApiKeyRateLimit> limits)
        => ApiKeyVerification.Failed(status) with { RateLimits = limits, ProviderCode = code, ProviderRequestId = requestId };

    private ApiKeyVerification Degraded(string memoryKey, string displayPrefix, string reason, Exception exception)
    {
        var now = _time.GetUtcNow();
        var apiError = exception as UnkeyApiException;
        if (apiError is { IsServerError: false, StatusCode: not HttpStatusCode.TooManyRequests and not HttpStatusCode.OK })
        {
            // 400/401/403/404/412: the root key, its permissions or the configured rate limit names are wrong.
            Log.VerificationRejected(_logger, apiError.StatusCode, apiError.ErrorCode, apiError.RequestId);
        }

        if (_options.ServeStaleFor > TimeSpan.Zero
            && _memory.TryGetValue(memoryKey, out var remembered)
            && now - remembered.VerifiedAt < _options.ServeStaleFor)
        {
            if (remembered.Principal.ExpiresAt is { } expiresAt && expiresAt <= now)
            {
                return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Expired);
            }

            _metrics.Degraded(servedStale: true, reason);
            Log.ServingStale(_logger, reason, remembered.Principal.KeyId, remembered.Principal.OrgId, (now - remembered.VerifiedAt).TotalSeconds);
            return ApiKeyVerification.Valid(remembered.Principal) with { IsStale = true, ProviderRequestId = apiError?.RequestId };
        }

        _metrics.Degraded(servedStale: false, reason);
        _metrics.Verification("unavailable");
        Log.RefusedUnavailable(_logger, reason, displayPrefix, _options.ServeStaleFor.TotalSeconds, apiError?.RequestId, exception);
        var retryAfter = apiError?.RetryAfter is { } unkeyRetryAfter && unkeyRetryAfter > TimeSpan.Zero ? unkeyRetryAfter : _options.UnavailableRetryAfter;
        return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Unavailable) with
        {
            RetryAfter = retryAfter,
            ProviderRequestId = apiError?.RequestId,
            ProviderCode = reason,
        };
    }

    /// <summary>Why Unkey could not give an answer, or null for an exception that is not about Unkey being unreachable.</summary>
    private static string? Classify(Exception exception) => exception switch
    {
        TimeoutRejectedException => "timeout",
        BrokenCircuitException => "circuit_open",
        HttpRequestException => "network",
        UnkeyApiException { IsServerError: true } => "http_5xx",
        UnkeyApiException { StatusCode: HttpStatusCode.TooManyRequests } => "http_429",
        UnkeyApiException { StatusCode: HttpStatusCode.OK } => "bad_response",
        UnkeyApiException => "http_4xx",
        OperationCanceledException => "timeout", // a timeout below the pipeline, not the caller's cancellation
        _ => null,
    };

    private void Remember(string memoryKey, ApiKeyPrincipal principal, DateTimeOffset now, bool hadCredits, bool hadRateLimits)
    {
        if (_options.ServeStaleFor <= TimeSpan.Zero && _options.CacheTtl <= TimeSpan.Zero)
        {
            return;
        }

        if (_memory.Count >= _options.MaxRememberedKeys && !_memory.ContainsKey(memoryKey))
        {
            _memory.Clear();
        }

        _memory[memoryKey] = new Remembered(principal, now, now + _options.CacheTtl, hadCredits, hadRateLimits);
    }

    private async Task<UnkeyKeyData?> FindOwnedAsync(string orgId, string keyId, CancellationToken cancellationToken)
    {
        if (!UnkeyOptionsCustomValidator.IsIdentifier(keyId, 3, 255))
        {
            Log.KeyNotOwned(_logger, keyId, orgId);
            return null; // not an Unkey key id: no call needed
        }

        UnkeyKeyData key;
        try
        {
            key = (await _client.GetKeyAsync(new UnkeyGetKeyRequest { KeyId = keyId }, cancellationToken).ConfigureAwait(false)).Data;
        }
        catch (UnkeyApiException ex) when (ex.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Forbidden)
        {
            // 403: a key of an API the root key may not read (v2_keys_get_key/handler.go checks read_key after finding
            // the key in the workspace): not one of ours.
            Log.KeyNotOwned(_logger, keyId, orgId);
            return null;
        }

        if (!string.Equals(key.Identity?.ExternalId, orgId, StringComparison.Ordinal) || !IsMarkedForThisApi(key.Meta))
        {
            Log.KeyNotOwned(_logger, keyId, orgId); // another org's key is "not found", never "forbidden"
            return null;
        }

        return key;
    }

    private async Task ForgetEverywhereAsync(string keyId, CancellationToken cancellationToken)
    {
        Forget(keyId);
        await _changes.PublishAsync(new HotPathChange(HotPathChangeKind.Key, keyId), cancellationToken).ConfigureAwait(false);
    }

    private void OnChange(HotPathChange change)
    {
        switch (change.Kind)
        {
            case HotPathChangeKind.Key when change.Id is not null:
                Forget(change.Id);
                break;
            case HotPathChangeKind.Everything:
                // Notices may have been missed: ask Unkey again, but keep what serve-stale needs.
                foreach (var (memoryKey, entry) in _memory)
                {
                    _memory.TryUpdate(memoryKey, entry with { FreshUntil = DateTimeOffset.MinValue }, entry);
                }

                break;
        }
    }

    private void Forget(string keyId)
    {
        foreach (var (memoryKey, entry) in _memory)
        {
            if (entry.Principal.KeyId == keyId)
            {
                _memory.TryRemove(memoryKey, out _);
            }
        }
    }

    private ApiKeyRecord? ToRecord(UnkeyKeyData key, string orgId)
    {
        if (string.IsNullOrEmpty(key.KeyId) || !string.Equals(key.Identity?.ExternalId, orgId, StringComparison.Ordinal))
        {
            return null;
        }

        var start = key.Start ?? "";
        var environment = ReadString(key.Meta, "environment") is { } name
            ? (string.Equals(name, "live", StringComparison.OrdinalIgnoreCase) ? ApiKeyEnvironment.Live : ApiKeyEnvironment.Test)
            : start.StartsWith(_shape.LivePrefix, StringComparison.Ordinal) ? ApiKeyEnvironment.Live : ApiKeyEnvironment.Test;
        return new ApiKeyRecord
        {
            KeyId = key.KeyId,
            OrgId = orgId,
            Name = key.Name ?? "",
            Environment = environment,
            Hash = [], // Unkey never returns a key's hash
            DisplayPrefix = start,
            Scopes = ReadStrings(key.Meta, "scopes") ?? key.Permissions ?? [],
            AllowedModels = ReadStrings(key.Meta, "allowedModels"),
            CreatedAt = DateTimeOffset.FromUnixTimeMilliseconds(key.CreatedAt),
            ExpiresAt = key.Expires is { } expires ? DateTimeOffset.FromUnixTimeMilliseconds(expires) : null,
        };
    }

    private static IReadOnlyList<ApiKeyRateLimit> ToRateLimits(IReadOnlyList<UnkeyRateLimitState>? limits, DateTimeOffset now)
    {
        if (limits is not { Count: > 0 })
        {
            return [];
        }

        var result = new ApiKeyRateLimit[limits.Count];
        for (var i = 0; i < limits.Count; i++)
        {
            var limit = limits[i];

            // The server sends reset as an absolute unix-ms time; an older spec called it a duration. Accept both.
            var reset = limit.Reset > 100_000_000_000L
                ? DateTimeOffset.FromUnixTimeMilliseconds(limit.Reset) - now
                : TimeSpan.FromMilliseconds(limit.Reset);
            result[i] = new ApiKeyRateLimit(
                RateLimitNamePrefix + (limit.Name ?? limit.Id ?? "limit"),
                limit.Limit,
                Math.Max(0, limit.Remaining),
                TimeSpan.FromMilliseconds(limit.Duration),
                reset > TimeSpan.Zero ? reset : TimeSpan.Zero,
                limit.Exceeded);
        }

        return result;
    }

    /// <summary>Until every exceeded limit has reset (or the nearest reset when none says which).</summary>
    private static TimeSpan RetryAfter(IReadOnlyList<ApiKeyRateLimit> limits)
    {
        var exceeded = limits.Where(static l => l.Exceeded).Select(static l => l.Reset).DefaultIfEmpty().Max();
        var retry = exceeded > TimeSpan.Zero ? exceeded : limits.Select(static l => l.Reset).Where(static r => r > TimeSpan.Zero).DefaultIfEmpty().Min();
        return retry > TimeSpan.Zero ? retry : TimeSpan.FromSeconds(1);
    }

    private static void Validate(IssueApiKeyRequest request, DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(request.OrgId) || !IsExternalId(request.OrgId))
        {
            throw new ArgumentException("OrgId is required and must be 1 to 255 characters of letters, digits, '_', '.' and '-' (Unkey's externalId).", nameof(request));
        }

        if (request.Name is { Length: > MaxNameLength })
        {
            throw new ArgumentException($"Name must be at most {MaxNameLength} characters.", nameof(request));
        }

        if (!Enum.IsDefined(request.Environment))
        {
            throw new ArgumentException($"Unknown key environment '{request.Environment}'.", nameof(request));
        }

        if (request.ExpiresAt is { } expiresAt && (expiresAt <= now || expiresAt > MaxExpiresAt))
        {
            throw new ArgumentException("ExpiresAt must be in the future and no later than 2100-01-01 (Unkey's limit).", nameof(request));
        }
    }

    private static bool IsExternalId(string value)
    {
        if (value.Length is < 1 or > 255)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('_' or '.' or '-'))
            {
                return false;
            }
        }

        return true;
    }

    private static string EnvironmentName(ApiKeyEnvironment environment) => environment == ApiKeyEnvironment.Live ? "live" : "test";

    private static JsonArray ToJsonArray(IEnumerable<string> values)
    {
        var array = new JsonArray();
        foreach (var value in values)
        {
            array.Add((JsonNode?)JsonValue.Create(value));
        }

        return array;
    }

    private static string? ReadString(JsonElement? meta, string name)
        => meta is { ValueKind: JsonValueKind.Object } element && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;

    private static string[]? ReadStrings(JsonElement? meta, string name)
    {
        if (meta is not { ValueKind: JsonValueKind.Object } element
            || !element.TryGetProperty(name, out var value)
            || value.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var result = new List<string>(value.GetArrayLength());
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String && item.GetString() is { Length: > 0 } text)
            {
                result.Add(text);
            }
        }

        return [.. result];
    }

    /// <param name="Principal">Who the key belongs to.</param>
    /// <param name="VerifiedAt">When Unkey last said it is valid.</param>
    /// <param name="FreshUntil">Until when the cache may reuse it.</param>
    /// <param name="HadCredits">The key's last answer carried credits (Unkey charges it 1 by default).</param>
    /// <param name="HadRateLimits">The key's last answer carried rate limits (some may auto-apply).</param>
    private sealed record Remembered(ApiKeyPrincipal Principal, DateTimeOffset VerifiedAt, DateTimeOffset FreshUntil, bool HadCredits, bool HadRateLimits);
}
