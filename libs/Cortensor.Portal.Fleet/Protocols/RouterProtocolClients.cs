using Cortensor.Portal.Fleet.Configuration;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>Finds the <see cref="IRouterProtocolClient"/> for a router's protocol.</summary>
public interface IRouterProtocolClientResolver
{
    /// <summary>The client for <paramref name="protocol"/>; throws <see cref="InvalidOperationException"/> when none is registered.</summary>
    IRouterProtocolClient Get(RouterProtocol protocol);
}

/// <summary>
/// The registered <see cref="IRouterProtocolClient"/>s by protocol; when two are registered for one protocol the last
/// registration wins, so an application can replace a built-in client. Registered as transient (like the typed HTTP
/// clients it holds): resolve it per request or scope, do not keep it in a singleton.
/// </summary>
public sealed class RouterProtocolClients : IRouterProtocolClientResolver
{
    private readonly Dictionary<RouterProtocol, IRouterProtocolClient> clients = [];

    public RouterProtocolClients(IEnumerable<IRouterProtocolClient> clients)
    {
        ArgumentNullException.ThrowIfNull(clients);
        foreach (var client in clients)
        {
            this.clients[client.Protocol] = client;
        }
    }

    public IRouterProtocolClient Get(RouterProtocol protocol) =>
        clients.TryGetValue(protocol, out var client)
            ? client
            : throw new InvalidOperationException($"No {nameof(IRouterProtocolClient)} is registered for router protocol {protocol}.");
}
