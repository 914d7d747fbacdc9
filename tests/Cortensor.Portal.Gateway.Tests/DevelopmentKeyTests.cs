using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Tests.Support;
using Cortensor.Portal.Keys;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary>
/// The development key is issued in the Development environment, or where <c>Cortensor:DevelopmentKey:Enabled</c>
/// asks for it, and nowhere else: a production host neither prints one nor writes one to its key store.
/// </summary>
public sealed class DevelopmentKeyTests
{
    [Theory]
    [InlineData("Production", null, false)]
    [InlineData("Staging", null, false)]
    [InlineData("Development", null, true)]
    [InlineData("Production", "true", true)]
    [InlineData("Development", "false", false)]
    public async Task Start_EnvironmentAndSetting_DecideWhetherTheKeyIsIssued(string environment, string? enabled, bool issued)
    {
        await using var host = await StartedHost.StartAsync(environment, enabled);

        var stored = await host.Keys.ListAsync("org_dev");
        var printed = host.Output.ToString();
        if (issued)
        {
            var key = Assert.Single(printed.Split('\n'), l => l.StartsWith(DevelopmentBootstrapOptions.KeyLinePrefix, StringComparison.Ordinal))[DevelopmentBootstrapOptions.KeyLinePrefix.Length..].Trim();
            Assert.StartsWith("pk_test_", key, StringComparison.Ordinal);
            Assert.Equal(ApiKeyEnvironment.Test, Assert.Single(stored).Environment);
            Assert.Equal(ApiKeyVerificationStatus.Valid, (await host.Keys.VerifyAsync(key)).Status);
        }
        else
        {
            Assert.Equal("", printed);
            Assert.Empty(stored);
            Assert.Contains(host.Logs.GetSnapshot(), r => r.Id.Name == "DevelopmentKeyDisabled" && r.Message.Contains(environment, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task Start_EnabledOutsideDevelopment_WarnsNamingTheSetting()
    {
        await using var host = await StartedHost.StartAsync("Production", "true");

        var warning = Assert.Single(host.Logs.GetSnapshot(), r => r.Id.Name == "DevelopmentKeyOutsideDevelopment");
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("Cortensor:DevelopmentKey:Enabled=true", warning.Message, StringComparison.Ordinal);
        Assert.Contains("Production", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_InDevelopment_DoesNotWarn()
    {
        await using var host = await StartedHost.StartAsync("Development", enabled: null);

        Assert.DoesNotContain(host.Logs.GetSnapshot(), r => r.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task BindConfiguration_OrgId_IsReadFromTheSection()
    {
        await using var host = await StartedHost.StartAsync("Production", "true", orgId: "org_demo");

        Assert.Single(await host.Keys.ListAsync("org_demo"));
        Assert.Empty(await host.Keys.ListAsync("org_dev"));
    }

    /// <summary>The gateway in a generic host with only the given settings (no appsettings, no environment variables).</summary>
    private sealed class StartedHost : IAsyncDisposable
    {
        private readonly IHost _host;

        private StartedHost(IHost host, StringWriter output, FakeLogCollector logs)
        {
            _host = host;
            Output = output;
            Logs = logs;
        }

        public StringWriter Output { get; }

        public FakeLogCollector Logs { get; }

        public IApiKeyProvider Keys => _host.Services.GetRequiredService<IApiKeyProvider>();

        public static async Task<StartedHost> StartAsync(string environment, string? enabled, string? orgId = null)
        {
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { EnvironmentName = environment, DisableDefaults = true });
            var settings = new Dictionary<string, string?>
            {
                ["Cortensor:Fleet:Routers:r1:BaseUrl"] = GatewayHost.RouterUrl,
                ["Cortensor:Fleet:Routers:r1:ApiKey"] = GatewayHost.RouterKey,
            };
            if (enabled is not null)
            {
                settings["Cortensor:DevelopmentKey:Enabled"] = enabled;
            }

            if (orgId is not null)
            {
                settings["Cortensor:DevelopmentKey:OrgId"] = orgId;
            }

            builder.Configuration.AddInMemoryCollection(settings);
            var logs = new FakeLogCollector();
            builder.Logging.ClearProviders().AddProvider(new FakeLoggerProvider(logs)).SetMinimumLevel(LogLevel.Debug);
            var output = new StringWriter();
            builder.Services.AddCortensorGateway()
                .BindConfiguration(builder.Configuration)
                .AddDevelopmentBootstrap(o => o.Output = output);

            var host = builder.Build();
            await host.StartAsync();
            return new StartedHost(host, output, logs);
        }

        public async ValueTask DisposeAsync()
        {
            await _host.StopAsync();
            _host.Dispose();
            await Output.DisposeAsync();
        }
    }
}
