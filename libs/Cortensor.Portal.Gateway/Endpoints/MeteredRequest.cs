using System.Text.Json.Serialization.Metadata;
using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Hosting;
using Microsoft.AspNetCore.Http;

namespace Cortensor.Portal.Gateway.Endpoints;

/// <summary>The common start of an inference request: verify the key, mark it metered, then read the body.</summary>
internal static class MeteredRequest
{
    /// <summary>
    /// Key first, so a bad key never costs a body read; the state carries the principal for usage records. Metered
    /// only once the key is valid: a failed authentication is aggregated, never one usage row each.
    /// </summary>
    public static async Task<(GatewayRequestState State, Keys.ApiKeyPrincipal Principal, T Body)> StartAsync<T>(
        HttpContext context,
        ApiKeyAuthenticator authenticator,
        JsonTypeInfo<T> bodyType,
        int maxBodyBytes)
        where T : class
    {
        var state = GatewayRequestState.Of(context);
        var principal = await authenticator.AuthenticateAsync(context);
        state.IsInference = true;
        state.Principal = principal;
        var body = await JsonBodyReader.ReadAsync(context, bodyType, maxBodyBytes);
        return (state, principal, body);
    }
}
