#pragma warning disable IDE0130 // Extension methods live where IServiceCollection does, by .NET convention.
namespace Microsoft.Extensions.DependencyInjection;
#pragma warning restore IDE0130

/// <summary>Returned by <see cref="CortensorUnkeyServiceCollectionExtensions.AddCortensorUnkey(IServiceCollection, Action{Cortensor.Portal.Unkey.Configuration.UnkeyOptions})"/>.</summary>
public interface ICortensorUnkeyBuilder
{
    IServiceCollection Services { get; }

    /// <summary>The Unkey <see cref="System.Net.Http.HttpClient"/> registration, to add handlers or change the primary handler.</summary>
    IHttpClientBuilder HttpClient { get; }
}
