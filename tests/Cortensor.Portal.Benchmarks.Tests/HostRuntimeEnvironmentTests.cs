using System.Xml.Linq;
using Cortensor.Portal.Benchmarks.Suite;

namespace Cortensor.Portal.Benchmarks.Tests;

/// <summary>The suite's gateways run with the host's runtime settings: the environment it sets matches the host's project file.</summary>
public sealed class HostRuntimeEnvironmentTests
{
    [Fact]
    public void Gateway_environment_is_the_hosts_runtime_settings()
    {
        var project = XDocument.Load(Path.Combine(RepoRoot(), "templates", "content", "Cortensor.Portal.Host", "Cortensor.Portal.Host.csproj"));
        var root = project.Root!;
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);

        // The Web SDK turns server GC on unless the project turns it off.
        Assert.Equal("Microsoft.NET.Sdk.Web", (string?)root.Attribute("Sdk"));
        var server = root.Descendants("ServerGarbageCollection").Select(static e => e.Value).LastOrDefault() ?? "true";
        expected["DOTNET_gcServer"] = bool.Parse(server) ? "1" : "0";

        if (root.Descendants("GarbageCollectionAdaptationMode").Select(static e => e.Value).LastOrDefault() is { } datas)
        {
            expected["DOTNET_GCDynamicAdaptationMode"] = datas;
        }

        foreach (var option in root.Descendants("RuntimeHostConfigurationOption"))
        {
            var name = (string)option.Attribute("Include")!;
            var variable = name switch
            {
                "System.Threading.ThreadPool.UnfairSemaphoreSpinLimit" => "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit",
                _ => throw new InvalidOperationException($"The host sets {name}; map it to its DOTNET_ variable here and in SuiteBenchmark.HostRuntimeEnvironment."),
            };
            expected[variable] = (string)option.Attribute("Value")!;
        }

        Assert.Equal(expected.OrderBy(static p => p.Key), SuiteBenchmark.HostRuntimeEnvironment.OrderBy(static p => p.Key));
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
