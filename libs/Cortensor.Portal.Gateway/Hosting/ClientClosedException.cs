namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>
/// The client went away while the gateway was still reading from it. Kestrel cancels
/// <see cref="Microsoft.AspNetCore.Http.HttpContext.RequestAborted"/> on the thread pool, so when a body read fails the
/// token may not be cancelled yet; this type lets <see cref="GatewayEndpointFilter"/> record 499 either way.
/// </summary>
internal sealed class ClientClosedException(string message, Exception innerException, CancellationToken token)
    : OperationCanceledException(message, innerException, token);
