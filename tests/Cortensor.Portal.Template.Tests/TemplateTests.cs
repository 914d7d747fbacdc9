using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using System.Text.Json;

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

        // 1. Pack the libraries (already built by the solution build) and the template into a folder feed.
        foreach (var project in new[] { "libs/Cortensor.Portal.Keys", "libs/Cortensor.Portal.Fleet", "libs/Cortensor.Portal.Gateway", "templates/Cortensor.Portal.Templates.csproj" })
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

        // 4. Run it on a free loopback port and call it with the key it prints.
        var port = FreePort();
        var baseUrl = $"http://127.0.0.1:{port}";
        var dll = Path.Combine(output, "bin", "Debug", "net10.0", "Acme.Portal.dll");
        var info = new ProcessStartInfo("dotnet") { WorkingDirectory = output, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        info.ArgumentList.Add("--urls");
        info.ArgumentList.Add(baseUrl);
        using var portal = Process.Start(info)!;
        var log = new StringBuilder();
        var key = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        portal.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (log)
            {
                log.AppendLine(e.Data);
            }

            if (e.Data.StartsWith(KeyLinePrefix, StringComparison.Ordinal))
            {
                key.TrySetResult(e.Data[KeyLinePrefix.Length..].Trim());
            }
        };
        portal.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        portal.BeginOutputReadLine();
        portal.BeginErrorReadLine();
        try
        {
            var devKey = await key.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Matches("^pk_test_[0-9A-Za-z]{49}$", devKey);

            using var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromSeconds(30) };
            await WaitHealthyAsync(http);
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"Hello portal"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new("Bearer", devKey);
            var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body + "\n" + log);
            using var doc = JsonDocument.Parse(body);
            Assert.StartsWith("Hello from Cortensor session 1.", doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), StringComparison.Ordinal);

            string logText;
            lock (log)
            {
                logText = log.ToString();
            }

            // The key is printed once on stdout and never appears in a log line.
            Assert.Equal(1, CountOccurrences(logText, devKey));
        }
        finally
        {
            portal.Kill(entireProcessTree: true);
            await portal.WaitForExitAsync();
        }
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
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
