using Cortensor.Portal.Gateway.Endpoints;
using Cortensor.Portal.Gateway.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

#pragma warning disable IDE0130 // Endpoint mapping extensions live with IEndpointRouteBuilder, by ASP.NET Core convention.
namespace Microsoft.AspNetCore.Builder;
#pragma warning restore IDE0130

public static class CortensorGatewayEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps <c>POST /v1/chat/completions</c>, <c>POST /v1/completions</c>, <c>GET /v1/models</c>,
    /// <c>GET /v1/models/{id}</c>, an OpenAI-shaped 404 for any other <c>/v1/…</c> path, and the health endpoints
    /// <c>/health</c> (readiness), <c>/health/ready</c> and <c>/health/live</c>
    /// (<see cref="CortensorHealthEndpointRouteBuilderExtensions.MapCortensorHealth"/>).
    /// </summary>
    public static RouteGroupBuilder MapCortensorGateway(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var filter = endpoints.ServiceProvider.GetService<GatewayEndpointFilter>()
            ?? throw new InvalidOperationException("Call services.AddCortensorGateway() before app.MapCortensorGateway().");

        // Outside the gateway's filter: probes are not API requests (no usage, no per-request log line).
        endpoints.MapCortensorHealth();

        // The registered singleton: AddEndpointFilter<T>() would build a new filter, resolving its five
        // dependencies, on every request.
        var root = endpoints.MapGroup("").AddEndpointFilter(filter);

        var v1 = root.MapGroup("/v1");
        v1.MapPost("/chat/completions", ChatCompletionsEndpoint.HandleAsync).WithName("CortensorChatCompletions");
        v1.MapPost("/completions", CompletionsEndpoint.HandleAsync).WithName("CortensorCompletions");
        v1.MapGet("/models", ModelsEndpoints.ListAsync).WithName("CortensorModels");
        v1.MapGet("/models/{**id}", ModelsEndpoints.GetAsync).WithName("CortensorModel");
        v1.Map("/{**path}", ModelsEndpoints.UnknownRouteAsync).WithName("CortensorUnknownRoute");
        return root;
    }
}
