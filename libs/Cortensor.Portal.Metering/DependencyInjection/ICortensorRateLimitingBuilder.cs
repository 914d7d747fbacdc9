namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Returned by <see cref="CortensorMeteringServiceCollectionExtensions.AddCortensorRateLimiting(IServiceCollection)"/>;
/// shared limiter stores (Redis) chain off it, for example through
/// <see cref="CortensorMeteringServiceCollectionExtensions.UseSharedStore"/>.
/// </summary>
public interface ICortensorRateLimitingBuilder
{
    IServiceCollection Services { get; }
}
