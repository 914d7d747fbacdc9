namespace Cortensor.Portal.Storage.Postgres.Configuration;

/// <summary>Settings of the Postgres durable store. Validated when the host starts.</summary>
public sealed class PostgresStorageOptions
{
    /// <summary>The schema used when <see cref="Schema"/> is not set.</summary>
    public const string DefaultSchema = "portal";

    /// <summary>Longest schema name Postgres keeps without truncating (NAMEDATALEN - 1).</summary>
    public const int MaxSchemaLength = 63;

    /// <summary>
    /// Npgsql connection string (<c>Host=…;Port=…;Database=…;Username=…;Password=…</c>). A <c>postgresql://</c>
    /// URI is not accepted by Npgsql; convert it first (see the package README).
    /// </summary>
    /// <value>The default value is <see langword="null"/>; a value is required.</value>
    public string? ConnectionString { get; set; }

    /// <summary>
    /// Schema holding every Portal table. Lowercase letters, digits and <c>_</c>, starting with a letter or
    /// <c>_</c>, at most 63 characters, not starting with <c>pg_</c>. Always written as a quoted identifier.
    /// </summary>
    /// <value>The default value is <c>portal</c>.</value>
    public string Schema { get; set; } = DefaultSchema;

    /// <summary>
    /// Whether the hosted service applies pending migrations at start-up. When <see langword="false"/>, start-up
    /// only checks that the database is at the version this code expects and fails otherwise.
    /// </summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool ApplyMigrationsOnStart { get; set; } = true;

    /// <summary>
    /// Months of usage events and request logs to keep. Monthly partitions that end before
    /// <c>now - UsageRetentionMonths</c> are dropped by partition maintenance; the current month is never
    /// dropped. <c>0</c> keeps everything.
    /// </summary>
    /// <value>The default value is <c>13</c>.</value>
    public int UsageRetentionMonths { get; set; } = 13;

    /// <summary>How many months after the current one get their partitions created in advance (0 to 24).</summary>
    /// <value>The default value is <c>2</c>.</value>
    public int PartitionMonthsAhead { get; set; } = 2;

    /// <summary>
    /// How many connections <c>PostgresUsageStore</c> writes a large usage batch over at once (1 to 8). Each part
    /// is its own transaction on its own server process, so the server inserts on several cores; a batch is split
    /// only when every part gets at least 1,000 rows. <c>1</c> writes every batch in one transaction.
    /// </summary>
    /// <value>The default value is <c>2</c>.</value>
    public int UsageWriteConnections { get; set; } = 2;
}
