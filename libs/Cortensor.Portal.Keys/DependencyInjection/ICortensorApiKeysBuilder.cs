namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Returned by <see cref="CortensorApiKeysServiceCollectionExtensions.AddCortensorApiKeys(IServiceCollection)"/>; key features chain off it.</summary>
public interface ICortensorApiKeysBuilder
{
    IServiceCollection Services { get; }
}
