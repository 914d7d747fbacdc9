using System.Data.Common;
using System.Text.RegularExpressions;

namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>
/// Collects the secret values (Password, Pwd and other secret-looking keys) of the connection strings the CLI was
/// given, and blanks them out of any text it is about to print.
/// </summary>
/// <remarks>
/// Store messages are written never to contain a password, but driver messages and stack traces are not ours, and
/// a connection string given to the wrong option can be quoted back: every error line goes through <see cref="Mask"/>.
/// Parsing uses the generic <see cref="DbConnectionStringBuilder"/> (the base of NpgsqlConnectionStringBuilder) so
/// a misspelt key such as <c>Pasword=</c> is still recognised instead of failing the parse.
/// </remarks>
internal sealed partial class ConnectionStringSecrets
{
    public const string Mask = "***";

    // Shorter values are not masked: replacing every "a" in a message would make it unreadable and hides nothing.
    private const int MinimumSecretLength = 3;

    private static readonly string[] SecretKeyParts = ["pass", "pasw", "pwd", "secret", "token", "credential", "apikey"];

    private readonly List<string> _secrets = [];

    /// <summary>Remembers the secret values in <paramref name="connectionString"/> (ignores null and plain paths).</summary>
    public void Add(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            return;
        }

        // postgresql://user:password@host/db is refused by Npgsql, but people paste it anyway.
        if (Uri.TryCreate(connectionString.Trim(), UriKind.Absolute, out var uri) && uri.UserInfo.Split(':', 2) is [_, var uriPassword])
        {
            AddSecret(Uri.UnescapeDataString(uriPassword));
            AddSecret(uriPassword);
        }

        if (!connectionString.Contains('=', StringComparison.Ordinal))
        {
            return;
        }

        var builder = new DbConnectionStringBuilder();
        try
        {
            builder.ConnectionString = connectionString;
            foreach (string key in builder.Keys)
            {
                if (IsSecretKey(key) && builder[key]?.ToString() is { } value)
                {
                    AddSecret(value);
                }
            }
        }
        catch (ArgumentException)
        {
            // Not parseable as key=value pairs (an unbalanced quote, say): fall back to a loose match.
            foreach (Match match in LooseSecretPair().Matches(connectionString))
            {
                AddSecret(match.Groups["value"].Value.Trim().Trim('\'', '"'));
            }
        }
    }

    /// <summary>Returns <paramref name="text"/> with every remembered secret replaced by <see cref="Mask"/>.</summary>
    public string Apply(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (var secret in _secrets)
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }

        return text;
    }

    internal static bool IsSecretKey(string key)
    {
        var normalized = key.Replace(" ", string.Empty, StringComparison.Ordinal).Replace("_", string.Empty, StringComparison.Ordinal);
        return SecretKeyParts.Any(part => normalized.Contains(part, StringComparison.OrdinalIgnoreCase));
    }

    private void AddSecret(string value)
    {
        if (value.Length >= MinimumSecretLength && !_secrets.Contains(value))
        {
            _secrets.Add(value);
            _secrets.Sort(static (a, b) => b.Length.CompareTo(a.Length)); // longest first, so a secret containing another is masked whole
        }
    }

    [GeneratedRegex(@"(?<key>[^;=]*(?:pass|pasw|pwd|secret|token|credential|api_?key)[^;=]*)=(?<value>[^;]*)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex LooseSecretPair();
}
