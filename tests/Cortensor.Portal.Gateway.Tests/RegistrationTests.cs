using Cortensor.Portal.Gateway.Entitlements;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests;

public sealed class RegistrationTests
{
    [Fact]
    public void GatewayWithoutAStore_ContainerValidates_AndAdministrationSaysWhatIsMissing()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddCortensorGateway();

        using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });

        var error = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<ModelAccessAdministration>());
        Assert.Contains("durable store", error.Message, StringComparison.Ordinal);
    }
}
