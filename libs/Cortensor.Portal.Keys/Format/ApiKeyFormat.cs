using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Keys.Format;

/// <summary>
/// The shape of a Portal API key: <c>prefix + body + checksum</c>, for example
/// <c>pk_test_</c> + 43 random base62 characters + 6 base62 characters of CRC32.
/// </summary>
/// <remarks>
/// <para>
/// The body is 43 characters drawn uniformly from <c>[0-9A-Za-z]</c> by the CSPRNG (about 256 bits), so the key is
/// URL-safe and a double-click selects all of it. The checksum is the CRC-32 (IEEE, as
/// <see cref="Crc32"/>) of the ASCII bytes of <c>prefix + body</c>, written as exactly 6 base62 digits, most
/// significant first, zero-padded. It lets the gateway and secret scanners reject typos and random strings
/// without any lookup. It is not a security control: the secret is the body.
/// </para>
/// <para>
/// Secret scanners treat <c>pk_</c> as a Stripe <em>publishable</em> key (gitleaks skips them), so a leaked Portal
/// key with the default prefix would be ignored. Operators should register <see cref="DetectionPattern"/> (or
/// <see cref="ConfiguredDetectionPattern"/> for custom prefixes) with their scanner, or configure a secret-looking
/// prefix such as <c>ctsk_live_</c>/<c>ctsk_test_</c>.
/// </para>
/// </remarks>
public sealed partial class ApiKeyFormat
{
    /// <summary>Random characters after the prefix.</summary>
    public const int BodyLength = 43;

    /// <summary>Base62 characters of CRC32 at the end of the key.</summary>
    public const int ChecksumLength = 6;

    /// <summary>Body characters included in <see cref="ParsedApiKey.DisplayPrefix"/>.</summary>
    public const int DisplayBodyLength = 8;

    /// <summary>
    /// Regex that finds keys with the default prefixes in text, for secret scanners (gitleaks, GitHub custom
    /// patterns, trufflehog). Register it: scanners otherwise skip <c>pk_</c> strings as publishable keys.
    /// </summary>
    public const string DetectionPattern = @"\bpk_(?:live|test)_[0-9A-Za-z]{49}\b";

    private const int MaxPrefixedBodyLength = ApiKeyFormatOptions.MaxPrefixLength + BodyLength;

    private readonly bool _isDefault;
    private Regex? _configuredDetectionRegex;

    public ApiKeyFormat(IOptions<ApiKeyFormatOptions> options)
        : this((options ?? throw new ArgumentNullException(nameof(options))).Value)
    {
    }

    /// <exception cref="ArgumentException">The prefixes break the rules of <see cref="ApiKeyFormatOptions"/>.</exception>
    public ApiKeyFormat(ApiKeyFormatOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = ApiKeyFormatOptionsValidator.GetFailures(options);
        if (failures.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", failures), nameof(options));
        }

        LivePrefix = options.LivePrefix;
        TestPrefix = options.TestPrefix;
        ConfiguredDetectionPattern = BuildDetectionPattern(LivePrefix, TestPrefix);
        _isDefault = string.Equals(ConfiguredDetectionPattern, DetectionPattern, StringComparison.Ordinal);
    }

    /// <summary>The format with the default prefixes.</summary>
    public static ApiKeyFormat Default { get; } = new(new ApiKeyFormatOptions());

    /// <summary>Compiled <see cref="DetectionPattern"/>.</summary>
    public static Regex DefaultDetectionRegex => DefaultDetectionRegexCore();

    public string LivePrefix { get; }

    public string TestPrefix { get; }

    /// <summary>The scanner regex for this instance's prefixes; equals <see cref="DetectionPattern"/> for the defaults.</summary>
    public string ConfiguredDetectionPattern { get; }

    /// <summary>Compiled <see cref="ConfiguredDetectionPattern"/>.</summary>
    public Regex ConfiguredDetectionRegex =>
        _isDefault
            ? DefaultDetectionRegexCore()
            : _configuredDetectionRegex ??= new Regex(ConfiguredDetectionPattern, RegexOptions.CultureInvariant);

    public string GetPrefix(ApiKeyEnvironment environment) => environment switch
    {
        ApiKeyEnvironment.Live => LivePrefix,
        ApiKeyEnvironment.Test => TestPrefix,
        _ => throw new ArgumentOutOfRangeException(nameof(environment), environment, "Unknown key environment."),
    };

