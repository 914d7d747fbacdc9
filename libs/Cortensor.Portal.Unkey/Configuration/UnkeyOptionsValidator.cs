using System.Globalization;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Unkey.Configuration;

/// <summary>Checks the DataAnnotations on <see cref="UnkeyOptions"/>; the body is source-generated.</summary>
[OptionsValidator]
internal sealed partial class UnkeyOptionsValidator : IValidateOptions<UnkeyOptions>;

/// <summary>
/// Checks what attributes cannot: the base URL, the API id's shape, the time spans and the rate limit names. Messages
/// name the offending setting and never repeat the root key.
/// </summary>
internal sealed class UnkeyOptionsCustomValidator : IValidateOptions<UnkeyOptions>
{
    private static readonly TimeSpan MinTimeout = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(5);

    public ValidateOptionsResult Validate(string? name, UnkeyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var builder = new ValidateOptionsResultBuilder();

        if (options.BaseUrl is not { IsAbsoluteUri: true } url || (url.Scheme != Uri.UriSchemeHttps && url.Scheme != Uri.UriSchemeHttp))
        {
            builder.AddError("must be an absolute http(s) URL, for example https://api.unkey.com.", nameof(UnkeyOptions.BaseUrl));
        }

        if (!string.IsNullOrEmpty(options.ApiId) && !IsIdentifier(options.ApiId, 3, 255))
        {
            builder.AddError("must be 3 to 255 characters of letters, digits and '_' (for example api_1234).", nameof(UnkeyOptions.ApiId));
        }

        if (!string.IsNullOrEmpty(options.RootKey) && options.RootKey.AsSpan().ContainsAny(" \t\r\n"))
        {
            builder.AddError("must not contain whitespace.", nameof(UnkeyOptions.RootKey));
        }

        CheckRange(builder, options.AttemptTimeout, MinTimeout, MaxTimeout, nameof(UnkeyOptions.AttemptTimeout));
        CheckRange(builder, options.TotalTimeout, MinTimeout, MaxTimeout, nameof(UnkeyOptions.TotalTimeout));
        if (options.TotalTimeout < options.AttemptTimeout)
        {
            builder.AddError($"must not be shorter than {nameof(UnkeyOptions.AttemptTimeout)}.", nameof(UnkeyOptions.TotalTimeout));
        }

        CheckRange(builder, options.RetryDelay, TimeSpan.Zero, TimeSpan.FromSeconds(10), nameof(UnkeyOptions.RetryDelay));
        CheckRange(builder, options.CircuitBreakerSamplingDuration, TimeSpan.FromSeconds(0.5), TimeSpan.FromDays(1), nameof(UnkeyOptions.CircuitBreakerSamplingDuration));
        CheckRange(builder, options.CircuitBreakerBreakDuration, TimeSpan.FromSeconds(0.5), TimeSpan.FromDays(1), nameof(UnkeyOptions.CircuitBreakerBreakDuration));
        CheckRange(builder, options.ServeStaleFor, TimeSpan.Zero, TimeSpan.FromDays(1), nameof(UnkeyOptions.ServeStaleFor));
        CheckRange(builder, options.UnavailableRetryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1), nameof(UnkeyOptions.UnavailableRetryAfter));
        CheckRange(builder, options.CacheTtl, TimeSpan.Zero, TimeSpan.FromHours(1), nameof(UnkeyOptions.CacheTtl));
        CheckRange(builder, options.NotFoundSpikeWindow, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1), nameof(UnkeyOptions.NotFoundSpikeWindow));
        CheckRange(builder, options.ProbeInterval, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1), nameof(UnkeyOptions.ProbeInterval));

        for (var i = 0; i < options.RateLimits.Count; i++)
        {
            var check = options.RateLimits[i];
            var path = string.Create(CultureInfo.InvariantCulture, $"{nameof(UnkeyOptions.RateLimits)}[{i}]");
            if (check is null)
            {
                builder.AddError("must not be null.", path);
                continue;
            }

            if (check.Name is not { Length: >= 3 and <= 255 })
            {
                builder.AddError("Name must be 3 to 255 characters.", path);
            }

            if ((check.Limit is null) != (check.Duration is null))
            {
                builder.AddError("Limit and Duration go together: give both (an ad-hoc limit) or neither (a limit configured in Unkey).", path);
            }
            else if (check.Duration is { } duration && duration < TimeSpan.FromSeconds(1))
            {
                builder.AddError("Duration must be at least 1 second.", path);
            }

            // keys.createKey's ratelimits: name 3–128, limit ≥ 1, duration ≥ 1000 ms (spec/common/RatelimitRequest.yaml).
            if (check.AttachToIssuedKeys && (check.Limit is not >= 1 || check.Duration is null || check.Name is not { Length: <= 128 }))
            {
                builder.AddError("AttachToIssuedKeys needs a Limit of at least 1, a Duration and a Name of at most 128 characters (Unkey's limits for a key's rate limit).", path);
            }
        }

        return builder.Build();
    }

    internal static bool IsIdentifier(string value, int minLength, int maxLength)
    {
        if (value.Length < minLength || value.Length > maxLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_')
            {
                return false;
            }
        }

        return true;
    }

    private static void CheckRange(ValidateOptionsResultBuilder builder, TimeSpan value, TimeSpan min, TimeSpan max, string name)
    {
        if (value < min || value > max)
        {
            builder.AddError(string.Create(CultureInfo.InvariantCulture, $"must be between {min} and {max}."), name);
        }
    }
}
