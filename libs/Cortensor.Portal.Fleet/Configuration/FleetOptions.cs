using System.ComponentModel.DataAnnotations;
using Cortensor.Portal.Fleet.Prompts;

namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>
/// Routers, pools and the public model catalog. Bound from configuration (section <c>Cortensor:Fleet</c> in the host).
/// Dictionary keys are ids: router id, pool name, public model alias.
/// </summary>
public sealed class FleetOptions
{
    public const string SectionName = "Cortensor:Fleet";

    /// <summary>
    /// Serve the default catalog from built-in simulated routers when no router, pool or model is configured.
    /// Without it an empty fleet refuses to start, so a missing or mistyped section is never mistaken for a working
    /// one. Meant for development (the host's appsettings.Development.json sets it); a warning is logged on start.
    /// <value>The default value is false.</value>
    /// </summary>
    public bool UseSimulatedRouters { get; set; }

    /// <summary>
    /// The shortest read timeout of any proxy between a customer and a router: the routers' own nginx (its stock
    /// template sets <c>proxy_read_timeout 300s</c>) and the load balancer in front of the portal. A non-stream answer
    /// sends no byte until the router is done, so every pool's HTTP timeout budget (task + precommit + slack) must stay
    /// below it; otherwise a proxy cuts the call first, the client sees the proxy's error, and the router's on-chain
    /// task runs on for nobody. Checked on start. <value>The default value is 300.</value>
    /// </summary>
    [Range(30, 3600)]
    public int ProxyReadTimeoutSeconds { get; set; } = 300;

    /// <summary>
    /// How long a (router, session) member that answered 404 (the router does not know the session, or a proxy
    /// blocks the route) is left out of selection before it is tried again. <value>The default value is 60.</value>
    /// </summary>
    [Range(1, 3600)]
    public int UnknownSessionCooldownSeconds { get; set; } = 60;

