using System.Collections.Concurrent;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>The two URL forms of a Cortensor router's completion endpoint.</summary>
internal enum CortensorUrlForm
{
    /// <summary><c>POST /api/{version}/completions/{sessionId}</c>.</summary>
    Path,

    /// <summary><c>POST /api/{version}/completions</c> with <c>session_id</c> in the body.</summary>
    Body,
}

/// <summary>
/// Remembers which completion URL form each Cortensor router answers (keyed by router id, base URL and API version),
/// so only the first call to a router pays for the 404 fallback. Thread-safe. Registered as a singleton by
/// <c>AddCortensorRouterClients()</c>, because the typed <see cref="CortensorRouterClient"/> itself is transient.
/// </summary>
public sealed class CortensorUrlFormCache
{
    private readonly ConcurrentDictionary<(string RouterId, string BaseUrl, string ApiVersion), CortensorUrlForm> forms = new();

    /// <summary>Forgets every remembered form (for example after a configuration reload).</summary>
    public void Clear() => forms.Clear();

    internal CortensorUrlForm? Get(RouterTarget target) =>
        forms.TryGetValue(KeyOf(target), out var form) ? form : null;

    internal void Remember(RouterTarget target, CortensorUrlForm form) => forms[KeyOf(target)] = form;

    private static (string, string, string) KeyOf(RouterTarget target) =>
        (target.RouterId, target.BaseUrl.AbsoluteUri, target.ApiVersion);
}
