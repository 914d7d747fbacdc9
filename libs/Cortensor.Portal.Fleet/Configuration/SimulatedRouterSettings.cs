using Cortensor.Portal.Fleet.Simulator;

namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>
/// Configuration-bindable knobs of a simulated router (<see cref="RouterOptions.Simulated"/>), for demos and
/// fault drills: latency, pacing, error injection and the wire quirks real routers show.
/// </summary>
public sealed class SimulatedRouterSettings
{
    public int LatencyMs { get; set; }

    public int TimeToFirstTokenMs { get; set; }

    /// <summary>0 = as fast as possible.</summary>
    public double TokensPerSecond { get; set; }

    /// <summary>Share of completions (0..1) answered with <see cref="ErrorStatusCode"/>.</summary>
    public double ErrorRate { get; set; }

    public int ErrorStatusCode { get; set; } = 503;

    /// <summary>Share of completions (0..1) answered empty: a 200 with no body, or a stream of only <c>data: [DONE]</c>.</summary>
    public double EmptyReplyRate { get; set; }

    /// <summary>Share of completions (0..1) held for <see cref="TimeoutAfterMs"/> and then answered empty (a router-side timeout).</summary>
    public double TimeoutRate { get; set; }

    /// <summary>How long a timed-out completion is held; 0: the request's own <c>timeout</c> (the pool's task timeout).</summary>
    public int TimeoutAfterMs { get; set; }

    public bool OmitUsage { get; set; }

    public bool OmitDone { get; set; }

    public bool InterleaveMiners { get; set; }

    /// <summary>Per-stream token queues (<c>ENABLE_STREAM_QUEUE_NON_BLOCKING=1</c>); off: streams on one session collide.</summary>
    public bool NonBlockingStreamQueue { get; set; }

    public SimulatedUrlForms UrlForms { get; set; } = SimulatedUrlForms.Both;

    public bool PlainTextErrors { get; set; }

    public bool AppendTurnMarker { get; set; }

    internal RouterSimulatorOptions ToSimulatorOptions(string apiKey) => new()
    {
        ApiKey = apiKey,
        Latency = TimeSpan.FromMilliseconds(LatencyMs),
        TimeToFirstToken = TimeSpan.FromMilliseconds(TimeToFirstTokenMs),
        TokensPerSecond = TokensPerSecond,
        ErrorRate = ErrorRate,
        ErrorStatusCode = ErrorStatusCode,
        EmptyReplyRate = EmptyReplyRate,
        TimeoutRate = TimeoutRate,
        TimeoutAfter = TimeoutAfterMs > 0 ? TimeSpan.FromMilliseconds(TimeoutAfterMs) : null,
        OmitUsage = OmitUsage,
        OmitDone = OmitDone,
        InterleaveMiners = InterleaveMiners,
        NonBlockingStreamQueue = NonBlockingStreamQueue,
        UrlForms = UrlForms,
        PlainTextErrors = PlainTextErrors,
        AppendTurnMarker = AppendTurnMarker,
    };
}
