using System.ComponentModel.DataAnnotations;

namespace Cortensor.Portal.Storage.Sqlite.Configuration;

/// <summary>Where the embedded SQLite database lives and whether it is migrated at start-up.</summary>
public sealed class SqliteStorageOptions
{
    /// <summary>
    /// Path of the database file, for example <c>&lt;content root&gt;/App_Data/portal.db</c>. A relative path is
    /// resolved against the current directory. The folder is created when missing.
    /// </summary>
    /// <value>The default value is <see langword="null"/>; the option is required.</value>
    [Required]
    public string? DatabasePath { get; set; }

    /// <summary>
    /// Whether the hosted migration service applies pending migrations before any other hosted service starts.
    /// When <see langword="false"/> it only checks that the database is exactly at the version the code knows.
    /// </summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool ApplyMigrationsOnStart { get; set; } = true;
}
