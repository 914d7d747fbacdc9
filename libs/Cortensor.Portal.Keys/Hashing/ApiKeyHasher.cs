using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace Cortensor.Portal.Keys.Hashing;

/// <summary>
/// The stored form of a key: SHA-256 of its UTF-8 bytes. One round is enough for a random 256-bit secret; a slow
/// or salted KDF would only make lookup by hash impossible. Compare digests with <see cref="FixedTimeEquals"/>.
/// </summary>
public static class ApiKeyHasher
{
    /// <summary>Size of a key hash in bytes.</summary>
    public const int HashSizeInBytes = SHA256.HashSizeInBytes;

    private const int StackallocThreshold = 256;

    /// <summary>Returns SHA-256 of the UTF-8 bytes of <paramref name="key"/> (32 bytes).</summary>
    public static byte[] Hash(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var hash = new byte[HashSizeInBytes];
        Hash(key.AsSpan(), hash);
        return hash;
    }

    /// <summary>Writes SHA-256 of the UTF-8 bytes of <paramref name="key"/> into <paramref name="destination"/>.</summary>
    /// <returns>The number of bytes written, always <see cref="HashSizeInBytes"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <see cref="HashSizeInBytes"/>.</exception>
    public static int Hash(ReadOnlySpan<char> key, Span<byte> destination)
    {
        if (destination.Length < HashSizeInBytes)
        {
            throw new ArgumentException($"The destination must hold at least {HashSizeInBytes} bytes.", nameof(destination));
        }

        var maxByteCount = Encoding.UTF8.GetMaxByteCount(key.Length);
        byte[]? rented = null;
        var buffer = maxByteCount <= StackallocThreshold
            ? stackalloc byte[StackallocThreshold]
            : (rented = ArrayPool<byte>.Shared.Rent(maxByteCount));
        var byteCount = Encoding.UTF8.GetBytes(key, buffer);
        try
        {
            return SHA256.HashData(buffer[..byteCount], destination);
        }
        finally
        {
            // The buffer held the secret.
            CryptographicOperations.ZeroMemory(buffer[..byteCount]);
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Compares two hashes in time that depends only on their length.</summary>
    public static bool FixedTimeEquals(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right) =>
        CryptographicOperations.FixedTimeEquals(left, right);

    /// <summary>Whether <paramref name="key"/> hashes to <paramref name="expectedHash"/>, compared in constant time.</summary>
    public static bool Matches(ReadOnlySpan<char> key, ReadOnlySpan<byte> expectedHash)
    {
        Span<byte> actual = stackalloc byte[HashSizeInBytes];
        Hash(key, actual);
        return CryptographicOperations.FixedTimeEquals(actual, expectedHash);
    }
}
