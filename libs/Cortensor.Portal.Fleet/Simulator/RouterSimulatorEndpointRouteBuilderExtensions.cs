using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>Maps the fake Cortensor router onto an ASP.NET Core app.</summary>
public static class RouterSimulatorEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps the Cortensor router REST API, answered by a simulator that reads <paramref name="options"/> on every request.
    /// </summary>
    /// <remarks>
    /// <para>Routes: <c>GET /api/v1/status</c>, <c>/api/v1/info</c>, <c>/api/v1/about</c>, <c>/api/v1/ping</c>,
    /// <c>/api/v1/sessions</c>, <c>/api/v1/sessions/{id}</c>, <c>/api/v1/miners</c>, <c>/api/v1/tasks/{sessionId}/{taskId}</c>; <c>POST /api/{version}/completions/{sessionId}</c>
    /// and <c>POST /api/{version}/completions</c> (<c>session_id</c> in the body) for v1, v2 and v3.</para>
    /// <para>Order on every route: <see cref="RouterSimulatorOptions.Latency"/>; bearer check (401); for completions an unknown
    /// version, a disabled URL form or a non-numeric path session id (404); an unreadable body (not JSON, no <c>prompt</c>, no
    /// <c>session_id</c> in the body form: 400); the request is recorded in <paramref name="stats"/>; an unknown
    /// session when <see cref="RouterSimulatorOptions.Sessions"/> is not empty (404); the error dice (<see cref="RouterSimulatorOptions.ErrorStatusCode"/>);
    /// then the answer built from <see cref="SimulatedReply"/>.</para>
    /// </remarks>
    /// <param name="endpoints">The app or route group to map onto.</param>
    /// <param name="options">The simulator's behaviour, read on every request.</param>
    /// <param name="stats">Where to count requests; null: a private instance nobody reads.</param>
    /// <returns>The route group (under <c>/api</c>), to add conventions such as host filters.</returns>
    public static IEndpointConventionBuilder MapRouterSimulator(
        this IEndpointRouteBuilder endpoints,
        RouterSimulatorOptions options,
        RouterSimulatorStats? stats = null)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(options);

        var simulator = new RouterSimulator(options, stats ?? new RouterSimulatorStats());
        var group = endpoints.MapGroup("/api");
        group.MapGet("/v1/status", new RequestDelegate(simulator.StatusAsync));
        group.MapGet("/v1/info", new RequestDelegate(simulator.InfoAsync));
        group.MapGet("/v1/about", new RequestDelegate(simulator.AboutAsync));
        group.MapGet("/v1/ping", new RequestDelegate(simulator.PingAsync));
        group.MapGet("/v1/sessions", new RequestDelegate(simulator.SessionsAsync));
        group.MapGet("/v1/sessions/{id}", new RequestDelegate(simulator.SessionAsync));
        group.MapGet("/v1/miners", new RequestDelegate(simulator.MinersAsync));
        group.MapGet("/v1/tasks/{sessionId}/{taskId}", new RequestDelegate(simulator.TaskAsync));
        group.MapPost("/{version}/completions/{sessionId}", new RequestDelegate(simulator.CompletePathFormAsync));
        group.MapPost("/{version}/completions", new RequestDelegate(simulator.CompleteBodyFormAsync));
        return group;
    }
}
