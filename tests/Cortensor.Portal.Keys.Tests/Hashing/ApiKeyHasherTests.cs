using Cortensor.Portal.Keys.Hashing;

namespace Cortensor.Portal.Keys.Tests.Hashing;

public sealed class ApiKeyHasherTests
{
    [Theory]
    [InlineData("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")] // FIPS 180-2 vector
    [InlineData("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    [InlineData("pk_test_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s", "c746b14f00c88bab9db511afcc495b093a5a1fb4fd6e22565dd1ceed789839f6")]
    public void Hash_KnownInput_IsSha256(string input, string expectedHex)
    {
        var hash = ApiKeyHasher.Hash(input);

        Assert.Equal(32, hash.Length);
        Assert.Equal(expectedHex, Convert.ToHexStringLower(hash));
    }

    [Fact]
    public void Hash_NonAsciiInput_HashesUtf8Bytes()
    {
        // "é" is C3 A9 in UTF-8 (Latin-1 would be E9 alone).
        Assert.Equal(System.Security.Cryptography.SHA256.HashData([0xC3, 0xA9]), ApiKeyHasher.Hash("é"));
    }

    [Fact]
    public void Hash_SpanOverload_MatchesArrayOverload()
    {
        Span<byte> destination = stackalloc byte[ApiKeyHasher.HashSizeInBytes];

        var written = ApiKeyHasher.Hash("abc".AsSpan(), destination);

        Assert.Equal(32, written);
        Assert.Equal(ApiKeyHasher.Hash("abc"), destination.ToArray());
    }

    [Fact]
    public void Hash_LongInput_UsesPooledBufferAndIsStillSha256()
    {
        var input = new string('x', 10_000);

        Assert.Equal(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(input)), ApiKeyHasher.Hash(input));
    }

    [Fact]
    public void Hash_DestinationTooShort_Throws()
    {
        Assert.Throws<ArgumentException>(() => ApiKeyHasher.Hash("abc".AsSpan(), new byte[31]));
    }

    [Fact]
    public void FixedTimeEquals_SameAndDifferentHashes_ComparesContent()
    {
        var a = ApiKeyHasher.Hash("a");
        var aCopy = ApiKeyHasher.Hash("a");
        var b = ApiKeyHasher.Hash("b");

        Assert.True(ApiKeyHasher.FixedTimeEquals(a, aCopy));
        Assert.False(ApiKeyHasher.FixedTimeEquals(a, b));
        Assert.False(ApiKeyHasher.FixedTimeEquals(a, a.AsSpan(0, 31)));
    }

    [Fact]
    public void Matches_KeyAndHash_ComparesHashOfKey()
    {
        var hash = ApiKeyHasher.Hash("pk_live_secret");

        Assert.True(ApiKeyHasher.Matches("pk_live_secret", hash));
        Assert.False(ApiKeyHasher.Matches("pk_live_secreT", hash));
    }
}
