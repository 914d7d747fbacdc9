namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>
/// Durable home of routers, pools (with their (router, session) members) and the model catalog, for the admin
/// API. Router keys are never stored: only <see cref="RouterOptions.ApiKeyRef"/>, an <c>env:NAME</c> reference
/// (<see cref="RouterKeyReference"/>) that <c>AddCortensorFleet</c> resolves before validation; saving any other form throws
/// <see cref="ArgumentException"/>.
/// </summary>
public interface IFleetConfigurationStore
{
    /// <summary>Everything, as options (router <see cref="RouterOptions.ApiKey"/> left null; <see cref="RouterOptions.ApiKeyRef"/> set).</summary>
    Task<FleetOptions> LoadAsync(CancellationToken cancellationToken = default);

    /// <summary>
    /// Inserts or replaces a router. <see cref="RouterOptions.ApiKey"/> is ignored (never persisted); an
    /// <see cref="RouterOptions.ApiKeyRef"/> other than <c>env:NAME</c> is refused (<see cref="ArgumentException"/>).
    /// </summary>
    Task SaveRouterAsync(string routerId, RouterOptions router, CancellationToken cancellationToken = default);

    /// <summary>Deletes a router that no pool uses; returns false when unknown; throws <see cref="InvalidOperationException"/> when a pool still uses it.</summary>
    Task<bool> DeleteRouterAsync(string routerId, CancellationToken cancellationToken = default);

    /// <summary>Inserts or replaces a pool and its member list. Member routers must exist.</summary>
    Task SavePoolAsync(string poolName, PoolOptions pool, CancellationToken cancellationToken = default);

    /// <summary>Inserts or replaces a model alias. Its pool must exist.</summary>
    Task SaveModelAsync(string alias, ModelOptions model, CancellationToken cancellationToken = default);

    Task<bool> DeleteModelAsync(string alias, CancellationToken cancellationToken = default);
}
