using System.Collections.Concurrent;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Hashing;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Keys.Caching;

/// <summary>Settings of the in-process verification cache.</summary>
public sealed class ApiKeyCacheOptions
{
    /// <summary>How long a verified key is served from memory. Zero turns the cache off. <value>The default value is 1 s.</value></summary>
    public TimeSpan ValidTtl { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long an unknown (well-formed) key is remembered as unknown. <value>The default value is 1 s.</value></summary>
    public TimeSpan UnknownTtl { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Above this many entries the cache starts over, so memory stays bounded. <value>The default value is 100,000.</value></summary>
    public int MaxEntries { get; set; } = 100_000;
}

/// <summary>
/// Keeps the store off the hot path: a verified (or unknown) key is answered from memory for a short TTL, so each
/// replica reads the store at most once per key per TTL. Entries are keyed by the key's SHA-256, never the key.
/// A revocation through this provider is published on the <see cref="IHotPathChangeFeed"/>, so it takes effect at
/// once on every replica that shares the feed (and within the TTL at worst, should a notice be lost); expiry is
/// checked against the clock on every hit. Malformed keys are still refused with no I/O.
/// </summary>
public sealed class CachingApiKeyProvider : IApiKeyProvider, IDisposable
{
    private readonly IApiKeyProvider _inner;
    private readonly ApiKeyFormat _format;
    private readonly TimeProvider _time;
    private readonly ApiKeyCacheOptions _options;
    private readonly IHotPathChangeFeed _changes;
    private readonly IDisposable _subscription;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    public CachingApiKeyProvider(IApiKeyProvider inner, ApiKeyFormat format, TimeProvider time, IOptions<ApiKeyCacheOptions> options)
        : this(inner, format, time, options, new InProcessHotPathChangeFeed())
    {
    }

    public CachingApiKeyProvider(IApiKeyProvider inner, ApiKeyFormat format, TimeProvider time, IOptions<ApiKeyCacheOptions> options, IHotPathChangeFeed changes)
    {
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(inner);
        ArgumentNullException.ThrowIfNull(format);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(options);
        _inner = inner;
        _format = format;
        _time = time;
        _options = options.Value;
        _changes = changes;
        _subscription = changes.Subscribe(OnChange);
    }

    /// <summary>Entries held now (for tests and diagnostics).</summary>
    public int Count => _entries.Count;

    public async ValueTask<ApiKeyVerification> VerifyAsync(string presentedKey, CancellationToken cancellationToken = default)
    {
        if (!_format.TryParse(presentedKey, out _))
        {
            return ApiKeyVerification.Failed(ApiKeyVerificationStatus.Malformed);
        }

        if (_options.ValidTtl <= TimeSpan.Zero)
        {
            return await _inner.VerifyAsync(presentedKey, cancellationToken);
        }

        var cacheKey = Convert.ToHexString(ApiKeyHasher.Hash(presentedKey));
        var now = _time.GetUtcNow();
        if (_entries.TryGetValue(cacheKey, out var cached) && cached.Until > now)
        {
            return cached.Verification.Principal is { ExpiresAt: { } expiresAt } && expiresAt <= now
                ? ApiKeyVerification.Failed(ApiKeyVerificationStatus.Expired)
                : cached.Verification;
        }

        var verification = await _inner.VerifyAsync(presentedKey, cancellationToken);
        var ttl = verification.Status switch
        {
            ApiKeyVerificationStatus.Valid => _options.ValidTtl,
            ApiKeyVerificationStatus.NotFound => _options.UnknownTtl,
            _ => TimeSpan.Zero, // revoked/expired keys are rare; always ask the store
        };
        if (ttl > TimeSpan.Zero)
        {
            if (_entries.Count >= _options.MaxEntries)
            {
                _entries.Clear();
            }

            _entries[cacheKey] = new Entry(verification, now + ttl);
        }

        return verification;
    }

    public async Task<IssuedApiKey> IssueAsync(IssueApiKeyRequest request, CancellationToken cancellationToken = default)
    {
        var issued = await _inner.IssueAsync(request, cancellationToken);
        _entries.TryRemove(Convert.ToHexString(issued.Record.Hash), out _); // forget an "unknown" answer for it
        return issued;
    }

    public async Task<bool> RevokeAsync(string orgId, string keyId, CancellationToken cancellationToken = default)
    {
        var revoked = await _inner.RevokeAsync(orgId, keyId, cancellationToken);
        Forget(keyId);
        if (revoked)
        {
            // Every replica (this one included) drops the key now rather than when its TTL runs out.
            await _changes.PublishAsync(new HotPathChange(HotPathChangeKind.Key, keyId), cancellationToken);
        }

        return revoked;
    }

    public void Dispose() => _subscription.Dispose();

    private void OnChange(HotPathChange change)
    {
        switch (change.Kind)
        {
            case HotPathChangeKind.Key when change.Id is not null:
                Forget(change.Id);
                break;
            case HotPathChangeKind.Everything:
                _entries.Clear();
                break;
        }
    }

    private void Forget(string keyId)
    {
        foreach (var (cacheKey, entry) in _entries)
        {
            if (entry.Verification.Principal?.KeyId == keyId)
            {
                _entries.TryRemove(cacheKey, out _);
            }
        }
    }

    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
        => _inner.ListAsync(orgId, cancellationToken);

    private sealed record Entry(ApiKeyVerification Verification, DateTimeOffset Until);
}