    public Dictionary<string, RouterOptions> Routers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public Dictionary<string, PoolOptions> Pools { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Public model catalog: alias → pool and limits. Only aliases are ever shown to customers.</summary>
    public Dictionary<string, ModelOptions> Models { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>Which wire protocol a router speaks.</summary>
public enum RouterProtocol
{
    /// <summary>Cortensor router REST API: <c>POST /api/v{n}/completions[/{sessionId}]</c>.</summary>
    Cortensor,

    /// <summary>An OpenAI-compatible upstream (vLLM, llama.cpp server, Ollama): <c>POST /v1/chat/completions</c>.</summary>
    OpenAICompatible,
}

/// <summary>The two URL forms of a Cortensor router's completion endpoint.</summary>
public enum CortensorUrlForm
{
    /// <summary><c>POST /api/{version}/completions/{sessionId}</c>.</summary>
    Path,

    /// <summary><c>POST /api/{version}/completions</c> with <c>session_id</c> in the body.</summary>
    Body,
}

public sealed class RouterOptions
{
    /// <summary>Base URL, for example <c>http://10.0.0.5:5010</c>. Not needed when <see cref="Simulated"/> is set.</summary>
    public Uri? BaseUrl { get; set; }

    /// <summary>Router bearer key. Never sent to customers, never logged, never stored in the database.</summary>
    public string? ApiKey { get; set; }

    /// <summary>
    /// Where the key is kept instead of <see cref="ApiKey"/>: <c>env:NAME</c>, an environment variable of the portal's
    /// process (for example <c>env:ROUTER_EU_1_KEY</c>), read on start and on every reload. The only form stored fleets
    /// carry (<see cref="RouterKeyReference"/>); a key set in <see cref="ApiKey"/> wins over it.
    /// </summary>
    public string? ApiKeyRef { get; set; }

    /// <summary>The variable <see cref="ApiKey"/> was read from (<see cref="ApiKeyRef"/>), so messages name the right place.</summary>
    internal string? ApiKeyVariable { get; set; }

    public RouterProtocol Protocol { get; set; } = RouterProtocol.Cortensor;

    /// <summary>Router API version segment for Cortensor routers. <value>The default value is <c>v1</c>.</value></summary>
    [RegularExpression("^v[1-9][0-9]?$")]
    public string ApiVersion { get; set; } = "v1";

    /// <summary>
    /// Which completion URL form this Cortensor router is called with. Current routers accept both (installer PR
    /// #226), so the gateway uses exactly one and never retries a 404 on the other: a 404 means the session is unknown
    /// or a proxy blocks the route. <value>The default value is <see cref="CortensorUrlForm.Path"/>.</value>
    /// </summary>
    public CortensorUrlForm UrlForm { get; set; } = CortensorUrlForm.Path;

    public bool Enabled { get; set; } = true;

    /// <summary>Served by the built-in router simulator that the host starts on a loopback port.</summary>
    public bool Simulated { get; set; }

    /// <summary>Knobs of the built-in simulator (latency, quirks) when <see cref="Simulated"/> is set.</summary>
    public SimulatedRouterSettings? Simulator { get; set; }
}

public sealed class PoolOptions
{
    public List<PoolMemberOptions> Members { get; set; } = [];

    public PromptFormat PromptFormat { get; set; } = PromptFormat.ChatML;

    /// <summary>Router <c>prompt_type</c>. When unset: 1 (raw) when this pool templates the prompt itself, else 0.</summary>
    public int? PromptType { get; set; }

    /// <summary>Router-side task timeout sent as <c>timeout</c>. <value>The default value is 120.</value></summary>
    [Range(1, 900)]
    public int TaskTimeoutSeconds { get; set; } = 120;

    /// <summary>Sent as <c>precommit_timeout</c> only when set.</summary>
    [Range(1, 900)]
    public int? PrecommitTimeoutSeconds { get; set; }

    /// <summary>
    /// Added to the task timeout (and precommit timeout) to get the HTTP timeout: the time the router needs after its
    /// own timeout to answer. Task + precommit + slack must stay below <see cref="FleetOptions.ProxyReadTimeoutSeconds"/>.
    /// <value>The default value is 30.</value>
    /// </summary>
    [Range(0, 600)]
    public int HttpTimeoutSlackSeconds { get; set; } = 30;

    /// <summary>Upstream model name for OpenAI-compatible routers (ignored by Cortensor routers).</summary>
    public string? UpstreamModel { get; set; }

    public SamplingDefaults Defaults { get; set; } = new();

    public bool Enabled { get; set; } = true;

    /// <summary>
    /// How the pool's Cortensor routers queue stream tokens. <see cref="RouterQueueMode.Blocking"/> (the routers'
    /// default) mixes concurrent streams of one session, so the gateway opens at most one stream per (router, session)
    /// and queues the rest. <value>The default value is <see cref="RouterQueueMode.Blocking"/>.</value>
    /// </summary>
    public RouterQueueMode RouterQueues { get; set; } = RouterQueueMode.Blocking;

    /// <summary>
    /// With <see cref="RouterQueueMode.Blocking"/>: how many streams may wait for a free (router, session) before
    /// further ones are refused (503). 0 refuses at once. <value>The default value is 32.</value>
    /// </summary>
    public int StreamQueueLength { get; set; } = 32;

    /// <summary>
    /// With <see cref="RouterQueueMode.Blocking"/>: the longest a stream waits for a free (router, session) before it
    /// is refused (503 with Retry-After). <value>The default value is 20.</value>
    /// </summary>
    public int StreamQueueWaitSeconds { get; set; } = 20;
}

/// <summary>How a pool's routers queue the tokens of concurrent streams on one session.</summary>
public enum RouterQueueMode
{
    /// <summary>
    /// The router default (<c>ENABLE_STREAM_QUEUE_NON_BLOCKING=0</c>): concurrent streams on one session share a token
    /// queue and can receive each other's text (installer PR #146). The gateway keeps one open stream per (router, session).
    /// </summary>
    Blocking,

    /// <summary>
    /// The operator runs the routers with <c>ENABLE_STREAM_QUEUE_NON_BLOCKING=1</c>: streams are isolated by the router,
    /// so any number may share a session.
    /// </summary>
    NonBlocking,
}

public sealed class PoolMemberOptions
{
    /// <summary>Router id (a key of <see cref="FleetOptions.Routers"/>).</summary>
    [Required]
    public string Router { get; set; } = "";

    /// <summary>Cortensor session id. Required for Cortensor routers; unused for OpenAI-compatible ones.</summary>
    public long? SessionId { get; set; }

    public bool Enabled { get; set; } = true;
}

/// <summary>Sampling values used when the request leaves them out.</summary>
public sealed class SamplingDefaults
{
    public int MaxTokens { get; set; } = 512;

    public double? Temperature { get; set; }

    public double? TopP { get; set; }

    public int? TopK { get; set; }
}

public sealed class ModelOptions
{
    /// <summary>Pool name (a key of <see cref="FleetOptions.Pools"/>).</summary>
    [Required]
    public string Pool { get; set; } = "";

    /// <summary>Context window in tokens.</summary>
    [Range(1, 10_000_000)]
    public int ContextTokens { get; set; } = 8192;

    /// <summary>Largest completion a request may ask for.</summary>
    [Range(1, 1_000_000)]
    public int MaxOutputTokens { get; set; } = 4096;

    public bool Enabled { get; set; } = true;

    public string OwnedBy { get; set; } = "cortensor";

    /// <summary>Shown as <c>created</c> in <c>/v1/models</c> (Unix seconds). <value>The default is 2026-01-01.</value></summary>
    public long Created { get; set; } = 1_767_225_600;
}
