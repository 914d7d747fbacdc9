using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Unkey.Keys;
using Cortensor.Portal.Testing.Unkey;

namespace Cortensor.Portal.Unkey.Tests.Keys;

public sealed class UnkeyKeyShapeTests
{
    private readonly UnkeyKeyShape _shape = new(ApiKeyFormat.Default);

    [Theory]
    [InlineData(16)]
    [InlineData(32)]
    [InlineData(255)]
    public void TryParse_KeysOfEveryByteLengthUnkeyAllows_AreWellFormed(int byteLength)
    {
        for (var i = 0; i < 50; i++)
        {
            var key = "pk_live_" + UnkeyStub.RandomBase58(byteLength);

            Assert.True(_shape.TryParse(key, out var environment, out var displayPrefix), key);
            Assert.Equal(ApiKeyEnvironment.Live, environment);
            Assert.Equal(key[..12], displayPrefix);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("pk_test_")]
    [InlineData("pk_test_123456789ABCDEF")] // 15 characters
    [InlineData("pk_test_0123456789ABCDEFGH")] // '0' is not base58
    [InlineData("pk_test_OIl123456789ABCDEFGH")] // nor O, I, l
    [InlineData("pk_test_123456789ABCDEFGH+")]
    [InlineData("pk_prod_123456789ABCDEFGHJ")]
    [InlineData("unkey_123456789ABCDEFGHJKL")]
    public void TryParse_OtherShapes_AreMalformed(string? key)
    {
        Assert.False(_shape.TryParse(key, out _, out _));
    }

    [Fact]
    public void TryParse_BodyOverMaxLength_IsMalformed()
    {
        Assert.True(_shape.TryParse("pk_test_" + new string('a', UnkeyKeyShape.MaxBodyLength), out _, out _));
        Assert.False(_shape.TryParse("pk_test_" + new string('a', UnkeyKeyShape.MaxBodyLength + 1), out _, out _));
    }

    [Fact]
    public void CustomPrefixes_AreUsedForTheShapeAndForUnkeysPrefix()
    {
        var shape = new UnkeyKeyShape(new ApiKeyFormat(new ApiKeyFormatOptions { LivePrefix = "ctsk_live_", TestPrefix = "ctsk_test_" }));

        Assert.Equal("ctsk_live", shape.GetUnkeyPrefix(ApiKeyEnvironment.Live));
        Assert.Equal("ctsk_test", shape.GetUnkeyPrefix(ApiKeyEnvironment.Test));
        Assert.True(shape.TryParse("ctsk_test_" + UnkeyStub.RandomBase58(32), out var environment, out _));
        Assert.Equal(ApiKeyEnvironment.Test, environment);
        Assert.False(shape.TryParse("pk_test_" + UnkeyStub.RandomBase58(32), out _, out _));
    }
}
