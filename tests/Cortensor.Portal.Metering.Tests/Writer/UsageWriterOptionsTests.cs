using Cortensor.Portal.Metering.Writer;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.Tests.Writer;

public sealed class UsageWriterOptionsTests
{
    [Fact]
    public void Defaults_MatchDocumentedValues()
    {
        var options = new UsageWriterOptions();

        Assert.Equal(100_000, options.QueueCapacity);
        Assert.Equal(5_000, options.MaxBatchSize);
        Assert.Equal(TimeSpan.FromMilliseconds(200), options.MaxBatchDelay);
        Assert.Equal(TimeSpan.FromSeconds(1), options.RetryInitialDelay);
        Assert.Equal(TimeSpan.FromSeconds(30), options.RetryMaxDelay);
        Assert.Equal(Path.Combine(AppContext.BaseDirectory, "App_Data", "spill"), options.SpillDirectory);
        Assert.True(options.JournalEnabled);
        Assert.Equal(TimeSpan.FromMilliseconds(5), options.JournalCommitInterval);
        Assert.Equal(4 * 1024 * 1024, options.JournalSegmentBytes);
        Assert.Equal(TimeSpan.FromSeconds(1), options.JournalProgressInterval);
        Assert.True(new UsageWriterOptionsValidator().Validate(null, options).Succeeded);
        Assert.True(new UsageWriterOptionsCustomValidator().Validate(null, options).Succeeded);
    }

    [Theory]
    [InlineData(0, 5_000, "x")]
    [InlineData(10, 0, "x")]
    [InlineData(10, 5, "")]
    public void GeneratedValidator_OutOfRange_Fails(int queueCapacity, int maxBatchSize, string spillDirectory)
    {
        var options = new UsageWriterOptions { QueueCapacity = queueCapacity, MaxBatchSize = maxBatchSize, SpillDirectory = spillDirectory };

        Assert.True(new UsageWriterOptionsValidator().Validate(null, options).Failed);
        Assert.Throws<OptionsValidationException>(() => UsageWriterOptionsCustomValidator.ThrowIfInvalid(options));
    }

    [Fact]
    public void CustomValidator_ZeroRetryDelay_Fails()
    {
        var options = new UsageWriterOptions { RetryInitialDelay = TimeSpan.Zero };

        var result = new UsageWriterOptionsCustomValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(nameof(UsageWriterOptions.RetryInitialDelay), result.FailureMessage, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0, 4096, 1000, nameof(UsageWriterOptions.JournalCommitInterval))]
    [InlineData(2000, 4096, 1000, nameof(UsageWriterOptions.JournalCommitInterval))]
    [InlineData(5, 1024, 1000, nameof(UsageWriterOptions.JournalSegmentBytes))]
    [InlineData(5, 4096, 0, nameof(UsageWriterOptions.JournalProgressInterval))]
    public void CustomValidator_JournalOutOfRange_FailsNamingTheOption(int commitMs, long segmentBytes, int progressMs, string option)
    {
        var options = new UsageWriterOptions
        {
            JournalCommitInterval = TimeSpan.FromMilliseconds(commitMs),
            JournalSegmentBytes = segmentBytes,
            JournalProgressInterval = TimeSpan.FromMilliseconds(progressMs),
        };

        var result = new UsageWriterOptionsCustomValidator().Validate(null, options);

        Assert.True(result.Failed);
        Assert.Contains(option, result.FailureMessage, StringComparison.Ordinal);
        Assert.Throws<OptionsValidationException>(() => UsageWriterOptionsCustomValidator.ThrowIfInvalid(options));
    }
}
