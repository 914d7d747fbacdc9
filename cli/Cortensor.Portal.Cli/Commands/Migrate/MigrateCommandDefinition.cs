using System.CommandLine;

namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>
/// <c>cortensor-portal migrate</c>: bring a Portal database to the schema this version knows, for operators who turn
/// migrations at start-up off (<c>ApplyMigrationsOnStart=false</c>) or run them from a deploy pipeline.
/// </summary>
internal sealed class MigrateCommandDefinition : Command
{
    public MigrateCommandDefinition()
        : base("migrate", "Apply the database migrations this version knows (safe to run from several places at once).")
    {
        Options.Add(Postgres);
        Options.Add(Schema);
        Options.Add(Sqlite);
        Options.Add(Status);
        Validators.Add(result =>
        {
            var postgres = result.GetValue(Postgres);
            var sqlite = result.GetValue(Sqlite);
            if (string.IsNullOrWhiteSpace(postgres) == string.IsNullOrWhiteSpace(sqlite))
            {
                result.AddError("Give exactly one of --postgres or --sqlite.");
            }
        });
        SetAction((parseResult, cancellationToken) => new MigrateAction(this, parseResult).RunAsync(cancellationToken));
    }

    public Option<string?> Postgres { get; } = new("--postgres")
    {
        Description = "Npgsql connection string (use a direct or session-pooler connection on Supabase). Also read from PORTAL_POSTGRES.",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("PORTAL_POSTGRES"),
    };

    public Option<string> Schema { get; } = new("--schema")
    {
        Description = "Postgres schema of the Portal tables.",
        DefaultValueFactory = _ => "portal",
    };

    public Option<string?> Sqlite { get; } = new("--sqlite") { Description = "Path of the embedded SQLite database file." };

    public Option<bool> Status { get; } = new("--status") { Description = "Only print the database's schema version and the latest one; change nothing." };
}
