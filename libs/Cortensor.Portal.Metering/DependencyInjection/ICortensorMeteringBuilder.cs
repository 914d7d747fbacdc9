namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Returned by <see cref="CortensorMeteringServiceCollectionExtensions.AddCortensorMetering(IServiceCollection)"/>; metering features (durable sinks) chain off it.</summary>
public interface ICortensorMeteringBuilder
{
    IServiceCollection Services { get; }
}
