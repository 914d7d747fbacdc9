namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>Exit codes of <c>cortensor-portal migrate</c>, listed in its help so CI can gate on them.</summary>
internal static class MigrateExitCodes
{
    /// <summary>Migrated, or (with --status/--check) the database is at the version this release knows.</summary>
    public const int Ok = 0;

    /// <summary>Bad or missing options; System.CommandLine also returns 1 for parse errors.</summary>
    public const int UsageError = 1;

    /// <summary>The database cannot be used: unreachable, login refused, missing file or database, SQL error.</summary>
    public const int DatabaseError = 2;

    /// <summary>--check: migrations are pending (the database is behind this release).</summary>
    public const int Behind = 3;

    /// <summary>The database was migrated by a newer release than this one.</summary>
    public const int Newer = 4;
}
