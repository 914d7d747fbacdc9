using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Storage.Postgres.Configuration;

/// <summary>Checks <see cref="PostgresStorageOptions"/>; messages never contain the connection string.</summary>
internal sealed class PostgresStorageOptionsValidator : IValidateOptions<PostgresStorageOptions>
{
    public const int MaxMonthsAhead = 24;

    public const int MaxRetentionMonths = 1200;

    public const int MaxUsageWriteConnections = 8;

    public ValidateOptionsResult Validate(string? name, PostgresStorageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = GetFailures(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    public static List<string> GetFailures(PostgresStorageOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            failures.Add($"{nameof(PostgresStorageOptions.ConnectionString)} is required (Host=…;Port=…;Database=…;Username=…;Password=…).");
        }
        else if (options.ConnectionString.TrimStart().StartsWith("postgres", StringComparison.OrdinalIgnoreCase)
            && options.ConnectionString.Contains("://", StringComparison.Ordinal))
        {
            failures.Add($"{nameof(PostgresStorageOptions.ConnectionString)} is a postgresql:// URI, which Npgsql does not accept; convert it to Host=…;Port=…;Database=…;Username=…;Password=… (see the Cortensor.Portal.Storage.Postgres README).");
        }

        if (!PostgresIdentifier.IsValidSchemaName(options.Schema))
        {
            failures.Add($"{nameof(PostgresStorageOptions.Schema)} must be 1 to {PostgresStorageOptions.MaxSchemaLength} characters of lowercase letters, digits and '_', start with a letter or '_', and not start with 'pg_'.");
        }

        if (options.UsageRetentionMonths is < 0 or > MaxRetentionMonths)
        {
            failures.Add($"{nameof(PostgresStorageOptions.UsageRetentionMonths)} must be 0 (keep forever) to {MaxRetentionMonths}.");
        }

        if (options.PartitionMonthsAhead is < 0 or > MaxMonthsAhead)
        {
            failures.Add($"{nameof(PostgresStorageOptions.PartitionMonthsAhead)} must be 0 to {MaxMonthsAhead}.");
        }

        if (options.UsageWriteConnections is < 1 or > MaxUsageWriteConnections)
        {
            failures.Add($"{nameof(PostgresStorageOptions.UsageWriteConnections)} must be 1 to {MaxUsageWriteConnections}.");
        }

        return failures;
    }
}
