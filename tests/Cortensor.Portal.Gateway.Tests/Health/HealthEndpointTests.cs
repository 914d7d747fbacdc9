using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Gateway.Tests.Support;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Tests.Health;

/// <summary>
/// <c>/health</c>, <c>/health/ready</c> and <c>/health/live</c> on the gateway test host: one routable model
/// (<c>m1</c> on router <c>r1</c>) and one without members (<c>m-empty</c>).
/// </summary>
public sealed class HealthEndpointTests
{
    [Theory]
    [InlineData("/health")]
    [InlineData("/health/ready")]
    public async Task Ready_ModelWithoutMembers_200DegradedNamingTheAliasOnly(string path)
    {
        await using var host = await GatewayHost.StartAsync();

        var response = await host.Client.GetAsync(path); // no API key
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.Contains("X-Request-Id"));
        using var doc = JsonDocument.Parse(body);
        Assert.Equal("degraded", doc.RootElement.GetProperty("status").GetString());
        var fleet = Check(doc, "fleet");
        Assert.Equal("degraded", fleet.GetProperty("status").GetString());
        Assert.Contains("m-empty", fleet.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("m1", fleet.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.True(fleet.GetProperty("duration_ms").GetDouble() >= 0);
        var writer = Check(doc, "usage-writer");
        Assert.Equal("healthy", writer.GetProperty("status").GetString());
        Assert.False(writer.TryGetProperty("reason", out _));
        AssertNoInternals(body);
    }

    [Fact]
    public async Task Ready_OnlyRouterDisabled_503FleetUnhealthy_LiveStays200()
    {
        await using var host = await GatewayHost.StartAsync(services =>
            services.PostConfigure<FleetOptions>(o => o.Routers["r1"].Enabled = false));

        var ready = await host.Client.GetAsync("/health/ready");
        var health = await host.Client.GetAsync("/health");
        var live = await host.Client.GetAsync("/health/live");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        var body = await ready.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(body);
        Assert.Equal("unhealthy", doc.RootElement.GetProperty("status").GetString());
        var fleet = Check(doc, "fleet");
        Assert.Equal("unhealthy", fleet.GetProperty("status").GetString());
        Assert.Contains("m1", fleet.GetProperty("reason").GetString(), StringComparison.Ordinal);
        AssertNoInternals(body);

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        using var liveDoc = JsonDocument.Parse(await live.Content.ReadAsStringAsync());
        Assert.Equal("healthy", liveDoc.RootElement.GetProperty("status").GetString());
        Assert.Empty(liveDoc.RootElement.GetProperty("checks").EnumerateArray());
    }

    [Fact]
    public async Task Ready_HostChecksLeakingSecrets_BodyHasReasonsWithoutThem()
    {
        await using var host = await GatewayHost.StartAsync(services => services.AddHealthChecks()
            .AddCheck("throws", () => throw new InvalidOperationException("Failed to connect to 10.1.2.3:5432 with Host=db.internal;Password=hunter2"))
            .AddCheck("talks", () => HealthCheckResult.Degraded("router http://10.9.8.7:5010/api/v1 said no; Server=cache.internal:6380,password=hunter2")));

        var response = await host.Client.GetAsync("/health");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        using var doc = JsonDocument.Parse(body);
        Assert.Equal("check failed (InvalidOperationException)", Check(doc, "throws").GetProperty("reason").GetString());
        var talks = Check(doc, "talks").GetProperty("reason").GetString()!;
        Assert.StartsWith("router [redacted] said no", talks, StringComparison.Ordinal);
        foreach (var secret in new[] { "hunter2", "10.1.2.3", "10.9.8.7", "db.internal", "cache.internal", "http://", "5432", "6380" })
        {
            Assert.DoesNotContain(secret, body, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task Live_DependencyUnhealthy_Stays200_WhileReadyIs503()
    {
        await using var host = await GatewayHost.StartAsync(services => services.AddHealthChecks()
            .AddCheck("store", () => HealthCheckResult.Unhealthy("down")));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await host.Client.GetAsync("/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health/live")).StatusCode);
    }

    [Fact]
    public async Task Live_RunsChecksTaggedLive()
    {
        await using var host = await GatewayHost.StartAsync(services => services.AddHealthChecks()
            .AddCheck("deadlock", () => HealthCheckResult.Unhealthy("worker stuck"), tags: [CortensorHealthEndpointRouteBuilderExtensions.LiveTag]));

        var live = await host.Client.GetAsync("/health/live");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, live.StatusCode);
        using var doc = JsonDocument.Parse(await live.Content.ReadAsStringAsync());
        Assert.Equal("worker stuck", Check(doc, "deadlock").GetProperty("reason").GetString());
        Assert.Single(doc.RootElement.GetProperty("checks").EnumerateArray());
    }

    [Fact]
    public async Task HealthEndpoints_AllowAnonymous_AndAreNotRateLimited()
    {
        await using var host = await GatewayHost.StartAsync();

        var endpoints = host.Services.GetRequiredService<EndpointDataSource>().Endpoints
            .Where(e => e.Metadata.GetMetadata<IEndpointNameMetadata>()?.EndpointName.StartsWith("CortensorHealth", StringComparison.Ordinal) == true)
            .ToList();

        Assert.Equal(3, endpoints.Count);
        Assert.All(endpoints, e =>
        {
            Assert.NotNull(e.Metadata.GetMetadata<IAllowAnonymous>());
            Assert.NotNull(e.Metadata.GetMetadata<DisableRateLimitingAttribute>());
        });
    }

    [Fact]
    public async Task AddCortensorGateway_CalledTwice_EachCheckRegisteredOnce()
    {
        await using var host = await GatewayHost.StartAsync(services =>
        {
            services.AddCortensorGateway();
            services.AddCortensorMetering();
        });

        var names = host.Services.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations.Select(r => r.Name).ToList();

        Assert.Equal(["fleet", "usage-writer"], names.Order(StringComparer.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await host.Client.GetAsync("/health")).StatusCode); // the service starts: no duplicate names
    }

    private static JsonElement Check(JsonDocument doc, string name)
        => doc.RootElement.GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == name);

    // Router ids, pool names, router addresses and keys stay internal; only public aliases appear.
    private static void AssertNoInternals(string body)
    {
        Assert.DoesNotContain(GatewayHost.RouterUrl, body, StringComparison.Ordinal);
        Assert.DoesNotContain("router-internal", body, StringComparison.Ordinal);
        Assert.DoesNotContain(GatewayHost.RouterKey, body, StringComparison.Ordinal);
        Assert.DoesNotContain("p-empty", body, StringComparison.Ordinal);
        Assert.DoesNotMatch(new Regex(@"\b(r1|p1)\b"), body);
    }
}
