using System.Data.Common;
using System.Text.RegularExpressions;

namespace Cortensor.Portal.Cli.Commands.Migrate;

/// <summary>
/// Collects the secret values (Password, Pwd and other secret-looking keys) of the connection strings the CLI was
/// given, and blanks them out of any text it is about to print.
/// </summary>
/// <remarks>
/// <para>Store messages are written never to contain a password, but driver messages and stack traces are not ours,
/// and a connection string given to the wrong option can be quoted back: every line <c>migrate</c> prints goes
/// through <see cref="Apply"/>. Parsing uses the generic <see cref="DbConnectionStringBuilder"/> (the base of
/// NpgsqlConnectionStringBuilder) so a misspelt key such as <c>Pasword=</c> is still recognised instead of failing
/// the parse.</para>
/// <para>What is masked:</para>
/// <list type="bullet">
/// <item>Any non-empty value of a secret-looking key written as <c>key=value</c> (<c>Password=ab</c>,
/// <c>Pwd='x;y'</c>), and the password of a URI's user info (<c>postgresql://user:ab@host</c>), whatever their
/// length and whether or not they were given to <see cref="Add"/>: there the text itself says it is a secret.</item>
/// <item>Elsewhere in the text, remembered secrets of at least <see cref="MinimumFreeTextSecretLength"/> characters.
/// A shorter one turns up by chance in almost any line (a version digit, a port, a letter of a word), so masking it
/// there would garble the output, break scripts that read it and mark places that never held the password; it stays
/// masked wherever the text shows it as a password (the rule above).</item>
/// </list>
/// </remarks>
internal sealed partial class ConnectionStringSecrets
{
    public const string Mask = "***";

    /// <summary>Remembered secrets at least this long are masked wherever they appear (see the remarks for shorter ones).</summary>
    internal const int MinimumFreeTextSecretLength = 3;

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

    /// <summary>Returns <paramref name="text"/> with every secret replaced by <see cref="Mask"/>, by the rules in the remarks.</summary>
    public string Apply(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = SecretPairValue().Replace(text, static m => MaskGroup(m, "value"));
        text = UriPassword().Replace(text, static m => MaskGroup(m, "password"));
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

    /// <summary>The match with its group <paramref name="group"/> replaced by <see cref="Mask"/> when that group is not empty.</summary>
    private static string MaskGroup(Match match, string group)
    {
        if (match.Groups[group] is not { Length: > 0 } secret)
        {
            return match.Value;
        }

        var start = secret.Index - match.Index;
        return string.Concat(match.ValueSpan[..start], Mask, match.ValueSpan[(start + secret.Length)..]);
    }

    private void AddSecret(string value)
    {
        if (value.Length >= MinimumFreeTextSecretLength && !_secrets.Contains(value))
        {
            _secrets.Add(value);
            _secrets.Sort(static (a, b) => b.Length.CompareTo(a.Length)); // longest first, so a secret containing another is masked whole
        }
    }

    [GeneratedRegex(@"(?<key>[^;=]*(?:pass|pasw|pwd|secret|token|credential|api_?key)[^;=]*)=(?<value>[^;]*)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex LooseSecretPair();

    // key=value in printed text where the key's last word looks secret (as IsSecretKey): a quoted value (quotes doubled
    // inside), or an unquoted one up to a separator, white space or quote (a lone leading quote is taken in).
    [GeneratedRegex(@"(?<key>\w*(?:pass|pasw|pwd|secret|token|credential|api[_ ]?key)\w*)\s*=\s*(?<value>'(?:[^']|'')*'|""(?:[^""]|"""")*""|[""']?[^;\s'""]*)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretPairValue();

    // scheme://user:password@ (the password may be empty, then nothing is masked).
    [GeneratedRegex(@"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:(?<password>[^@/\s]*)@", RegexOptions.CultureInvariant)]
    private static partial Regex UriPassword();
}
