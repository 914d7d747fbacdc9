using System.Net;
using System.Text;
using System.Text.Json;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Keys;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// The host decides by environment and explicit settings alone: Development (appsettings.Development.json) serves the
/// simulated catalog and prints a key; any other environment refuses an empty fleet, issues no key unless asked to,
/// and refuses placeholder router keys, each before the first request.
/// </summary>
public sealed class DevelopmentModeTests
{
    private const string SimulatedSwitch = "Cortensor:Fleet:UseSimulatedRouters";
    private const string DevelopmentKeySwitch = "Cortensor:DevelopmentKey:Enabled";

    [Fact]
    public async Task ProductionHost_NoFleetConfigured_RefusesToStartNamingTheSetting()
    {
        await using var portal = new ConfiguredPortal("Production");

        var error = Assert.Throws<OptionsValidationException>(() => portal.CreateClient());

        Assert.Contains("No routers are configured under Cortensor:Fleet:Routers", error.Message, StringComparison.Ordinal);
        Assert.Contains("Cortensor:Fleet:UseSimulatedRouters=true", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(DevelopmentBootstrapOptions.KeyLinePrefix, portal.Output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DevelopmentHost_ItsAppsettings_ServeSimulatedAnswersWithThePrintedKey()
    {
        await using var portal = new ConfiguredPortal("Development");
        var http = portal.CreateClient();

        var key = portal.PrintedKey();
        Assert.Equal("Hello from Cortensor session 1. You said: user Say hello", await ChatAsync(http, key));
        Assert.Contains(portal.Logs.Lines, l => l.Contains("ROUTERS ARE SIMULATED", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ProductionHost_SimulatedRoutersChosen_ServesThemWithTheWarning()
    {
        await using var portal = new ConfiguredPortal("Production", (SimulatedSwitch, "true"));
        var http = portal.CreateClient();
        var issued = await portal.Services.GetRequiredService<IApiKeyProvider>().IssueAsync(new IssueApiKeyRequest { OrgId = "org_ops" });

        Assert.Equal("Hello from Cortensor session 4. You said: user Say hello", await ChatAsync(http, issued.Secret, "qwen-3.5-9b"));
        Assert.Contains(portal.Logs.Lines, l => l.StartsWith("Warning", StringComparison.Ordinal) && l.Contains("ROUTERS ARE SIMULATED", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ProductionHost_NoDevelopmentKeySetting_PrintsNoKeyAndStoresNone()
    {
        await using var portal = new ConfiguredPortal("Production", (SimulatedSwitch, "true"));
        _ = portal.CreateClient();

        Assert.DoesNotContain(DevelopmentBootstrapOptions.KeyLinePrefix, portal.Output.ToString(), StringComparison.Ordinal);
        Assert.Empty(await portal.Services.GetRequiredService<IApiKeyProvider>().ListAsync("org_dev"));
        Assert.Contains(portal.Logs.Lines, l => l.Contains("No development key issued: the environment is Production", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ProductionHost_DevelopmentKeyEnabled_PrintsAWorkingKeyAndWarns()
    {
        await using var portal = new ConfiguredPortal("Production", (SimulatedSwitch, "true"), (DevelopmentKeySwitch, "true"));
        var http = portal.CreateClient();

        var key = portal.PrintedKey();
        Assert.Single(await portal.Services.GetRequiredService<IApiKeyProvider>().ListAsync("org_dev"));
        Assert.StartsWith("Hello from Cortensor session 1.", await ChatAsync(http, key), StringComparison.Ordinal);
        Assert.Contains(portal.Logs.Lines, l => l.StartsWith("Warning", StringComparison.Ordinal) && l.Contains("Cortensor:DevelopmentKey:Enabled=true in environment Production", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ProductionHost_PlaceholderRouterKey_RefusesToStartNamingRouterAndVariable()
    {
        // The routers example as copied, with its key left as shipped.
        await using var portal = new ConfiguredPortal(
            "Production",
            ("Cortensor:Fleet:Routers:router-eu-1:BaseUrl", "https://router-eu-1.example.net"),
            ("Cortensor:Fleet:Routers:router-eu-1:ApiKey", "set-me-from-a-secret-store"),
            ("Cortensor:Fleet:Pools:oss-20b:PromptFormat", "Harmony"),
            ("Cortensor:Fleet:Pools:oss-20b:Members:0:Router", "router-eu-1"),
            ("Cortensor:Fleet:Pools:oss-20b:Members:0:SessionId", "5"),
            ("Cortensor:Fleet:Models:gpt-oss-20b:Pool", "oss-20b"));

        var error = Assert.Throws<OptionsValidationException>(() => portal.CreateClient());

        var failure = Assert.Single(error.Failures);
        Assert.Contains("Router 'router-eu-1': Cortensor:Fleet:Routers:router-eu-1:ApiKey is a placeholder", failure, StringComparison.Ordinal);
        Assert.Contains("Cortensor__Fleet__Routers__router-eu-1__ApiKey", failure, StringComparison.Ordinal);
    }

    private static async Task<string> ChatAsync(HttpClient http, string key, string model = "gpt-oss-20b")
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent($$"""{"model":"{{model}}","messages":[{"role":"user","content":"Say hello"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", key);
        var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    }

    /// <summary>The host in one environment with only the given settings on top of its own appsettings files.</summary>
    private sealed class ConfiguredPortal(string environment, params (string Key, string Value)[] settings) : WebApplicationFactory<Program>
    {
        private readonly string _dataDirectory = Path.Combine(Path.GetTempPath(), "cportal-devmode-" + Guid.NewGuid().ToString("N")[..8]);

        public StringWriter Output { get; } = new();

        public CapturingLoggerProvider Logs { get; } = new();

        public string PrintedKey()
        {
            var line = Output.ToString().Split('\n').Single(l => l.StartsWith(DevelopmentBootstrapOptions.KeyLinePrefix, StringComparison.Ordinal));
            return line[DevelopmentBootstrapOptions.KeyLinePrefix.Length..].Trim();
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment(environment);
            builder.UseSetting("Cortensor:Storage:DataDirectory", _dataDirectory);
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }

            builder.ConfigureLogging(logging => logging.AddProvider(Logs).SetMinimumLevel(LogLevel.Information));
            builder.ConfigureServices(services => services.Configure<DevelopmentBootstrapOptions>(o => o.Output = Output));
        }

        public override async ValueTask DisposeAsync()
        {
            await base.DisposeAsync();
            try
            {
                Directory.Delete(_dataDirectory, recursive: true);
            }
            catch (DirectoryNotFoundException)
            {
            }
        }
    }
}
