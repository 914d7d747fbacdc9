namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>
/// Recognizes router keys that are instructions to a person rather than keys: the example file's
/// <c>set-me-from-a-secret-store</c>, <c>changeme</c>, <c>&lt;router key&gt;</c>, <c>${ROUTER_KEY}</c>, <c>TODO</c>,
/// <c>xxxx</c>. Such a key passes every other check and only fails at request time (401 from the router, 502 to the
/// customer), so the fleet refuses it on start instead.
/// </summary>
/// <remarks>
/// The rule errs toward letting keys through: it matches whole words people type in place of a key, never parts of
/// random strings, so a generated key (hex, base64, UUID) or a router's own default (<c>default-dev-token</c>) passes.
/// Matching ignores case and every character that is not a letter or digit.
/// <para>
/// OpenAI-compatible upstreams get only the unmistakable forms (instructions and unfilled templates). A vLLM server
/// started without <c>--api-key</c> accepts any key, and its documentation has clients send <c>EMPTY</c>; filler
/// such as <c>none</c>, <c>empty</c>, <c>dummy</c> or <c>xxxx</c> is a working value there, not a mistake.
/// </para>
/// </remarks>
internal static class RouterKeyPlaceholders
{
    // The whole key, once lowercased and stripped of separators: words that only an instruction is.
    private static readonly HashSet<string> InstructionWords = new(StringComparer.Ordinal)
    {
        "todo", "tbd", "fixme", "placeholder", "changeme", "changeit", "changethis", "replaceme", "setme", "fillme",
    };

    // Words that stand in for a key, but that an upstream which ignores keys accepts (vLLM's documented "EMPTY").
    private static readonly HashSet<string> FillerWords = new(StringComparer.Ordinal)
    {
        "secret", "apikey", "routerkey", "key", "token", "password", "none", "null", "undefined", "empty", "redacted",
        "example", "sample", "dummy",
    };

    // Beginnings that only an instruction has: "set-me-from-a-secret-store", "change-me-please", "your-router-key".
    private static readonly string[] Prefixes =
    [
        "setme", "changeme", "replaceme", "replacewith", "fillme", "fillin", "putyour", "insertyour", "enteryour",
        "pasteyour", "addyour", "yourapikey", "yourkey", "yourrouterkey", "yoursecret", "yourtoken",
    ];

    /// <summary>True when <paramref name="key"/> is a placeholder for a router speaking <paramref name="protocol"/>.</summary>
    public static bool IsPlaceholder(string key, RouterProtocol protocol)
    {
        ArgumentNullException.ThrowIfNull(key);
        var trimmed = key.Trim();
        if (trimmed.Length == 0)
        {
            return false; // empty is a missing key, reported on its own
        }

        // "<router key>", "{{ROUTER_KEY}}", "${ROUTER_KEY}", "[key]", "%ROUTER_KEY%": a template nobody filled in.
        if ((trimmed[0] == '<' && trimmed[^1] == '>')
            || (trimmed[0] == '{' && trimmed[^1] == '}')
            || (trimmed.StartsWith("${", StringComparison.Ordinal) && trimmed[^1] == '}')
            || (trimmed[0] == '[' && trimmed[^1] == ']')
            || (trimmed.Length > 2 && trimmed[0] == '%' && trimmed[^1] == '%'))
        {
            return true;
        }

        var normalized = Normalize(trimmed);

        // Cortensor routers check the key, so filler never works there: "...", "***", "xxxx", "XXXX-XXXX", "…", "none".
        if (protocol == RouterProtocol.Cortensor
            && (normalized.Length == 0 || normalized.All(static c => c == 'x') || FillerWords.Contains(normalized)))
        {
            return true;
        }

        if (InstructionWords.Contains(normalized))
        {
            return true;
        }

        foreach (var prefix in Prefixes)
        {
            if (normalized.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        // "api-key-here", "router_token_here", "paste-secret-here".
        return normalized.EndsWith("here", StringComparison.Ordinal)
            && (normalized.Contains("key", StringComparison.Ordinal) || normalized.Contains("token", StringComparison.Ordinal) || normalized.Contains("secret", StringComparison.Ordinal));
    }

    private static string Normalize(string key)
    {
        Span<char> buffer = key.Length <= 256 ? stackalloc char[key.Length] : new char[key.Length];
        var length = 0;
        foreach (var c in key)
        {
            if (char.IsLetterOrDigit(c))
            {
                buffer[length++] = char.ToLowerInvariant(c);
            }
        }

        return new string(buffer[..length]);
    }
}
