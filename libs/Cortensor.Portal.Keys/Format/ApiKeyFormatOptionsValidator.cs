using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Keys.Format;

/// <summary>Checks the prefix rules of <see cref="ApiKeyFormatOptions"/>.</summary>
internal sealed class ApiKeyFormatOptionsValidator : IValidateOptions<ApiKeyFormatOptions>
{
    public ValidateOptionsResult Validate(string? name, ApiKeyFormatOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = GetFailures(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    public static List<string> GetFailures(ApiKeyFormatOptions options)
    {
        var failures = new List<string>();
        var liveValid = CheckPrefix(nameof(ApiKeyFormatOptions.LivePrefix), options.LivePrefix, failures);
        var testValid = CheckPrefix(nameof(ApiKeyFormatOptions.TestPrefix), options.TestPrefix, failures);

        if (liveValid && testValid)
        {
            if (string.Equals(options.LivePrefix, options.TestPrefix, StringComparison.Ordinal))
            {
                failures.Add($"{nameof(ApiKeyFormatOptions.LivePrefix)} and {nameof(ApiKeyFormatOptions.TestPrefix)} must differ.");
            }
            else if (options.LivePrefix.StartsWith(options.TestPrefix, StringComparison.Ordinal)
                || options.TestPrefix.StartsWith(options.LivePrefix, StringComparison.Ordinal))
            {
                failures.Add($"Neither {nameof(ApiKeyFormatOptions.LivePrefix)} nor {nameof(ApiKeyFormatOptions.TestPrefix)} may be a prefix of the other.");
            }
        }

        return failures;
    }

    private static bool CheckPrefix(string propertyName, string? prefix, List<string> failures)
    {
        if (prefix is null
            || prefix.Length < ApiKeyFormatOptions.MinPrefixLength
            || prefix.Length > ApiKeyFormatOptions.MaxPrefixLength)
        {
            failures.Add($"{propertyName} must be {ApiKeyFormatOptions.MinPrefixLength} to {ApiKeyFormatOptions.MaxPrefixLength} characters long.");
            return false;
        }

        foreach (var c in prefix)
        {
            if (!char.IsAsciiLetterLower(c) && !char.IsAsciiDigit(c) && c != '_')
            {
                failures.Add($"{propertyName} may contain only lowercase letters, digits and '_'.");
                return false;
            }
        }

        if (prefix[^1] != '_')
        {
            failures.Add($"{propertyName} must end with '_'.");
            return false;
        }

        return true;
    }
}
