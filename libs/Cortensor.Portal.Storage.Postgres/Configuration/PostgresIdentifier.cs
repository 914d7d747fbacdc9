namespace Cortensor.Portal.Storage.Postgres.Configuration;

/// <summary>Rules and quoting for the identifiers this store puts into SQL text.</summary>
internal static class PostgresIdentifier
{
    public static bool IsValidSchemaName(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > PostgresStorageOptions.MaxSchemaLength)
        {
            return false;
        }

        if (!char.IsAsciiLetterLower(name[0]) && name[0] != '_')
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterLower(c) && !char.IsAsciiDigit(c) && c != '_')
            {
                return false;
            }
        }

        return !name.StartsWith("pg_", StringComparison.Ordinal);
    }

    /// <summary>Quotes an identifier (doubling embedded quotes), so it is never parsed as SQL.</summary>
    public static string Quote(string identifier)
    {
        ArgumentNullException.ThrowIfNull(identifier);
        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    /// <summary>Quotes <paramref name="schema"/> after checking it, for use as <c>"schema".table</c>.</summary>
    /// <exception cref="ArgumentException">The name breaks the schema rules.</exception>
    public static string QuoteSchema(string schema)
    {
        if (!IsValidSchemaName(schema))
        {
            throw new ArgumentException($"'{schema}' is not a valid schema name: use lowercase letters, digits and '_', at most {PostgresStorageOptions.MaxSchemaLength} characters, not starting with 'pg_'.", nameof(schema));
        }

        return Quote(schema);
    }
}
