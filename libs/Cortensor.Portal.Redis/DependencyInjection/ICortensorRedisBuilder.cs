#pragma warning disable IDE0130 // Extension methods live where IServiceCollection does, by .NET convention.
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Returned by <see cref="CortensorRedisServiceCollectionExtensions.AddCortensorRedis(IServiceCollection, Action{Cortensor.Portal.Redis.Configuration.RedisOptions})"/>.</summary>
public interface ICortensorRedisBuilder
{
    IServiceCollection Services { get; }
}
