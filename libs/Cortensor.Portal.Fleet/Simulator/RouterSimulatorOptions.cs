namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>Which completion URL forms the simulator answers; the other form gets a 404 (route-variant drift).</summary>
public enum SimulatedUrlForms
{
    /// <summary><c>POST /api/{v}/completions/{sessionId}</c> and <c>POST /api/{v}/completions</c> with <c>session_id</c> in the body.</summary>
    Both,

    /// <summary>Only <c>POST /api/{v}/completions/{sessionId}</c>.</summary>
    PathOnly,

    /// <summary>Only <c>POST /api/{v}/completions</c> with <c>session_id</c> in the body.</summary>
    BodyOnly,
}

/// <summary>A session the simulated router knows, bound to one model.</summary>
public sealed class SimulatedSession
{
    public long Id { get; set; }

    /// <summary>Reported as <c>model</c> in completions. <value>The default value is <c>simulated</c>.</value></summary>
    public string Model { get; set; } = RouterSimulatorOptions.DefaultModel;
}

/// <summary>
/// Behaviour of the fake Cortensor router (<see cref="RouterSimulatorEndpointRouteBuilderExtensions.MapRouterSimulator"/>,
/// <see cref="RouterSimulatorServer"/>). Every property is read again on each request, so tests can flip quirks while the
/// simulator runs. Not meant for configuration binding (<see cref="TimeProvider"/> is not bindable); map settings onto it.
/// Counters live in <see cref="RouterSimulatorStats"/>, handed out by <see cref="RouterSimulatorServer.Stats"/> or passed to
/// <see cref="RouterSimulatorEndpointRouteBuilderExtensions.MapRouterSimulator"/>.
/// </summary>
public sealed class RouterSimulatorOptions
{
    /// <summary>The model name reported for sessions that are not listed in <see cref="Sessions"/>.</summary>
    public const string DefaultModel = "simulated";

    /// <summary>The text appended to every completion when <see cref="AppendTurnMarker"/> is set (one extra token).</summary>
    public const string TurnMarkerText = "\nUser: and what about";

    /// <summary>Bearer key every route requires. Null or empty: no auth. <value>The default value is <c>default-dev-token</c>.</value></summary>
    public string? ApiKey { get; set; } = "default-dev-token";

    /// <summary>Known sessions. Empty: any numeric session id is accepted (model <c>simulated</c>).</summary>
    public List<SimulatedSession> Sessions { get; set; } = [];

    /// <summary>Delay before any route answers (before the status line and headers). <value>The default value is zero.</value></summary>
    public TimeSpan Latency { get; set; }

    /// <summary>
    /// Delay between the response headers and the first token of a stream; a non-stream completion waits
    /// <c>TimeToFirstToken + tokens / TokensPerSecond</c> before answering. <value>The default value is zero.</value>
    /// </summary>
    public TimeSpan TimeToFirstToken { get; set; }

    /// <summary>Token pacing; 0 sends tokens as fast as possible. <value>The default value is 0.</value></summary>
    public double TokensPerSecond { get; set; }

    /// <summary>Share of completions (0..1) answered with <see cref="ErrorStatusCode"/> instead. <value>The default value is 0.</value></summary>
    public double ErrorRate { get; set; }

    /// <summary>Status code of injected errors. <value>The default value is 503.</value></summary>
    public int ErrorStatusCode { get; set; } = 503;

    /// <summary>
    /// Share of completions (0..1; 1 = every one) answered with no answer at all, as routers may do after an error or a
    /// timeout (installer PR #167): a non-stream completion gets a 200 with an empty body, a stream gets the event-stream
    /// headers and only <c>data: [DONE]</c>. <value>The default value is 0.</value>
    /// </summary>
    public double EmptyReplyRate { get; set; }

    /// <summary>
    /// Share of completions (0..1; 1 = every one) that time out on the router's side: the answer is held for
    /// <see cref="TimeoutAfter"/> and then comes back empty, as with <see cref="EmptyReplyRate"/>.
    /// <value>The default value is 0.</value>
    /// </summary>
    public double TimeoutRate { get; set; }

    /// <summary>
    /// How long a timed-out completion (<see cref="TimeoutRate"/>) is held before its empty answer. Null: the request's own
    /// <c>timeout</c> (seconds), or 60 s when it sends none. <value>The default value is null.</value>
    /// </summary>
    public TimeSpan? TimeoutAfter { get; set; }

    /// <summary>
    /// Seed of the dice behind <see cref="ErrorRate"/>, <see cref="EmptyReplyRate"/> and <see cref="TimeoutRate"/> (one
    /// roll per completion); null: a random seed. Changing it restarts the dice sequence.
    /// </summary>
    public int? Seed { get; set; }

    /// <summary>Leave <c>usage</c> out of completions and final stream chunks.</summary>
    public bool OmitUsage { get; set; }

    /// <summary>End streams by closing the connection, without <c>data: [DONE]</c>.</summary>
    public bool OmitDone { get; set; }

    /// <summary>
    /// Interleave a second miner's stream of the same task (the same <c>task_id</c>, its own <c>id</c> ending in
    /// <c>-m2</c>, its text starting with <c>[miner-2] </c>) with the first one's, starting after the first miner's first
    /// chunk, as routers did before installer PR #112. The task record then holds both miners' results.
    /// </summary>
    public bool InterleaveMiners { get; set; }

    /// <summary>
    /// Give every stream its own token queue, as a router started with <c>ENABLE_STREAM_QUEUE_NON_BLOCKING=1</c>. Off
    /// (the router default): concurrent streams on one session share one queue and take each other's chunks
    /// (installer PR #146). <value>The default value is false.</value>
    /// </summary>
    public bool NonBlockingStreamQueue { get; set; }

    /// <summary>Which completion URL forms are answered. <value>The default value is <see cref="SimulatedUrlForms.Both"/>.</value></summary>
    public SimulatedUrlForms UrlForms { get; set; } = SimulatedUrlForms.Both;

    /// <summary>Send errors as <c>text/plain</c> instead of <c>{"error":{"message":"…"}}</c>.</summary>
    public bool PlainTextErrors { get; set; }

    /// <summary>Append <see cref="TurnMarkerText"/> to every completion, as a model that keeps talking would.</summary>
    public bool AppendTurnMarker { get; set; }

    /// <summary>Clock for <c>created</c> and for the delays. <value>The default value is <see cref="TimeProvider.System"/>.</value></summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;
}
