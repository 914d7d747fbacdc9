using Cortensor.Portal.Keys.Format;

namespace Cortensor.Portal.Keys.Tests.Format;

public sealed class Base62Tests
{
    [Theory]
    [InlineData(0u, "000000")]
    [InlineData(61u, "00000z")]
    [InlineData(62u, "000010")]
    [InlineData(0xCBF43926u, "3jZRME")] // CRC32("123456789")
    [InlineData(uint.MaxValue, "4gfFC3")]
    public void EncodeFixedWidth_Value_IsZeroPaddedMostSignificantFirst(uint value, string expected)
    {
        var destination = new char[6];

        Base62.EncodeFixedWidth(value, destination);

        Assert.Equal(expected, new string(destination));
    }

    [Fact]
    public void EncodeFixedWidth_DestinationTooShort_Throws()
    {
        Assert.Throws<ArgumentException>(() => Base62.EncodeFixedWidth(62u * 62u, new char[2]));
    }
}
