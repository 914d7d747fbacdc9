using System.Collections.Concurrent;
using Cortensor.Portal.Keys.Hashing;

namespace Cortensor.Portal.Keys.Stores;

/// <summary>
/// A thread-safe, process-local <see cref="IApiKeyStore"/> for development and tests. Records are immutable;
/// revoking replaces the record. Everything is lost when the process exits.
/// </summary>
public sealed class InMemoryApiKeyStore : IApiKeyStore
{
    private readonly ConcurrentDictionary<byte[], ApiKeyRecord> _byHash = new(HashComparer.Instance);
    private readonly ConcurrentDictionary<string, ApiKeyRecord> _byKeyId = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<byte[], ApiKeyRecord>.AlternateLookup<ReadOnlySpan<byte>> _byHashSpan;
    private readonly Lock _writeLock = new();

    public InMemoryApiKeyStore()
    {
        _byHashSpan = _byHash.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>Number of stored records, revoked ones included.</summary>
    public int Count => _byKeyId.Count;

    public ValueTask<ApiKeyRecord?> FindByHashAsync(ReadOnlyMemory<byte> hash, CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<ApiKeyRecord?>(cancellationToken);
        }

        return ValueTask.FromResult(_byHashSpan.TryGetValue(hash.Span, out var record) ? record : null);
    }

    /// <exception cref="ArgumentException">The hash is not 32 bytes, or a field is missing.</exception>
    /// <exception cref="InvalidOperationException">A record with the same key id or hash exists.</exception>
    public Task AddAsync(ApiKeyRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.Hash is not { Length: ApiKeyHasher.HashSizeInBytes })
        {
            throw new ArgumentException($"The hash must be {ApiKeyHasher.HashSizeInBytes} bytes.", nameof(record));
        }

        ArgumentException.ThrowIfNullOrEmpty(record.KeyId, nameof(record));
        ArgumentException.ThrowIfNullOrEmpty(record.OrgId, nameof(record));
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled(cancellationToken);
        }

        // Own the hash bytes so a caller mutating its array cannot corrupt the index.
        var stored = record with { Hash = record.Hash.ToArray() };
        lock (_writeLock)
        {
            if (_byKeyId.ContainsKey(stored.KeyId) || _byHash.ContainsKey(stored.Hash))
            {
                throw new InvalidOperationException($"A key with id '{stored.KeyId}' or the same hash is already stored.");
            }

            _byKeyId[stored.KeyId] = stored;
            _byHash[stored.Hash] = stored;
        }

        return Task.CompletedTask;
    }

    public Task<bool> RevokeAsync(string orgId, string keyId, DateTimeOffset revokedAt, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        ArgumentNullException.ThrowIfNull(keyId);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<bool>(cancellationToken);
        }

        lock (_writeLock)
        {
            if (!_byKeyId.TryGetValue(keyId, out var current)
                || !string.Equals(current.OrgId, orgId, StringComparison.Ordinal)
                || current.RevokedAt is not null)
            {
                return Task.FromResult(false);
            }

            var revoked = current with { RevokedAt = revokedAt };
            _byHash[revoked.Hash] = revoked;
            _byKeyId[revoked.KeyId] = revoked;
        }

        return Task.FromResult(true);
    }

    public Task<IReadOnlyList<ApiKeyRecord>> ListAsync(string orgId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(orgId);
        if (cancellationToken.IsCancellationRequested)
        {
            return Task.FromCanceled<IReadOnlyList<ApiKeyRecord>>(cancellationToken);
        }

        IReadOnlyList<ApiKeyRecord> records = _byKeyId.Values
            .Where(r => string.Equals(r.OrgId, orgId, StringComparison.Ordinal))
            .OrderBy(r => r.CreatedAt)
            .ThenBy(r => r.KeyId, StringComparer.Ordinal)
            .ToArray();
        return Task.FromResult(records);
    }

    /// <summary>Compares hashes by content; hashes a span without allocating so lookups need no array.</summary>
    private sealed class HashComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly HashComparer Instance = new();

        public bool Equals(byte[]? x, byte[]? y) =>
            ReferenceEquals(x, y) || (x is not null && y is not null && x.AsSpan().SequenceEqual(y));

        public int GetHashCode(byte[] obj) => GetHashCode(obj.AsSpan());

        public bool Equals(ReadOnlySpan<byte> alternate, byte[] other) => alternate.SequenceEqual(other);

        public int GetHashCode(ReadOnlySpan<byte> alternate)
        {
            var hashCode = new HashCode();
            hashCode.AddBytes(alternate);
            return hashCode.ToHashCode();
        }

        public byte[] Create(ReadOnlySpan<byte> alternate) => alternate.ToArray();
    }
}
