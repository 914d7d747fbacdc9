using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Sqlite.Configuration;

/// <summary>Data-annotation checks of <see cref="SqliteStorageOptions"/>, generated.</summary>
[OptionsValidator]
internal sealed partial class SqliteStorageOptionsValidator : IValidateOptions<SqliteStorageOptions>;

/// <summary>Checks that <see cref="SqliteStorageOptions.DatabasePath"/> is a usable file path and not a connection string.</summary>
internal sealed class SqliteStoragePathValidator : IValidateOptions<SqliteStorageOptions>
{
    public ValidateOptionsResult Validate(string? name, SqliteStorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failure = GetFailure(options.DatabasePath);
        return failure is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failure);
    }

    /// <summary>Why <paramref name="path"/> cannot be used, or <see langword="null"/> when it can.</summary>
    public static string? GetFailure(string? path)
    {
        const string Name = nameof(SqliteStorageOptions) + "." + nameof(SqliteStorageOptions.DatabasePath);
        if (string.IsNullOrWhiteSpace(path))
        {
            return $"{Name} is required: the path of the SQLite database file, for example App_Data/portal.db.";
        }

        if (path.Contains('=', StringComparison.Ordinal) && path.Contains(';', StringComparison.Ordinal))
        {
            return $"{Name} must be a file path, not a connection string ('{path}').";
        }

        if (path.Equals(":memory:", StringComparison.OrdinalIgnoreCase) || path.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            return $"{Name} must be a file path ('{path}' is not); the durable store needs a file.";
        }

        if (path.IndexOfAny(Path.GetInvalidPathChars()) >= 0)
        {
            return $"{Name} contains characters that are not valid in a path ('{path}').";
        }

        if (Path.EndsInDirectorySeparator(path))
        {
            return $"{Name} names a folder ('{path}'); give the database file name too, for example '{Path.Combine(path, "portal.db")}'.";
        }

        return null;
    }
}
