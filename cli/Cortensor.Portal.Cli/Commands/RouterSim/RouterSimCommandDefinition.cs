using System.CommandLine;
using Cortensor.Portal.Fleet.Simulator;

namespace Cortensor.Portal.Cli.Commands.RouterSim;

/// <summary><c>cortensor-portal router-sim</c>: run a fake Cortensor router that speaks the router REST API.</summary>
internal sealed class RouterSimCommandDefinition : Command
{
    public RouterSimCommandDefinition()
        : base("router-sim", "Run a simulated Cortensor router (REST API, Bearer auth, SSE streaming) for tests and demos.")
    {
        Options.Add(Urls);
        Options.Add(ApiKey);
        Options.Add(Sessions);
        Options.Add(LatencyMs);
        Options.Add(TimeToFirstTokenMs);
        Options.Add(TokensPerSecond);
        Options.Add(ErrorRate);
        Options.Add(ErrorStatus);
        Options.Add(EmptyRate);
        Options.Add(TimeoutRate);
        Options.Add(TimeoutAfterMs);
        Options.Add(Seed);
        Options.Add(NoUsage);
        Options.Add(NoDone);
        Options.Add(InterleaveMiners);
        Options.Add(NonBlockingStreamQueue);
        Options.Add(UrlForm);
        Options.Add(PlainTextErrors);
        Options.Add(TurnMarker);
        SetAction((parseResult, cancellationToken) => new RouterSimAction(this, parseResult).RunAsync(Console.Out, cancellationToken));
    }

    public Option<string> Urls { get; } = new("--urls")
    {
        Description = "Address to listen on. Use a loopback address unless you mean to expose it.",
        DefaultValueFactory = _ => "http://127.0.0.1:5010",
    };

    public Option<string> ApiKey { get; } = new("--api-key")
    {
        Description = "Bearer key the simulator requires.",
        DefaultValueFactory = _ => "default-dev-token",
    };

    public Option<string[]> Sessions { get; } = new("--session")
    {
        Description = "A session the router knows, as ID or ID=MODEL (repeatable). None: any session id is accepted.",
        AllowMultipleArgumentsPerToken = false,
    };

    public Option<int> LatencyMs { get; } = new("--latency-ms") { Description = "Delay before the response starts." };

    public Option<int> TimeToFirstTokenMs { get; } = new("--ttft-ms") { Description = "Extra delay before the first streamed token." };

    public Option<double> TokensPerSecond { get; } = new("--tokens-per-second") { Description = "Stream pacing; 0 = as fast as possible." };

    public Option<double> ErrorRate { get; } = new("--error-rate") { Description = "Share of completions (0..1) answered with an error." };

    public Option<int> ErrorStatus { get; } = new("--error-status")
    {
        Description = "HTTP status of injected errors.",
        DefaultValueFactory = _ => 503,
    };

    public Option<double> EmptyRate { get; } = new("--empty-rate")
    {
        Description = "Share of completions (0..1) answered empty: a 200 with no body, or a stream of only 'data: [DONE]'.",
    };

    public Option<double> TimeoutRate { get; } = new("--timeout-rate")
    {
        Description = "Share of completions (0..1) held past the task timeout and then answered empty, like a router-side timeout.",
    };

    public Option<int> TimeoutAfterMs { get; } = new("--timeout-after-ms")
    {
        Description = "How long --timeout-rate holds a completion; 0 = the request's own 'timeout' (60 s when it sends none).",
    };

    public Option<int?> Seed { get; } = new("--seed") { Description = "Seed for error, empty and timeout injection, for repeatable runs." };

    public Option<bool> NoUsage { get; } = new("--no-usage") { Description = "Quirk: leave 'usage' out of responses." };

    public Option<bool> NoDone { get; } = new("--no-done") { Description = "Quirk: end streams without 'data: [DONE]'." };

    public Option<bool> InterleaveMiners { get; } = new("--interleave-miners") { Description = "Quirk: interleave a second miner's chunks (same task id) into streams." };

    public Option<bool> NonBlockingStreamQueue { get; } = new("--non-blocking-stream-queue")
    {
        Description = "Give each stream its own token queue (ENABLE_STREAM_QUEUE_NON_BLOCKING=1). Default: concurrent streams on one session share a queue and mix, as real routers do by default.",
    };

    public Option<SimulatedUrlForms> UrlForm { get; } = new("--url-form")
    {
        Description = "Which completion URL forms answer: Both, PathOnly (/completions/{id}) or BodyOnly (session_id in the body).",
        DefaultValueFactory = _ => SimulatedUrlForms.Both,
    };

    public Option<bool> PlainTextErrors { get; } = new("--plain-text-errors") { Description = "Quirk: error bodies as text/plain instead of JSON." };

    public Option<bool> TurnMarker { get; } = new("--turn-marker") { Description = "Quirk: append a trailing role marker to outputs." };
}
