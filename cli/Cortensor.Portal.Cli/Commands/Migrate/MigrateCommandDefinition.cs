using System.CommandLine;

namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>
/// <c>cortensor-portal migrate</c>: bring a Portal database to the schema this version knows, for operators who turn
/// migrations at start-up off (<c>ApplyMigrationsOnStart=false</c>) or run them from a deploy pipeline.
/// </summary>
/// <remarks>
/// No option has a default taken from the environment: System.CommandLine prints defaults in help and in parse
/// errors, and a connection string there would put its password into CI logs. The variables are read by
/// <see cref="MigrateTarget.Resolve"/> when the command runs, and help only names them.
/// </remarks>
internal sealed class MigrateCommandDefinition : Command
{
    private const string HelpText =
        "Apply the database migrations this version knows (safe to run from several places at once).\n"
        + "Database: --postgres or --sqlite; otherwise, like the host, the Postgres store when "
        + MigrateTarget.PortalPostgresVariable + " or " + MigrateTarget.HostConnectionStringVariable + " is set (in that order), else the SQLite file "
        + MigrateTarget.HostSqliteFileName + " in " + MigrateTarget.HostDataDirectoryVariable + ". An option always wins over a variable.\n"
        + "Exit codes: 0 migrated, or current (--status, --check); 1 usage error; 2 the database cannot be used "
        + "(unreachable, login refused, missing file or database); 3 --check: migrations pending; 4 the database is newer than this version.";

    public MigrateCommandDefinition(Func<string, string?> environment)
        : base("migrate", HelpText)
    {
        ArgumentNullException.ThrowIfNull(environment);
        Options.Add(Postgres);
        Options.Add(Schema);
        Options.Add(Sqlite);
        Options.Add(Status);
        Options.Add(Check);
        Options.Add(Verbose);
        Validators.Add(result =>
        {
            if (!string.IsNullOrWhiteSpace(result.GetValue(Postgres)) && !string.IsNullOrWhiteSpace(result.GetValue(Sqlite)))
            {
                result.AddError("Give only one of --postgres or --sqlite.");
            }

            if (result.GetValue(Status) && result.GetValue(Check))
            {
                result.AddError("Give only one of --status or --check.");
            }
        });
        SetAction((parseResult, cancellationToken) => new MigrateAction(this, parseResult, environment).RunAsync(cancellationToken));
    }

    public Option<string?> Postgres { get; } = new("--postgres")
    {
        Description = "Npgsql connection string (Host=…;Database=…;Username=…;Password=…; on Supabase a direct or session-pooler connection). "
            + "Default: $" + MigrateTarget.PortalPostgresVariable + ", then $" + MigrateTarget.HostConnectionStringVariable + ".",
        HelpName = "connection-string",
    };

    public Option<string?> Schema { get; } = new("--schema")
    {
        Description = "Postgres schema of the Portal tables. Default: $" + MigrateTarget.HostSchemaVariable + ", else portal.",
        HelpName = "name",
    };

    public Option<string?> Sqlite { get; } = new("--sqlite")
    {
        Description = "Path of the embedded SQLite database file. Default (when no Postgres variable is set): "
            + MigrateTarget.HostSqliteFileName + " in $" + MigrateTarget.HostDataDirectoryVariable + ".",
        HelpName = "path",
    };

    public Option<bool> Status { get; } = new("--status")
    {
        Description = "Only print the database's schema version and the latest one; change and create nothing.",
    };

    public Option<bool> Check { get; } = new("--check")
    {
        Description = "Like --status, and exit 3 when migrations are pending (4 when the database is newer), so CI can gate on it.",
    };

    public Option<bool> Verbose { get; } = new("--verbose")
    {
        Description = "On failure, also print the exception's details and stack trace (secrets masked).",
    };
}
