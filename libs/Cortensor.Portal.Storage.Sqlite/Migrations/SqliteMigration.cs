using System.Globalization;
using System.Text.RegularExpressions;

namespace Cortensor.Portal.Storage.Sqlite.Migrations;

/// <summary>One embedded migration script, <c>Migrations/V####__description.sql</c>.</summary>
/// <param name="Version">The number after <c>V</c>; versions run in ascending order, starting at 1, without gaps.</param>
/// <param name="Description">The part after <c>__</c>, for example <c>initial</c>.</param>
/// <param name="ResourceName">Manifest resource name of the script.</param>
public sealed partial record SqliteMigration(int Version, string Description, string ResourceName)
{
    private const string ResourcePrefix = "Cortensor.Portal.Storage.Sqlite.Migrations.";

    private static readonly Lazy<IReadOnlyList<SqliteMigration>> Embedded = new(Discover);

    /// <summary>Every migration embedded in this assembly, in version order.</summary>
    public static IReadOnlyList<SqliteMigration> All => Embedded.Value;

    /// <summary>Highest version the code knows (the last of <see cref="All"/>).</summary>
    public static int LatestVersion => All[^1].Version;

    /// <summary>Reads the script text.</summary>
    public string ReadScript()
    {
        using var stream = typeof(SqliteMigration).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"Migration resource '{ResourceName}' is missing.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    internal static IReadOnlyList<SqliteMigration> Discover() => Parse(typeof(SqliteMigration).Assembly.GetManifestResourceNames());

    /// <summary>Picks the migration scripts out of <paramref name="resourceNames"/> and checks they form 1, 2, 3, ….</summary>
    internal static IReadOnlyList<SqliteMigration> Parse(IEnumerable<string> resourceNames)
    {
        var migrations = new List<SqliteMigration>();
        foreach (var name in resourceNames)
        {
            if (!name.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            {
                continue;
            }

            var match = ScriptName().Match(name[ResourcePrefix.Length..]);
            if (!match.Success)
            {
                throw new InvalidOperationException($"Embedded migration '{name}' does not follow the pattern V0001__description.sql.");
            }

            migrations.Add(new SqliteMigration(
                int.Parse(match.Groups["version"].ValueSpan, NumberStyles.None, CultureInfo.InvariantCulture),
                match.Groups["description"].Value,
                name));
        }

        migrations.Sort(static (a, b) => a.Version.CompareTo(b.Version));
        for (var i = 0; i < migrations.Count; i++)
        {
            if (migrations[i].Version != i + 1)
            {
                throw new InvalidOperationException(
                    $"Embedded migrations must be numbered 1, 2, 3, … without gaps or duplicates; found version {migrations[i].Version} at position {i + 1}.");
            }
        }

        if (migrations.Count == 0)
        {
            throw new InvalidOperationException("No embedded migrations were found.");
        }

        return migrations;
    }

    [GeneratedRegex(@"^V(?<version>[0-9]{4})__(?<description>[A-Za-z0-9_]+)\.sql$", RegexOptions.CultureInvariant)]
    private static partial Regex ScriptName();
}
