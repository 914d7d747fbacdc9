using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.RateLimiting;

/// <summary>
/// Checks <see cref="RateLimitingOptions"/>: every limit that is set is above zero and at most one unit per
/// microsecond of its window (defaults, plans, key and org overrides), <see cref="RateLimitingOptions.FallbackReplicas"/> ≥ 1, and
/// <see cref="RateLimitingOptions.ConcurrencySlotTtl"/> and <see cref="RateLimitingOptions.StoreRetryInterval"/> above zero.
/// </summary>
internal sealed class RateLimitingOptionsValidator : IValidateOptions<RateLimitingOptions>
{
    public ValidateOptionsResult Validate(string? name, RateLimitingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new ValidateOptionsResultBuilder();

        ValidateTier(builder, options.Defaults, nameof(RateLimitingOptions.Defaults));
        ValidateMap(builder, options.Plans, nameof(RateLimitingOptions.Plans), static (b, tier, path) => ValidateTier(b, tier, path));
        ValidateMap(builder, options.Keys, nameof(RateLimitingOptions.Keys), static (b, limits, path) => ValidateLimits(b, limits, path));
        ValidateMap(builder, options.Orgs, nameof(RateLimitingOptions.Orgs), static (b, limits, path) => ValidateLimits(b, limits, path));

        if (options.FallbackReplicas < 1)
        {
            builder.AddError("must be at least 1.", nameof(RateLimitingOptions.FallbackReplicas));
        }

        if (options.ConcurrencySlotTtl <= TimeSpan.Zero)
        {
            builder.AddError("must be greater than 0.", nameof(RateLimitingOptions.ConcurrencySlotTtl));
        }

        if (options.StoreRetryInterval <= TimeSpan.Zero)
        {
            builder.AddError("must be greater than 0.", nameof(RateLimitingOptions.StoreRetryInterval));
        }

        if (options.FailureModes is null)
        {
            builder.AddError("is required.", nameof(RateLimitingOptions.FailureModes));
        }
        else
        {
            ValidateMode(builder, options.FailureModes.Requests, nameof(RateLimitFailureModes.Requests));
            ValidateMode(builder, options.FailureModes.Tokens, nameof(RateLimitFailureModes.Tokens));
            ValidateMode(builder, options.FailureModes.Concurrency, nameof(RateLimitFailureModes.Concurrency));
        }

        return builder.Build();
    }

    private static void ValidateMap<T>(ValidateOptionsResultBuilder builder, Dictionary<string, T>? map, string path, Action<ValidateOptionsResultBuilder, T, string> validate)
        where T : class
    {
        if (map is null)
        {
            builder.AddError("is required (it may be empty).", path);
            return;
        }

        foreach (var (id, value) in map)
        {
            var itemPath = $"{path}[{id}]";
            if (value is null)
            {
                builder.AddError("is required.", itemPath);
            }
            else
            {
                validate(builder, value, itemPath);
            }
        }
    }

    private static void ValidateTier(ValidateOptionsResultBuilder builder, RateLimitTier? tier, string path)
    {
        if (tier is null)
        {
            builder.AddError("is required.", path);
            return;
        }

        ValidateLimits(builder, tier.Key, $"{path}.{nameof(RateLimitTier.Key)}");
        ValidateLimits(builder, tier.Org, $"{path}.{nameof(RateLimitTier.Org)}");
    }

    private static void ValidateLimits(ValidateOptionsResultBuilder builder, RateLimitLimits? limits, string path)
    {
        if (limits is null)
        {
            builder.AddError("is required.", path);
            return;
        }

        ValidateLimit(builder, limits.RequestsPerSecond, $"{path}.{nameof(RateLimitLimits.RequestsPerSecond)}", MaxPerSecond);
        ValidateLimit(builder, limits.RequestsPerMinute, $"{path}.{nameof(RateLimitLimits.RequestsPerMinute)}", MaxPerMinute);
        ValidateLimit(builder, limits.TokensPerMinute, $"{path}.{nameof(RateLimitLimits.TokensPerMinute)}", MaxPerMinute);
        ValidateLimit(builder, limits.ConcurrentRequests, $"{path}.{nameof(RateLimitLimits.ConcurrentRequests)}", int.MaxValue);
    }

    // GCRA counts time in microseconds (one unit back every window/quota µs, at least 1): a larger quota would be
    // advertised in RateLimit-Policy but enforced as one unit per microsecond.
    private const int MaxPerSecond = 1_000_000;
    private const int MaxPerMinute = 60_000_000;

    private static void ValidateLimit(ValidateOptionsResultBuilder builder, int? value, string path, int max)
    {
        if (value is <= 0)
        {
            builder.AddError("must be greater than 0 when set.", path);
        }
        else if (value > max)
        {
            builder.AddError($"must be at most {max:N0} (the limiter counts one unit per microsecond at most).", path);
        }
    }

    private static void ValidateMode(ValidateOptionsResultBuilder builder, RateLimitFailureMode mode, string name)
    {
        if (!Enum.IsDefined(mode))
        {
            builder.AddError("must be FailOpen or FailClosed.", $"{nameof(RateLimitingOptions.FailureModes)}.{name}");
        }
    }
}
