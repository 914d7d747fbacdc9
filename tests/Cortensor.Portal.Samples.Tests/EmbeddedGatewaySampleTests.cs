using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Samples.Tests;

/// <summary>The sample app keeps its own endpoints and gains the gateway, over a real loopback socket.</summary>
public sealed class EmbeddedGatewaySampleTests : IClassFixture<EmbeddedGatewaySampleTests.SampleFactory>
{
    private readonly HttpClient _http;

    public EmbeddedGatewaySampleTests(SampleFactory factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        _http = factory.CreateClient();
    }

    /// <summary>The sample as <c>dotnet run</c> starts it: Development, with its appsettings.Development.json.</summary>
    public sealed class SampleFactory : WebApplicationFactory<Program>
    {
        public SampleFactory()
        {
            UseKestrel(0);
        }

        protected override void ConfigureWebHost(IWebHostBuilder builder) => builder.UseEnvironment("Development");
    }

    private sealed class ProductionSampleFactory : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder) => builder.UseEnvironment("Production");
    }

    [Fact]
    public async Task Production_NoRoutersConfigured_RefusesToStartNamingTheSetting()
    {
        await using var production = new ProductionSampleFactory();

        var error = Assert.Throws<OptionsValidationException>(() => production.CreateClient());

        Assert.Contains("Cortensor:Fleet:UseSimulatedRouters", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OwnEndpoints_StillWork()
    {
        Assert.Contains("Acme orders service", await _http.GetStringAsync("/"), StringComparison.Ordinal);
        using var order = JsonDocument.Parse(await _http.GetStringAsync("/orders/42"));
        Assert.Equal(42, order.RootElement.GetProperty("id").GetInt32());
        Assert.Equal("shipped", order.RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Gateway_ServesChatWithIssuedKey()
    {
        var issued = await _http.PostAsync("/dev/keys", content: null);
        issued.EnsureSuccessStatusCode();
        using var keyDoc = JsonDocument.Parse(await issued.Content.ReadAsStringAsync());
        var key = keyDoc.RootElement.GetProperty("key").GetString()!;

        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"qwen-3.5-9b","messages":[{"role":"user","content":"Where is my order?"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", key);
        var response = await _http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Hello from Cortensor session 4. You said: user Where is my order?",
            doc.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task Gateway_HealthAndErrorsAreMapped()
    {
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/health")).StatusCode);
        var unauthorized = await _http.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, unauthorized.StatusCode);
        Assert.True(unauthorized.Headers.Contains("X-Request-Id"));
    }
}
