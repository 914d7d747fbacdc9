using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.Writer;

/// <summary>Checks the DataAnnotations on <see cref="UsageWriterOptions"/>; the body is source-generated.</summary>
[OptionsValidator]
internal sealed partial class UsageWriterOptionsValidator : IValidateOptions<UsageWriterOptions>;

/// <summary>Checks the <see cref="TimeSpan"/> values and cross-field rules of <see cref="UsageWriterOptions"/>.</summary>
internal sealed class UsageWriterOptionsCustomValidator : IValidateOptions<UsageWriterOptions>
{
    private static readonly TimeSpan MaxDelay = TimeSpan.FromHours(1);

    public ValidateOptionsResult Validate(string? name, UsageWriterOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new ValidateOptionsResultBuilder();

        if (options.MaxBatchDelay < TimeSpan.Zero || options.MaxBatchDelay > MaxDelay)
        {
            builder.AddError("must be between 0 and 1 hour.", nameof(UsageWriterOptions.MaxBatchDelay));
        }

        if (options.RetryInitialDelay <= TimeSpan.Zero || options.RetryInitialDelay > MaxDelay)
        {
            builder.AddError("must be greater than 0 and at most 1 hour.", nameof(UsageWriterOptions.RetryInitialDelay));
        }

        if (options.RetryMaxDelay < options.RetryInitialDelay || options.RetryMaxDelay > MaxDelay)
        {
            builder.AddError(
                $"must be at least {nameof(UsageWriterOptions.RetryInitialDelay)} and at most 1 hour.",
                nameof(UsageWriterOptions.RetryMaxDelay));
        }

        if (options.JournalCommitInterval < TimeSpan.FromMilliseconds(1) || options.JournalCommitInterval > TimeSpan.FromSeconds(1))
        {
            builder.AddError("must be between 1 millisecond and 1 second.", nameof(UsageWriterOptions.JournalCommitInterval));
        }

        if (options.JournalSegmentBytes < 4 * 1024 || options.JournalSegmentBytes > 1024L * 1024 * 1024)
        {
            builder.AddError("must be between 4 KiB (4096) and 1 GiB.", nameof(UsageWriterOptions.JournalSegmentBytes));
        }

        if (options.JournalProgressInterval <= TimeSpan.Zero || options.JournalProgressInterval > MaxDelay)
        {
            builder.AddError("must be greater than 0 and at most 1 hour.", nameof(UsageWriterOptions.JournalProgressInterval));
        }

        if (string.IsNullOrWhiteSpace(options.SpillDirectory))
        {
            builder.AddError("must name a folder.", nameof(UsageWriterOptions.SpillDirectory));
        }

        return builder.Build();
    }

    /// <summary>Runs the generated and the hand-written validator; throws <see cref="OptionsValidationException"/> on failure.</summary>
    public static void ThrowIfInvalid(UsageWriterOptions options)
    {
        var generated = new UsageWriterOptionsValidator().Validate(Options.DefaultName, options);
        var custom = new UsageWriterOptionsCustomValidator().Validate(Options.DefaultName, options);
        var failures = (generated.Failures ?? []).Concat(custom.Failures ?? []).ToList();
        if (failures.Count > 0)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(UsageWriterOptions), failures);
        }
    }
}
