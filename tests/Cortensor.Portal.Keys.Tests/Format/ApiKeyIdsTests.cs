using Cortensor.Portal.Keys.Format;

namespace Cortensor.Portal.Keys.Tests.Format;

public sealed class ApiKeyIdsTests
{
    [Fact]
    public void NewKeyId_Always_IsKeyPrefixPlus24Base62()
    {
        var id = ApiKeyIds.NewKeyId();

        Assert.Matches("^key_[0-9A-Za-z]{24}$", id);
        Assert.True(ApiKeyIds.IsWellFormed(id));
    }

    [Fact]
    public void NewKeyId_ManyIds_AreUnique()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => ApiKeyIds.NewKeyId()).ToHashSet(StringComparer.Ordinal);

        Assert.Equal(10_000, ids.Count);
    }

    [Theory]
    [InlineData("")]
    [InlineData("key_")]
    [InlineData("key_0123456789ABCDEFGHIJKLM")]
    [InlineData("key_0123456789ABCDEFGHIJKLMNO")]
    [InlineData("kex_0123456789ABCDEFGHIJKLMN")]
    [InlineData("key_0123456789ABCDEFGHIJKL-N")]
    public void IsWellFormed_Malformed_ReturnsFalse(string id)
    {
        Assert.False(ApiKeyIds.IsWellFormed(id));
    }
}
