using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Format;

namespace Cortensor.Portal.Unkey.Keys;

/// <summary>
/// The cheap, I/O-free shape check of keys issued through Unkey: one of the Portal's prefixes
/// (<see cref="ApiKeyFormat.LivePrefix"/>/<see cref="ApiKeyFormat.TestPrefix"/>, <c>pk_live_</c>/<c>pk_test_</c> by
/// default), then 16 to 350 characters of Unkey's base58 alphabet (Bitcoin's: no <c>0</c>, <c>O</c>, <c>I</c>,
/// <c>l</c>).
/// </summary>
/// <remarks>
/// Unkey encodes <c>byteLength</c> random bytes (16–255) in base58, so a body is at least 16 and at most 350
/// characters long (≈ 1.37 characters per byte). Unkey keys carry no checksum of ours, so a mistyped key that keeps
/// this shape costs one Unkey call (answered <c>NOT_FOUND</c>); anything else — wrong prefix, wrong length, a
/// character outside the alphabet, whitespace, <c>Bearer …</c> — is refused as malformed with no I/O.
/// </remarks>
public sealed class UnkeyKeyShape
{
    /// <summary>Unkey's base58 alphabet (Bitcoin's).</summary>
    public const string Base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

    /// <summary>Shortest accepted body (16 random bytes never encode to fewer characters).</summary>
    public const int MinBodyLength = 16;

    /// <summary>Longest accepted body (255 random bytes encode to at most 349 characters).</summary>
    public const int MaxBodyLength = 350;

    /// <summary>Body characters in a display prefix, as in Unkey's <c>start</c> (prefix plus 4 characters).</summary>
    public const int DisplayBodyLength = 4;

    private static readonly SearchValues<char> Base58 = SearchValues.Create(Base58Alphabet);

    /// <param name="format">Supplies the live and test prefixes.</param>
    public UnkeyKeyShape(ApiKeyFormat format)
    {
        ArgumentNullException.ThrowIfNull(format);
        LivePrefix = format.LivePrefix;
        TestPrefix = format.TestPrefix;
    }

    public string LivePrefix { get; }

    public string TestPrefix { get; }

    /// <summary>The prefix to send to <c>keys.createKey</c>: Unkey adds the <c>_</c> separator itself.</summary>
    /// <param name="environment">Live or test.</param>
    /// <returns>The prefix without its trailing <c>_</c>, for example <c>pk_live</c>.</returns>
    public string GetUnkeyPrefix(ApiKeyEnvironment environment)
        => (environment == ApiKeyEnvironment.Live ? LivePrefix : TestPrefix).TrimEnd('_');

    /// <summary>Checks the shape of <paramref name="key"/> with no I/O.</summary>
    /// <param name="key">The presented key.</param>
    /// <param name="environment">Live or test, from the prefix.</param>
    /// <param name="displayPrefix">The prefix and the first <see cref="DisplayBodyLength"/> body characters (Unkey's <c>start</c>); safe to log.</param>
    /// <returns>Whether the key has the shape of a key issued through Unkey with the Portal's prefixes.</returns>
    public bool TryParse([NotNullWhen(true)] string? key, out ApiKeyEnvironment environment, out string displayPrefix)
    {
        environment = default;
        displayPrefix = "";
        if (key is null)
        {
            return false;
        }

        int prefixLength;
        if (key.StartsWith(LivePrefix, StringComparison.Ordinal))
        {
            environment = ApiKeyEnvironment.Live;
            prefixLength = LivePrefix.Length;
        }
        else if (key.StartsWith(TestPrefix, StringComparison.Ordinal))
        {
            environment = ApiKeyEnvironment.Test;
            prefixLength = TestPrefix.Length;
        }
        else
        {
            return false;
        }

        var body = key.AsSpan(prefixLength);
        if (body.Length < MinBodyLength || body.Length > MaxBodyLength || body.ContainsAnyExcept(Base58))
        {
            return false;
        }

        displayPrefix = key[..(prefixLength + DisplayBodyLength)];
        return true;
    }
}
