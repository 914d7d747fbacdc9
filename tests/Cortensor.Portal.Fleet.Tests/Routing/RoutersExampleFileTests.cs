using Cortensor.Portal.Fleet.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Fleet.Tests.Routing;

/// <summary>
/// The host template's appsettings.Routers.example.json, as an operator would copy it: its placeholder router keys are
/// refused on start, naming each router and its environment variable, and real keys from the environment make it valid.
/// </summary>
public sealed class RoutersExampleFileTests
{
    private static readonly string ExampleFile = Path.Combine(RepoRoot(), "templates", "content", "Cortensor.Portal.Host", "appsettings.Routers.example.json");

    [Fact]
    public void Example_AsShipped_IsRefusedForItsPlaceholderKeysOnly()
    {
        var error = Assert.Throws<OptionsValidationException>(() => Load());

        Assert.Equal(
        [
            "Router 'router-eu-1': Cortensor:Fleet:Routers:router-eu-1:ApiKey is a placeholder, not a key. Set the router's real key, preferably from a secret store or the environment variable Cortensor__Fleet__Routers__router-eu-1__ApiKey, or remove the router.",
            "Router 'router-us-1': Cortensor:Fleet:Routers:router-us-1:ApiKey is a placeholder, not a key. Set the router's real key, preferably from a secret store or the environment variable Cortensor__Fleet__Routers__router-us-1__ApiKey, or remove the router.",
        ], error.Failures.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Example_WithKeysFromTheEnvironment_IsValid()
    {
        // What Cortensor__Fleet__Routers__router-eu-1__ApiKey=… does: a later source overriding the file's value.
        var fleet = Load(new Dictionary<string, string?>
        {
            ["Cortensor:Fleet:Routers:router-eu-1:ApiKey"] = "9b1e4c2a-7d3f-4e8a-b5c6-0f2d1a3e4b5c",
            ["Cortensor:Fleet:Routers:router-us-1:ApiKey"] = "c0ffee5e-1234-4abc-9def-0123456789ab",
        });

        Assert.Equal(["router-eu-1", "router-us-1", "vllm-1"], fleet.Routers.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["gpt-oss-20b", "qwen-3.5-9b"], fleet.Models.Keys.Order(StringComparer.Ordinal));
        Assert.DoesNotContain(fleet.Routers.Values, r => r.Simulated);
    }

    private static FleetOptions Load(Dictionary<string, string?>? overrides = null)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(ExampleFile, optional: false, reloadOnChange: false)
            .AddInMemoryCollection(overrides ?? [])
            .Build();
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorFleet().Configure(configuration.GetSection(FleetOptions.SectionName));
        using var sp = services.BuildServiceProvider();
        return sp.GetRequiredService<IOptions<FleetOptions>>().Value;
    }

    private static string RepoRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Cortensor.Portal.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("Cortensor.Portal.sln not found above " + AppContext.BaseDirectory);
    }
}
