using System.IO.Hashing;
using System.Text;
using Cortensor.Portal.Keys.Format;

namespace Cortensor.Portal.Keys.Tests.Format;

public sealed class ApiKeyFormatTests
{
    private const string Base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    // Built independently with Python (zlib.crc32 + base62, most significant digit first).
    private const string KnownTestKey = "pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s";
    private const string KnownLiveKey = "pk_live_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg05wdfO";

    private readonly ApiKeyFormat _format = ApiKeyFormat.Default;

    [Theory]
    [InlineData(ApiKeyEnvironment.Live, "pk_live_")]
    [InlineData(ApiKeyEnvironment.Test, "pk_test_")]
    public void Generate_Environment_HasPrefixLengthAndBase62Alphabet(ApiKeyEnvironment environment, string prefix)
    {
        var key = _format.Generate(environment);

        Assert.StartsWith(prefix, key, StringComparison.Ordinal);
        Assert.Equal(prefix.Length + 43 + 6, key.Length);
        Assert.Equal(_format.GetKeyLength(environment), key.Length);
        Assert.All(key[prefix.Length..], c => Assert.Contains(c, Base62Alphabet));
    }

    [Fact]
    public void Generate_Checksum_IsCrc32OfPrefixAndBodyAsSixBase62Digits()
    {
        var key = _format.Generate(ApiKeyEnvironment.Test);
        var prefixedBody = key[..^6];

        var crc = Crc32.HashToUInt32(Encoding.ASCII.GetBytes(prefixedBody));
        var expected = new char[6];
        for (var i = 5; i >= 0; i--)
        {
            expected[i] = Base62Alphabet[(int)(crc % 62)];
            crc /= 62;
        }

        Assert.Equal(new string(expected), key[^6..]);
    }

    [Fact]
    public void Generate_ManyKeys_AreUnique()
    {
        var keys = Enumerable.Range(0, 10_000).Select(_ => _format.Generate(ApiKeyEnvironment.Live)).ToHashSet(StringComparer.Ordinal);

        Assert.Equal(10_000, keys.Count);
    }

    [Fact]
    public void Generate_ManyKeys_UseWholeAlphabetInBody()
    {
        var seen = new HashSet<char>();
        for (var i = 0; i < 200; i++)
        {
            seen.UnionWith(_format.Generate(ApiKeyEnvironment.Test).AsSpan(8, 43).ToArray());
        }

        // 8,600 uniform draws from 62 symbols: missing one has probability ~62 * (61/62)^8600, effectively zero.
        Assert.Equal(62, seen.Count);
    }

    [Fact]
    public void Generate_UnknownEnvironment_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _format.Generate((ApiKeyEnvironment)42));
    }

    [Theory]
    [InlineData(ApiKeyEnvironment.Live)]
    [InlineData(ApiKeyEnvironment.Test)]
    public void TryParse_GeneratedKey_RoundTripsEnvironmentAndDisplayPrefix(ApiKeyEnvironment environment)
    {
        var key = _format.Generate(environment);

        Assert.True(_format.TryParse(key, out var parsed));
        Assert.Equal(environment, parsed.Environment);
        Assert.Equal(key[..(_format.GetPrefix(environment).Length + 8)], parsed.DisplayPrefix);
        Assert.True(_format.IsWellFormed(key));
    }

    [Theory]
    [InlineData(KnownTestKey, ApiKeyEnvironment.Test, "pk_test_01234567")]
    [InlineData(KnownLiveKey, ApiKeyEnvironment.Live, "pk_live_01234567")]
    public void TryParse_KnownVector_IsAccepted(string key, ApiKeyEnvironment environment, string displayPrefix)
    {
        Assert.True(_format.TryParse(key, out var parsed));
        Assert.Equal(new ParsedApiKey(environment, displayPrefix), parsed);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("pk_test_")]
    [InlineData("Bearer pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s")]
    [InlineData(" pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s")]
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s ")]
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s\n")]
    [InlineData("PK_TEST_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s")]
    [InlineData("sk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s")]
    [InlineData("pk_prod_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s")]
    [InlineData("pk_live_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s")] // test key's body and checksum under the live prefix
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670")] // truncated
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s0")] // extra char
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefh0W670s")] // one body char changed
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670t")] // one checksum char changed
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdegf0W670s")] // two body chars swapped
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRST-VWXYZabcdefg0W670s")] // '-' not in the alphabet
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRST_VWXYZabcdefg0W670s")] // '_' not in the alphabet
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTéVWXYZabcdefg0W670s")] // non-ASCII letter
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRST٣VWXYZabcdefg0W670s")] // non-ASCII digit
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTＵVWXYZabcdefg0W670s")] // full-width letter
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670\0")] // NUL
    public void TryParse_MalformedKey_ReturnsFalse(string? key)
    {
        Assert.False(_format.TryParse(key, out var parsed));
        Assert.Equal(default, parsed);
        Assert.False(_format.IsWellFormed(key));
    }

    [Fact]
    public void TryParse_EveryBodyCharFlipped_FailsChecksum()
    {
        var key = _format.Generate(ApiKeyEnvironment.Live);
        const int prefixLength = 8;

        for (var i = prefixLength; i < key.Length; i++)
        {
            var chars = key.ToCharArray();
            chars[i] = chars[i] == 'a' ? 'b' : 'a';
            var flipped = new string(chars);

            Assert.False(_format.TryParse(flipped, out _), $"Flipping position {i} was not detected.");
        }
    }

    [Fact]
    public void TryParse_RandomStringsOfTheRightShape_AreRejectedByChecksum()
    {
        // Right prefix, length and alphabet, random checksum: CRC32 in 6 base62 digits accepts ~1 in 4.3e9.
        var accepted = 0;
        for (var i = 0; i < 10_000; i++)
        {
            var candidate = "pk_live_" + System.Security.Cryptography.RandomNumberGenerator.GetString(Base62Alphabet, 49);
            if (_format.TryParse(candidate, out _))
            {
                accepted++;
            }
        }

        Assert.Equal(0, accepted);
    }

    [Fact]
    public void TryParse_MalformedKey_DoesNotAllocate()
    {
        const string malformed = "pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefh0W670s";
        _format.TryParse(malformed, out _);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            _format.TryParse(malformed, out _);
        }

        Assert.Equal(before, GC.GetAllocatedBytesForCurrentThread());
    }
}