    /// <summary>Total length of a key of <paramref name="environment"/>.</summary>
    public int GetKeyLength(ApiKeyEnvironment environment) => GetPrefix(environment).Length + BodyLength + ChecksumLength;

    /// <summary>Creates a new secret key. Show it to the caller once; store only its hash.</summary>
    public string Generate(ApiKeyEnvironment environment)
    {
        var prefix = GetPrefix(environment);
        return string.Create(prefix.Length + BodyLength + ChecksumLength, prefix, static (span, prefix) =>
        {
            prefix.CopyTo(span);
            var prefixedBodyLength = prefix.Length + BodyLength;
            Base62.FillRandom(span[prefix.Length..prefixedBodyLength]);
            Base62.EncodeFixedWidth(ComputeChecksum(span[..prefixedBodyLength]), span[prefixedBodyLength..]);
        });
    }

    /// <summary>
    /// Checks prefix, length, alphabet and checksum, with no I/O and no allocation unless the key is well-formed.
    /// Returns false for <see langword="null"/>, empty, padded or otherwise malformed input.
    /// </summary>
    public bool TryParse([NotNullWhen(true)] string? key, out ParsedApiKey parsed)
    {
        if (key is null || !TryGetEnvironment(key, out var environment, out var prefixLength))
        {
            parsed = default;
            return false;
        }

        parsed = new ParsedApiKey(environment, key[..(prefixLength + DisplayBodyLength)]);
        return true;
    }

    /// <summary>Whether <paramref name="key"/> passes every check of <see cref="TryParse"/>.</summary>
    public bool IsWellFormed(ReadOnlySpan<char> key) => TryGetEnvironment(key, out _, out _);

    /// <summary>
    /// Finds substrings of <paramref name="text"/> that match <see cref="ConfiguredDetectionPattern"/> and carry a valid
    /// checksum, as a secret scanner would. Use it to check logs for leaked keys.
    /// </summary>
    public IReadOnlyList<string> FindKeys(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var found = new List<string>();
        foreach (Match match in ConfiguredDetectionRegex.Matches(text))
        {
            if (IsWellFormed(match.ValueSpan))
            {
                found.Add(match.Value);
            }
        }

        return found;
    }

    private bool TryGetEnvironment(ReadOnlySpan<char> key, out ApiKeyEnvironment environment, out int prefixLength)
    {
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
            environment = default;
            prefixLength = 0;
            return false;
        }

        var prefixedBodyLength = prefixLength + BodyLength;
        if (key.Length != prefixedBodyLength + ChecksumLength
            || key[prefixLength..].ContainsAnyExcept(Base62.Characters))
        {
            return false;
        }

        Span<char> expected = stackalloc char[ChecksumLength];
        Base62.EncodeFixedWidth(ComputeChecksum(key[..prefixedBodyLength]), expected);
        return key[prefixedBodyLength..].SequenceEqual(expected);
    }

    /// <summary>CRC32 of the ASCII bytes of <paramref name="prefixedBody"/>, which must be ASCII already.</summary>
    private static uint ComputeChecksum(ReadOnlySpan<char> prefixedBody)
    {
        Span<byte> bytes = stackalloc byte[MaxPrefixedBodyLength];
        var written = Encoding.ASCII.GetBytes(prefixedBody, bytes);
        return Crc32.HashToUInt32(bytes[..written]);
    }

    private static string BuildDetectionPattern(string livePrefix, string testPrefix)
    {
        // Factor the shared start and end out of the two prefixes: pk_live_/pk_test_ -> pk_(?:live|test)_.
        var head = livePrefix.AsSpan().CommonPrefixLength(testPrefix);
        var liveRest = livePrefix.AsSpan(head);
        var testRest = testPrefix.AsSpan(head);
        var tail = 0;
        while (tail < liveRest.Length - 1
            && tail < testRest.Length - 1
            && liveRest[^(tail + 1)] == testRest[^(tail + 1)])
        {
            tail++;
        }

        return string.Create(
            CultureInfo.InvariantCulture,
            $@"\b{Regex.Escape(livePrefix[..head])}(?:{Regex.Escape(liveRest[..^tail].ToString())}|{Regex.Escape(testRest[..^tail].ToString())}){Regex.Escape(liveRest[^tail..].ToString())}{Base62.CharacterClass}{{{BodyLength + ChecksumLength}}}\b");
    }

    [GeneratedRegex(DetectionPattern, RegexOptions.CultureInvariant)]
    private static partial Regex DefaultDetectionRegexCore();
}
