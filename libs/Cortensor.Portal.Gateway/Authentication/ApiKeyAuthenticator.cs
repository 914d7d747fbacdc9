using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Keys;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Cortensor.Portal.Gateway.Authentication;

/// <summary>
/// Reads the customer key from <c>Authorization: Bearer …</c> (or the Azure-style <c>api-key</c> header some
/// OpenAI clients send) and verifies it. The key is never forwarded and never logged.
/// </summary>
internal sealed class ApiKeyAuthenticator(IApiKeyProvider provider)
{
    public async ValueTask<ApiKeyPrincipal> AuthenticateAsync(HttpContext context)
    {
        var presented = ReadPresentedKey(context.Request);
        var verification = await provider.VerifyAsync(presented, context.RequestAborted);
        return verification.Status switch
        {
            ApiKeyVerificationStatus.Valid when verification.Principal is not null => verification.Principal,
            ApiKeyVerificationStatus.Revoked => throw new GatewayException(GatewayError.RevokedApiKey(DisplayPrefix(presented))),
            ApiKeyVerificationStatus.Expired => throw new GatewayException(GatewayError.ExpiredApiKey(DisplayPrefix(presented))),
            _ => throw new GatewayException(GatewayError.InvalidApiKey(Mask(presented))),
        };
    }

    private static string ReadPresentedKey(HttpRequest request)
    {
        var authorization = request.Headers[HeaderNames.Authorization].ToString();
        if (authorization.Length == 0)
        {
            var apiKeyHeader = request.Headers["api-key"].ToString().Trim();
            return apiKeyHeader.Length > 0 ? apiKeyHeader : throw new GatewayException(GatewayError.MissingApiKey());
        }

        const string scheme = "Bearer ";
        if (!authorization.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            throw new GatewayException(GatewayError.NotBearer());
        }

        var key = authorization.AsSpan(scheme.Length).Trim();
        return key.Length > 0 ? key.ToString() : throw new GatewayException(GatewayError.MissingApiKey());
    }

    /// <summary>OpenAI-style mask: a few leading characters and the last four, so users can tell keys apart.</summary>
    internal static string Mask(string key)
    {
        if (key.Length < 16)
        {
            return "***";
        }

        var head = key.IndexOf('_', 3) is var i and > 0 and < 12 ? i + 1 : 6;
        return string.Concat(key.AsSpan(0, head), "***", key.AsSpan(key.Length - 4));
    }

    private static string DisplayPrefix(string key) => key.Length > 16 ? key[..16] : Mask(key);
}
