namespace Cortensor.Portal.Keys.Format;

/// <summary>
/// Public key identifiers: <c>key_</c> plus 24 base62 characters from the CSPRNG (about 143 bits).
/// They are independent of the secret, so showing or logging them reveals nothing about it.
/// </summary>
public static class ApiKeyIds
{
    public const string Prefix = "key_";

    public const int RandomLength = 24;

    public const int Length = 28;

    public static string NewKeyId() =>
        string.Create(Length, 0, static (span, _) =>
        {
            Prefix.CopyTo(span);
            Base62.FillRandom(span[Prefix.Length..]);
        });

    /// <summary>Whether <paramref name="keyId"/> has the shape of a key id (prefix, length, alphabet).</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> keyId) =>
        keyId.Length == Length
        && keyId.StartsWith(Prefix, StringComparison.Ordinal)
        && !keyId[Prefix.Length..].ContainsAnyExcept(Base62.Characters);
}
