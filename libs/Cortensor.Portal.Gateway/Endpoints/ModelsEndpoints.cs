using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Entitlements;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.OpenAI;
using Cortensor.Portal.Keys;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Gateway.Endpoints;

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{id}</c>: public aliases only, never pools or sessions.</summary>
internal static class ModelsEndpoints
{
    /// <summary>Only the models this key may call: its own allow-list, global disables and model access policies.</summary>
    public static async Task ListAsync(HttpContext context, ApiKeyAuthenticator authenticator, IModelCatalog catalog, EntitlementCache entitlements)
    {
        var principal = await authenticator.AuthenticateAsync(context);
        var granted = await GetEntitlementsAsync(context, entitlements, principal);
        var data = catalog.Models.Where(m => IsVisible(principal, granted, m.Alias)).Select(ToDto).ToArray();
        await context.Response.WriteAsJsonAsync(new ModelListDto("list", data), GatewayJson.Context.ModelListDto, "application/json", context.RequestAborted);
    }

    public static async Task GetAsync(HttpContext context, string id, ApiKeyAuthenticator authenticator, IModelCatalog catalog, EntitlementCache entitlements)
    {
        var principal = await authenticator.AuthenticateAsync(context);
        var alias = Uri.UnescapeDataString(id);
        if (!catalog.TryGetModel(alias, out var model) || !IsVisible(principal, await GetEntitlementsAsync(context, entitlements, principal), model.Alias))
        {
            throw new GatewayException(GatewayError.ModelNotFound(alias));
        }

        await context.Response.WriteAsJsonAsync(ToDto(model), GatewayJson.Context.ModelDto, "application/json", context.RequestAborted);
    }

    public static Task UnknownRouteAsync(HttpContext context)
        => throw new GatewayException(GatewayError.NotFoundRoute(context.Request.Path));

    private static bool IsVisible(ApiKeyPrincipal principal, KeyEntitlements granted, string alias)
        => principal.IsModelAllowed(alias) && !granted.IsDisabledGlobally(alias) && granted.IsAllowed(alias);

    private static async ValueTask<KeyEntitlements> GetEntitlementsAsync(HttpContext context, EntitlementCache entitlements, ApiKeyPrincipal principal)
    {
        try
        {
            return await entitlements.GetAsync(principal, context.RequestAborted);
        }
        catch (EntitlementsUnavailableException)
        {
            throw new GatewayException(GatewayError.EntitlementsUnavailable());
        }
    }

    private static ModelDto ToDto(CatalogModel model) => new(model.Alias, "model", model.Created, model.OwnedBy);
}
