using Cortensor.Portal.Keys.Format;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Keys.Tests.Format;

public sealed class ApiKeyFormatOptionsTests
{
    [Fact]
    public void Defaults_ArePkLiveAndPkTest()
    {
        var options = new ApiKeyFormatOptions();

        Assert.Equal("pk_live_", options.LivePrefix);
        Assert.Equal("pk_test_", options.TestPrefix);
        Assert.Empty(ApiKeyFormatOptionsValidator.GetFailures(options));
    }

    [Theory]
    [InlineData("ctsk_live_", "ctsk_test_")]
    [InlineData("ab_", "cd_")]
    [InlineData("live_", "test_")]
    [InlineData("x9_live_", "x9_test_")]
    [InlineData("a234567890123_l_", "a234567890123_t_")] // 16 characters
    public void Validate_ValidPrefixes_Succeeds(string live, string test)
    {
        var result = new ApiKeyFormatOptionsValidator().Validate(null, new ApiKeyFormatOptions { LivePrefix = live, TestPrefix = test });

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Theory]
    [InlineData("Pk_live_", "pk_test_")] // uppercase
    [InlineData("pk-live_", "pk_test_")] // hyphen
    [InlineData("pk_live", "pk_test_")] // no trailing underscore
    [InlineData("a_", "pk_test_")] // too short
    [InlineData("a2345678901234567_", "pk_test_")] // 18 characters
    [InlineData("", "pk_test_")]
    [InlineData("pk_live_", "pk_live_")] // same
    [InlineData("pk_", "pk_test_")] // one starts the other
    [InlineData("pk_test_", "pk_test_x_")] // one starts the other
    [InlineData("pk_livé_", "pk_test_")] // non-ASCII
    [InlineData("pk live_", "pk_test_")] // space
    public void Validate_InvalidPrefixes_Fails(string live, string test)
    {
        var options = new ApiKeyFormatOptions { LivePrefix = live, TestPrefix = test };

        var result = new ApiKeyFormatOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Throws<ArgumentException>(() => new ApiKeyFormat(options));
    }

    [Fact]
    public void Validate_NullPrefix_Fails()
    {
        var result = new ApiKeyFormatOptionsValidator().Validate(null, new ApiKeyFormatOptions { LivePrefix = null! });

        Assert.True(result.Failed);
        Assert.Contains(nameof(ApiKeyFormatOptions.LivePrefix), result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_CustomPrefixes_GeneratesAndParsesWithThem()
    {
        var format = new ApiKeyFormat(Options.Create(new ApiKeyFormatOptions { LivePrefix = "ctsk_live_", TestPrefix = "ctsk_test_" }));

        var live = format.Generate(ApiKeyEnvironment.Live);
        var test = format.Generate(ApiKeyEnvironment.Test);

        Assert.StartsWith("ctsk_live_", live, StringComparison.Ordinal);
        Assert.Equal(10 + 49, live.Length);
        Assert.True(format.TryParse(live, out var parsedLive));
        Assert.Equal(ApiKeyEnvironment.Live, parsedLive.Environment);
        Assert.Equal(live[..18], parsedLive.DisplayPrefix);
        Assert.True(format.TryParse(test, out var parsedTest));
        Assert.Equal(ApiKeyEnvironment.Test, parsedTest.Environment);
    }

    [Fact]
    public void TryParse_KeyOfOtherPrefixes_ReturnsFalse()
    {
        var custom = new ApiKeyFormat(new ApiKeyFormatOptions { LivePrefix = "ctsk_live_", TestPrefix = "ctsk_test_" });
        var defaultKey = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Live);
        var customKey = custom.Generate(ApiKeyEnvironment.Live);

        Assert.False(custom.TryParse(defaultKey, out _));
        Assert.False(ApiKeyFormat.Default.TryParse(customKey, out _));
    }

    [Fact]
    public void Generate_SamePrefixBody_ChecksumCoversPrefix()
    {
        // Moving a body+checksum from one prefix to another must break the checksum.
        var custom = new ApiKeyFormat(new ApiKeyFormatOptions { LivePrefix = "ab_", TestPrefix = "cd_" });
        var key = custom.Generate(ApiKeyEnvironment.Live);

        Assert.False(custom.TryParse("cd_" + key[3..], out _));
    }
}
