using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Cortensor.Portal.Redis.Configuration;

/// <summary>Checks the DataAnnotations on <see cref="RedisOptions"/>; the body is source-generated.</summary>
[OptionsValidator]
internal sealed partial class RedisOptionsValidator : IValidateOptions<RedisOptions>;

/// <summary>Checks the connection string, the key prefix and the time spans of <see cref="RedisOptions"/> (the lease TTL against its renewal interval).</summary>
internal sealed class RedisOptionsCustomValidator : IValidateOptions<RedisOptions>
{
    private static readonly TimeSpan MaxOperationTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan MaxCacheTtl = TimeSpan.FromDays(1);

    // Longer would hold finished requests' slots long enough for other replicas to refuse on them.
    private static readonly TimeSpan MaxReleaseDelay = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan MinLeaseRenewInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxLeaseRenewInterval = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan MaxLeaseTtl = TimeSpan.FromHours(1);

    public ValidateOptionsResult Validate(string? name, RedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new ValidateOptionsResultBuilder();

        if (!string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            try
            {
                var parsed = ConfigurationOptions.Parse(options.ConnectionString);
                if (parsed.EndPoints.Count == 0)
                {
                    builder.AddError("names no endpoint.", nameof(RedisOptions.ConnectionString));
                }
            }
            catch (ArgumentException ex)
            {
                // The message names the offending option, never a password value.
                builder.AddError($"is not a valid StackExchange.Redis configuration string: {ex.Message}", nameof(RedisOptions.ConnectionString));
            }
        }

        if (options.KeyPrefix is null || options.KeyPrefix.AsSpan().ContainsAny('{', '}'))
        {
            builder.AddError("must be set and may not contain '{' or '}'.", nameof(RedisOptions.KeyPrefix));
        }
        else if (options.KeyPrefix.Length > 64)
        {
            builder.AddError("must be at most 64 characters.", nameof(RedisOptions.KeyPrefix));
        }

        if (options.OperationTimeout <= TimeSpan.Zero || options.OperationTimeout > MaxOperationTimeout)
        {
            builder.AddError("must be greater than 0 and at most 30 seconds.", nameof(RedisOptions.OperationTimeout));
        }

        if (options.KeyCacheTtl < TimeSpan.FromMilliseconds(1) || options.KeyCacheTtl > MaxCacheTtl)
        {
            builder.AddError("must be at least 1 ms and at most 1 day.", nameof(RedisOptions.KeyCacheTtl));
        }

        if (options.UnknownKeyTtl < TimeSpan.Zero || options.UnknownKeyTtl > MaxCacheTtl)
        {
            builder.AddError("must be between 0 (not cached) and 1 day.", nameof(RedisOptions.UnknownKeyTtl));
        }

        if (options.ReleaseDelay < TimeSpan.Zero || options.ReleaseDelay > MaxReleaseDelay)
        {
            builder.AddError("must be between 0 (each release sent at once) and 1 second.", nameof(RedisOptions.ReleaseDelay));
        }

        // Renewals more often than this would cost Redis more than the requests they keep; rarer ones need a
        // backstop so long that a crashed replica's slots lock keys out for minutes.
        if (options.ConcurrencyLeaseRenewInterval < MinLeaseRenewInterval || options.ConcurrencyLeaseRenewInterval > MaxLeaseRenewInterval)
        {
            builder.AddError("must be at least 100 ms and at most 5 minutes.", nameof(RedisOptions.ConcurrencyLeaseRenewInterval));
        }

        // A live request keeps its slot through one lost renewal (the next one lands before the lease runs out).
        var minimumTtl = (2 * options.ConcurrencyLeaseRenewInterval) + options.OperationTimeout;
        if (options.ConcurrencyLeaseTtl < minimumTtl || options.ConcurrencyLeaseTtl > MaxLeaseTtl)
        {
            builder.AddError(
                $"must be at least 2 x ConcurrencyLeaseRenewInterval + OperationTimeout ({minimumTtl.TotalMilliseconds:0} ms) and at most 1 hour.",
                nameof(RedisOptions.ConcurrencyLeaseTtl));
        }

        return builder.Build();
    }
}
