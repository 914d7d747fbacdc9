using System.Globalization;
using System.Text.RegularExpressions;

namespace Cortensor.Portal.Storage.Postgres.Migrations;

/// <summary>One versioned migration script; <c>{{schema}}</c> in <see cref="Sql"/> stands for the quoted schema.</summary>
internal sealed record PostgresMigration(int Version, string Description, string Sql)
{
    /// <summary>The placeholder replaced by the quoted schema identifier.</summary>
    public const string SchemaPlaceholder = "{{schema}}";

    /// <summary>The script with the schema substituted.</summary>
    public string Render(string quotedSchema) => Sql.Replace(SchemaPlaceholder, quotedSchema, StringComparison.Ordinal);
}

/// <summary>The scripts embedded in this assembly (<c>Migrations/V0001__initial.sql</c>, …), in version order.</summary>
internal static partial class EmbeddedMigrations
{
    private const string ResourcePrefix = "Cortensor.Portal.Storage.Postgres.Migrations.";

    public static IReadOnlyList<PostgresMigration> All { get; } = Load();

    /// <summary>Checks that versions start at 1 and have no gaps or duplicates.</summary>
    /// <exception cref="InvalidOperationException">The list is not 1, 2, 3, ….</exception>
    public static IReadOnlyList<PostgresMigration> Validate(IEnumerable<PostgresMigration> migrations)
    {
        var ordered = migrations.OrderBy(m => m.Version).ToArray();
        for (var i = 0; i < ordered.Length; i++)
        {
            if (ordered[i].Version != i + 1)
            {
                throw new InvalidOperationException($"Migration versions must run 1, 2, 3, … without gaps; found {ordered[i].Version} at position {i + 1}.");
            }
        }

        return ordered;
    }

    private static PostgresMigration[] Load()
    {
        var assembly = typeof(EmbeddedMigrations).Assembly;
        var migrations = new List<PostgresMigration>();
        foreach (var resource in assembly.GetManifestResourceNames())
        {
            if (!resource.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            {
                continue;
            }

            var match = FileNamePattern().Match(resource[ResourcePrefix.Length..]);
            if (!match.Success)
            {
                continue;
            }

            using var stream = assembly.GetManifestResourceStream(resource)
                ?? throw new InvalidOperationException($"Embedded migration {resource} cannot be read.");
            using var reader = new StreamReader(stream);
            migrations.Add(new PostgresMigration(
                int.Parse(match.Groups["version"].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture),
                match.Groups["description"].Value.Replace('_', ' '),
                reader.ReadToEnd()));
        }

        return [.. Validate(migrations)];
    }

    [GeneratedRegex(@"^V(?<version>\d{4})__(?<description>[A-Za-z0-9_]+)\.sql$", RegexOptions.CultureInvariant)]
    private static partial Regex FileNamePattern();
}
