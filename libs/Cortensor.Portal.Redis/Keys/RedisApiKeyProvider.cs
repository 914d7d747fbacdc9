using System.Collections.Concurrent;
using System.Text.Json;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Cortensor.Portal.Redis.Configuration;
using Cortensor.Portal.Redis.Internal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Keys;

/// <summary>
/// A verification cache shared by every replica: it sits between the in-process
/// <see cref="Cortensor.Portal.Keys.Caching.CachingApiKeyProvider"/> (L1) and the store-backed provider that is the
/// source of truth, so a key is read from the store about once per <see cref="RedisOptions.KeyCacheTtl"/> for the
/// whole fleet rather than once per replica.
/// </summary>
/// <remarks>
/// <para>
/// Entries live at <c>{KeyPrefix}key:{hex SHA-256 of the key}</c> (never the key itself): the principal as JSON
/// for a valid key (its expiry is checked against the clock on every hit, and the entry never outlives it),
/// <c>n</c> for an unknown key (for <see cref="RedisOptions.UnknownKeyTtl"/>) or <c>r</c> for a revoked one.
/// Entries are written with <c>NX</c>, so a verification that raced a revocation cannot overwrite its tombstone.
/// </para>
/// <para>
/// Malformed keys are refused with no I/O. When Redis fails or is slower than
/// <see cref="RedisOptions.OperationTimeout"/> the inner provider answers: verification never fails because Redis is
/// down. A revocation writes the tombstone, then publishes <see cref="HotPathChangeKind.Key"/> on the change feed;
/// a tombstone that could not be written is written again when the connection comes back.
/// </para>
/// </remarks>
public sealed partial class RedisApiKeyProvider : IApiKeyProvider, IDisposable
{
    internal const string UnknownMarker = "n";
    internal const string RevokedMarker = "r";

    private readonly IApiKeyProvider _inner;
    private readonly IConnectionMultiplexer _redis;
    private readonly IHotPathChangeFeed _changes;
    private readonly ApiKeyFormat _format;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisApiKeyProvider> _logger;
    private readonly RedisOptions _options;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _pendingTombstones = new(StringComparer.Ordinal);

    /// <param name="inner">The source of truth (normally the store-backed local provider).</param>
    /// <param name="redis">The shared connection.</param>
    /// <param name="changes">Where revocations are announced.</param>
    /// <param name="format">Checks keys before any I/O.</param>
    /// <param name="time">The clock for expiry checks.</param>
    /// <param name="options">Key prefix, TTLs and operation timeout.</param>
    /// <param name="logger">Logs Redis failures (key ids and hash prefixes only).</param>
    public RedisApiKeyProvider(
        IApiKeyProvider inner,
        IConnectionMultiplexer redis,
        IHotPathChangeFeed changes,
        ApiKeyFormat format,
        TimeProvider time,
        IOptions<RedisOptions> options,
        ILogger<RedisApiKeyProvider> logger)
    {
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        _inner = inner;
        _redis = redis;
        _changes = changes;
        _format = format;
        _time = time;
        _options = options.Value;
        _logger = logger;
        _redis.ConnectionRestored += OnConnectionRestored;
    }

    /// <summary>The Redis key of the cache entry for a key with this SHA-256.</summary>
    /// <param name="hash">SHA-256 of the full key string.</param>
    public RedisKey GetCacheKey(ReadOnlySpan<byte> hash) => _options.KeyPrefix + "key:" + Convert.ToHexStringLower(hash);

    /// <inheritdoc/>
    public async ValueTask<ApiKeyVerification> VerifyAsync(string presentedKey, CancellationToken cancellationToken = default)
    {
        // Format and checksum first: garbage never reaches Redis or the store.
        if (!_format.TryParse(presentedKey, out _))
        {
            return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Malformed);
        }

        var cacheKey = GetCacheKey(ApiKeyHasher.Hash(presentedKey));
        var db = _redis.GetDatabase();
        var redisUp = true;
        try
        {
            var cached = await RedisCalls.WithTimeout(db.StringGetAsync(cacheKey), _options.OperationTimeout, cancellationToken).ConfigureAwait(false);
            if (!cached.IsNull && TryReadEntry(cached, out var hit))
            {
                return hit;
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            redisUp = false;
            Log.CacheReadFailed(_logger, ex);
        }

        var verification = await _inner.VerifyAsync(presentedKey, cancellationToken).ConfigureAwait(false);
        if (redisUp)
        {
            Store(db, cacheKey, verification);
        }

        return verification;
    }

