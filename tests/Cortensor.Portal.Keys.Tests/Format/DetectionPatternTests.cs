using System.Text.RegularExpressions;
using Cortensor.Portal.Keys.Format;

namespace Cortensor.Portal.Keys.Tests.Format;

public sealed class DetectionPatternTests
{
    private const string Body = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670s";

    [Fact]
    public void DetectionPattern_Defaults_IsDocumentedRegex()
    {
        Assert.Equal(@"\bpk_(?:live|test)_[0-9A-Za-z]{49}\b", ApiKeyFormat.DetectionPattern);
        Assert.Equal(ApiKeyFormat.DetectionPattern, ApiKeyFormat.Default.ConfiguredDetectionPattern);
        Assert.Equal(ApiKeyFormat.DetectionPattern, ApiKeyFormat.DefaultDetectionRegex.ToString());
    }

    [Fact]
    public void DetectionRegex_GeneratedKeys_AreMatchedInText()
    {
        for (var i = 0; i < 200; i++)
        {
            var live = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Live);
            var test = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Test);
            var text = $"export PORTAL_KEY={live}\n\"api_key\": \"{test}\", url=https://x/?k={live}&y=1";

            var matches = ApiKeyFormat.DefaultDetectionRegex.Matches(text).Select(m => m.Value).ToArray();

            Assert.Equal([live, test, live], matches);
            Assert.Matches(ApiKeyFormat.DetectionPattern, live);
        }
    }

    [Theory]
    [InlineData("pk_live_" + Body + "X")] // one character too many
    [InlineData("pk_live_" + "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefg0W670")] // one too few
    [InlineData("xpk_live_" + Body)] // glued to a preceding word
    [InlineData("pk_live_" + Body + "_x")] // glued to a following word
    [InlineData("pk_prod_" + Body)]
    [InlineData("sk_live_" + Body)]
    [InlineData("pk_Live_" + Body)]
    [InlineData("pk_live" + Body)]
    [InlineData("pk_live_0123456789ABCDEFGHIJKLMNOPQRST-VWXYZabcdefg0W670s")]
    public void DetectionRegex_NearMiss_DoesNotMatch(string text)
    {
        Assert.DoesNotMatch(ApiKeyFormat.DetectionPattern, text);
        Assert.DoesNotMatch(ApiKeyFormat.DefaultDetectionRegex, text);
    }

    [Theory]
    [InlineData("ctsk_live_", "ctsk_test_", @"\bctsk_(?:live|test)_[0-9A-Za-z]{49}\b")]
    [InlineData("ab_", "cd_", @"\b(?:ab|cd)_[0-9A-Za-z]{49}\b")]
    [InlineData("live_", "test_", @"\b(?:live|test)_[0-9A-Za-z]{49}\b")]
    [InlineData("a_b_", "a_cb_", @"\ba_(?:b|cb)_[0-9A-Za-z]{49}\b")]
    public void ConfiguredDetectionPattern_CustomPrefixes_FactorsSharedParts(string live, string test, string expected)
    {
        var format = new ApiKeyFormat(new ApiKeyFormatOptions { LivePrefix = live, TestPrefix = test });

        Assert.Equal(expected, format.ConfiguredDetectionPattern);
    }

    [Fact]
    public void ConfiguredDetectionRegex_CustomPrefixes_MatchesOwnKeysOnly()
    {
        var format = new ApiKeyFormat(new ApiKeyFormatOptions { LivePrefix = "ctsk_live_", TestPrefix = "ctsk_test_" });
        var live = format.Generate(ApiKeyEnvironment.Live);
        var test = format.Generate(ApiKeyEnvironment.Test);
        var defaultKey = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Live);

        Assert.Matches(format.ConfiguredDetectionRegex, live);
        Assert.Matches(format.ConfiguredDetectionRegex, test);
        Assert.DoesNotMatch(format.ConfiguredDetectionRegex, defaultKey);
        Assert.DoesNotMatch(ApiKeyFormat.DefaultDetectionRegex, live);
    }

    [Fact]
    public void FindKeys_TextWithKeysAndLookalikes_ReturnsOnlyChecksummedKeys()
    {
        var key = ApiKeyFormat.Default.Generate(ApiKeyEnvironment.Live);
        var badChecksum = key[..^1] + (key[^1] == 'a' ? 'b' : 'a');
        var text = $"log line: token={key} other={badChecksum} done";

        Assert.Equal([key], ApiKeyFormat.Default.FindKeys(text));
        Assert.Equal(2, Regex.Matches(text, ApiKeyFormat.DetectionPattern).Count);
    }
}
