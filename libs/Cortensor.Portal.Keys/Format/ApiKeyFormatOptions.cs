namespace Cortensor.Portal.Keys.Format;

/// <summary>
/// Prefixes of Portal API keys. A prefix is 3 to 16 characters of lowercase letters, digits and
/// underscores and ends with <c>_</c>; the two prefixes must differ and neither may start the other.
/// </summary>
/// <remarks>
/// The defaults follow the spec (<c>pk_live_</c>/<c>pk_test_</c>). Secret scanners treat <c>pk_</c> as a
/// Stripe <em>publishable</em> key and skip it, so operators should either register
/// <see cref="ApiKeyFormat.DetectionPattern"/> with their scanner or pick a secret-looking prefix such as
/// <c>ctsk_live_</c>/<c>ctsk_test_</c>. Changing the prefixes invalidates every key already issued.
/// </remarks>
public sealed class ApiKeyFormatOptions
{
    public const string DefaultLivePrefix = "pk_live_";

    public const string DefaultTestPrefix = "pk_test_";

    public const int MinPrefixLength = 3;

    public const int MaxPrefixLength = 16;

    /// <summary>Prefix of live (billing) keys.</summary>
    /// <value>The default value is <c>pk_live_</c>.</value>
    public string LivePrefix { get; set; } = DefaultLivePrefix;

    /// <summary>Prefix of test (development) keys.</summary>
    /// <value>The default value is <c>pk_test_</c>.</value>
    public string TestPrefix { get; set; } = DefaultTestPrefix;
}