    /// <inheritdoc/>
    public async Task<IssuedApiKey> IssueAsync(IssueApiKeyRequest request, CancellationToken cancellationToken = default)
    {
        var issued = await _inner.IssueAsync(request, cancellationToken).ConfigureAwait(false);

        // Forget an "unknown" answer for the new key (someone may have tried it before it existed).
        try
        {
            await RedisCalls.WithTimeout(_redis.GetDatabase().KeyDeleteAsync(GetCacheKey(issued.Record.Hash)), _options.OperationTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Log.CacheWriteFailed(_logger, issued.Record.KeyId, ex);
        }

        return issued;
    }

    /// <inheritdoc/>
    public async Task<bool> RevokeAsync(string orgId, string keyId, CancellationToken cancellationToken = default)
    {
        // The hash is looked up before revoking, so a store that hides revoked keys from lists still works.
        var records = await _inner.ListAsync(orgId, cancellationToken).ConfigureAwait(false);
        var record = records.FirstOrDefault(r => string.Equals(r.KeyId, keyId, StringComparison.Ordinal));

        var revoked = await _inner.RevokeAsync(orgId, keyId, cancellationToken).ConfigureAwait(false);
        if (!revoked)
        {
            return false;
        }

        if (record is not null)
        {
            var cacheKey = GetCacheKey(record.Hash);
            try
            {
                await RedisCalls.WithTimeout(WriteTombstoneAsync(cacheKey), _options.OperationTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // Until Redis is back every replica asks the store anyway; then the tombstone is written.
                _pendingTombstones[cacheKey.ToString()] = _time.GetUtcNow() + _options.KeyCacheTtl;
                Log.TombstoneDeferred(_logger, keyId, ex);
            }
        }

        // Every replica's in-process cache drops the key now.
        await _changes.PublishAsync(new HotPathChange(HotPathChangeKind.Key, keyId), cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <inheritdoc/>
    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
        => _inner.ListAsync(orgId, cancellationToken);

    /// <inheritdoc/>
    public void Dispose() => _redis.ConnectionRestored -= OnConnectionRestored;

    private bool TryReadEntry(RedisValue cached, out ApiKeyVerification verification)
    {
        var text = (string?)cached;
        switch (text)
        {
            case UnknownMarker:
                verification = ApiKeyVerification.Failed(ApiKeyVerificationStatus.NotFound);
                return true;
            case RevokedMarker:
                verification = ApiKeyVerification.Failed(ApiKeyVerificationStatus.Revoked);
                return true;
        }

        ApiKeyPrincipal? principal;
        try
        {
            principal = JsonSerializer.Deserialize(text!, RedisKeysJsonContext.Default.ApiKeyPrincipal);
        }
        catch (JsonException)
        {
            principal = null;
        }

        if (principal is null)
        {
            Log.UnreadableEntry(_logger);
            verification = default;
            return false;
        }

        verification = principal.ExpiresAt is { } expiresAt && expiresAt <= _time.GetUtcNow()
            ? ApiKeyVerification.Failed(ApiKeyVerificationStatus.Expired)
            : ApiKeyVerification.Valid(principal);
        return true;
    }

    /// <summary>Caches the inner answer without waiting (fire and forget): a miss costs no extra latency.</summary>
    private void Store(IDatabase db, RedisKey cacheKey, ApiKeyVerification verification)
    {
        RedisValue value;
        TimeSpan ttl;
        switch (verification.Status)
        {
            case ApiKeyVerificationStatus.Valid when verification.Principal is { } principal:
                value = JsonSerializer.Serialize(principal, RedisKeysJsonContext.Default.ApiKeyPrincipal);
                ttl = _options.KeyCacheTtl;
                if (principal.ExpiresAt is { } expiresAt && expiresAt - _time.GetUtcNow() < ttl)
                {
                    ttl = expiresAt - _time.GetUtcNow();
                }

                break;
            case ApiKeyVerificationStatus.NotFound:
                value = UnknownMarker;
                ttl = _options.UnknownKeyTtl;
                break;
            case ApiKeyVerificationStatus.Revoked:
                value = RevokedMarker;
                ttl = _options.KeyCacheTtl;
                break;
            default:
                return; // expired keys are rare: always ask the store
        }

        if (ttl < TimeSpan.FromMilliseconds(1))
        {
            return;
        }

        try
        {
            // NX: never overwrite a tombstone written by a revocation that raced this verification.
            db.StringSet(cacheKey, value, ttl, When.NotExists, CommandFlags.FireAndForget);
        }
        catch (RedisException ex)
        {
            Log.CacheWriteFailed(_logger, verification.Principal?.KeyId, ex);
        }
    }

    private Task<bool> WriteTombstoneAsync(RedisKey cacheKey)
        => _redis.GetDatabase().StringSetAsync(cacheKey, RevokedMarker, _options.KeyCacheTtl, When.Always);

    private void OnConnectionRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType != ConnectionType.Interactive || _pendingTombstones.IsEmpty)
        {
            return;
        }

        var now = _time.GetUtcNow();
        foreach (var (key, until) in _pendingTombstones)
        {
            _pendingTombstones.TryRemove(key, out _);
            if (until > now)
            {
                _ = WriteDeferredTombstoneAsync(key, until);
            }
        }
    }

    private async Task WriteDeferredTombstoneAsync(string key, DateTimeOffset until)
    {
        try
        {
            await RedisCalls.WithTimeout(WriteTombstoneAsync(key), TimeSpan.FromSeconds(5), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            _pendingTombstones.TryAdd(key, until);
            Log.CacheWriteFailed(_logger, null, ex);
        }
    }
}
