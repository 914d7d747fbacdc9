using System.Net;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;

namespace Cortensor.Portal.Template.Tests;

/// <summary>
/// What a new operator does: pack, <c>dotnet new install</c>, <c>dotnet new cortensor-portal</c>, build against the
/// packages, run, and call the API with the key the portal printed.
/// </summary>
public sealed class TemplateTests : IDisposable
{
    private const string KeyLinePrefix = "Cortensor Portal development API key: ";
    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(4);

    private readonly string _root = Path.Combine(Path.GetTempPath(), "cportal-template-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    [Fact]
    public async Task Template_PackInstallInstantiateBuildRun_ServesChatWithPrintedKey()
    {
        var repo = FindRepositoryRoot();
        var configuration = typeof(TemplateTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()?.Configuration ?? "Debug";
        var feed = Directory.CreateDirectory(Path.Combine(_root, "feed")).FullName;
        var hive = Path.Combine(_root, "hive");
        var output = Path.Combine(_root, "Acme.Portal");

        // 1. Pack the libraries and the template into a folder feed. The project references every library, so they
        //    are built (in this configuration) before this test can start.
        var projects = Directory.GetDirectories(Path.Combine(repo, "libs"))
            .Where(d => Directory.EnumerateFiles(d, "*.csproj").Any())
            .Select(d => Path.GetRelativePath(repo, d))
            .Append("templates/Cortensor.Portal.Templates.csproj");
        foreach (var project in projects)
        {
            await Dotnet(repo, "pack", project, "-c", configuration, "--no-build", "-o", feed);
        }

        var templatePackage = Directory.GetFiles(feed, "Cortensor.Portal.Templates.*.nupkg").Single();
        var version = Path.GetFileNameWithoutExtension(templatePackage)["Cortensor.Portal.Templates.".Length..];

        // 2. Install into a throw-away hive and instantiate.
        await Dotnet(_root, "new", "install", templatePackage, "--debug:custom-hive", hive);
        await Dotnet(_root, "new", "cortensor-portal", "-n", "Acme.Portal", "-o", output, "--port", "5199", "--debug:custom-hive", hive, "--no-update-check");

        var csproj = await File.ReadAllTextAsync(Path.Combine(output, "Acme.Portal.csproj"));
        Assert.Contains("<CortensorPortalReferences>package</CortensorPortalReferences>", csproj, StringComparison.Ordinal);
        Assert.Contains($"<CortensorPortalVersion>{version}</CortensorPortalVersion>", csproj, StringComparison.Ordinal);
        Assert.Contains("http://127.0.0.1:5199", await File.ReadAllTextAsync(Path.Combine(output, "appsettings.json")), StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(output, ".template.config")));

        // 3. Build against the folder feed. Our packages land in a private folder; everything else comes from the
        //    machine's package cache as a fallback, so nothing stale is reused and nothing is downloaded twice.
        await File.WriteAllTextAsync(Path.Combine(output, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        var globalPackages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        await Dotnet(output, "build", "-c", "Debug",
            $"-p:RestorePackagesPath={Path.Combine(_root, "packages")}",
            $"-p:RestoreFallbackFolders={globalPackages}");

        // 4. Run it as `dotnet run` does, with the launch profile's environment (Development, where
        //    appsettings.Development.json turns on the simulated routers and the key), on a free loopback port, and
        //    call it with the key it prints.
        var development = LaunchProfileEnvironment(output);
        Assert.Equal("Development", development["ASPNETCORE_ENVIRONMENT"]);
        Assert.True(File.Exists(Path.Combine(output, "appsettings.Development.json")));
        var dll = Path.Combine(output, "bin", "Debug", "net10.0", "Acme.Portal.dll");
        string devKey;
        string firstRequestId;
        await using (var first = RunningPortal.Start(dll, output, development))
        {
            devKey = await first.Key.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Matches("^pk_test_[0-9A-Za-z]{49}$", devKey);
            firstRequestId = await ChatAsync(first, devKey);

            // The key is printed once on stdout and never appears in a log line.
            Assert.Equal(1, CountOccurrences(first.Log, devKey));
            Assert.Equal(0, await first.StopGracefullyAsync());
        }

        // 5. Restart: the embedded SQLite store kept the key (no new key is printed) and the usage of the first run.
        string secondRequestId;
        await using (var second = RunningPortal.Start(dll, output, development))
        {
            secondRequestId = await ChatAsync(second, devKey);
            Assert.DoesNotContain(KeyLinePrefix, second.Log, StringComparison.Ordinal);
            Assert.Equal(0, await second.StopGracefullyAsync());
        }

        var database = Path.Combine(output, "App_Data", "portal.db");
        Assert.True(File.Exists(database), "the portal keeps its data in App_Data/portal.db");
        await using var sqlite = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
        await sqlite.OpenAsync();
        foreach (var requestId in new[] { firstRequestId, secondRequestId })
        {
            await using var command = sqlite.CreateCommand();
            command.CommandText = "SELECT (SELECT count(*) FROM usage_events WHERE request_id = $id) * 10 + (SELECT count(*) FROM request_logs WHERE request_id = $id)";
            command.Parameters.AddWithValue("$id", requestId);
            Assert.Equal(11L, (long)(await command.ExecuteScalarAsync())!); // one usage event and one log row each
        }

        // 6. Deployed as Production with no routers configured, it refuses to start and names the setting to fix.
        await using (var production = RunningPortal.Start(dll, output, new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production" }))
        {
            Assert.NotEqual(0, await production.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("No routers are configured under Cortensor:Fleet:Routers", production.Log, StringComparison.Ordinal);
            Assert.Contains("Cortensor:Fleet:UseSimulatedRouters=true", production.Log, StringComparison.Ordinal);
            Assert.DoesNotContain(KeyLinePrefix, production.Log, StringComparison.Ordinal);
        }
    }

    /// <summary>The environment variables of the generated project's launch profile, which <c>dotnet run</c> applies.</summary>
    private static Dictionary<string, string> LaunchProfileEnvironment(string project)
    {
        using var launch = JsonDocument.Parse(File.ReadAllText(Path.Combine(project, "Properties", "launchSettings.json")));
        var profile = launch.RootElement.GetProperty("profiles").EnumerateObject().Single().Value;
        Assert.Equal("Project", profile.GetProperty("commandName").GetString());
        Assert.Equal("http://127.0.0.1:5199", profile.GetProperty("applicationUrl").GetString()); // --port reaches the profile too
        return profile.GetProperty("environmentVariables").EnumerateObject().ToDictionary(static p => p.Name, static p => p.Value.GetString()!);
    }

    private static async Task<string> ChatAsync(RunningPortal portal, string key)
    {
        using var http = new HttpClient { BaseAddress = portal.BaseUrl, Timeout = TimeSpan.FromSeconds(30) };
        await WaitHealthyAsync(http);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"Hello portal"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", key);
        var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body + "\n" + portal.Log);
        using var doc = JsonDocument.Parse(body);
        Assert.StartsWith("Hello from Cortensor session 1.", doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), StringComparison.Ordinal);
        return response.Headers.GetValues("X-Request-Id").Single();
    }

    private static async Task WaitHealthyAsync(HttpClient http)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                if ((await http.GetAsync("/health")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException("portal did not become healthy");
            }

            await Task.Delay(200);
        }
    }

    private static int CountOccurrences(string text, string value)
    {
        var count = 0;
        for (var i = text.IndexOf(value, StringComparison.Ordinal); i >= 0; i = text.IndexOf(value, i + value.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private static async Task Dotnet(string workingDirectory, params string[] args)
    {
        var result = await ProcessRunner.RunAsync("dotnet", args, workingDirectory, StepTimeout);
        Assert.True(result.ExitCode == 0, $"dotnet {string.Join(' ', args)} failed ({result.ExitCode}):\n{result.Output}");
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cortensor.Portal.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Cortensor.Portal.sln not found above " + AppContext.BaseDirectory);
    }
}
