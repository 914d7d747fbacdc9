using System.Net;
using System.Text.Json;
using Cortensor.Portal.Gateway.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.Gateway.Tests;

public sealed class ModelsAndCompletionsTests : GatewayTestBase
{
    private async Task<HttpResponseMessage> GetAsync(string path, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (key is not null)
        {
            request.Headers.Authorization = new("Bearer", key);
        }

        return await Host.Client.SendAsync(request);
    }

    [Fact]
    public async Task Models_List_ShowsEnabledAliasesOnly()
    {
        var response = await GetAsync("/v1/models", Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var raw = await response.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(raw);
        Assert.Equal("list", doc.RootElement.GetProperty("object").GetString());
        var ids = doc.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(["m-empty", "m1"], ids);
        var model = doc.RootElement.GetProperty("data")[1];
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal(JsonValueKind.Number, model.GetProperty("created").ValueKind);
        Assert.Equal("cortensor", model.GetProperty("owned_by").GetString());
        Assert.DoesNotContain("p1", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("r1", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("router", raw, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Models_List_HonoursKeyAllowList()
    {
        var limited = await Host.IssueKeyAsync(allowedModels: ["m1"]);

        using var doc = JsonDocument.Parse(await (await GetAsync("/v1/models", limited)).Content.ReadAsStringAsync());

        Assert.Equal(["m1"], doc.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
    }

    [Fact]
    public async Task Models_WithoutKey_Returns401()
    {
        Assert.Equal(HttpStatusCode.Unauthorized, (await GetAsync("/v1/models", null)).StatusCode);
    }

    [Fact]
    public async Task Models_Get_KnownAndUnknown()
    {
        var known = await GetAsync("/v1/models/m1", Key);
        Assert.Equal(HttpStatusCode.OK, known.StatusCode);
        using var doc = JsonDocument.Parse(await known.Content.ReadAsStringAsync());
        Assert.Equal("m1", doc.RootElement.GetProperty("id").GetString());

        var unknown = await GetAsync("/v1/models/org%2Fnope", Key);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        var error = await unknown.ReadErrorAsync();
        Assert.Equal("model_not_found", error.Code);
        Assert.Contains("org/nope", error.Message, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.NotFound, (await GetAsync("/v1/models/m-disabled", Key)).StatusCode);
    }

    [Fact]
    public async Task Health_ReportsStatusAndChecksWithoutAuth()
    {
        var response = await Host.Client.GetAsync("/health");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("X-Request-Id"));
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("degraded", doc.RootElement.GetProperty("status").GetString()); // m-empty has no member
        Assert.Equal(["fleet", "usage-writer"], doc.RootElement.GetProperty("checks").EnumerateArray().Select(c => c.GetProperty("name").GetString()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Completions_NonStream_ReturnsTextCompletionWithDefaultMaxTokens16()
    {
        var response = await Host.Client.PostJsonAsync("/v1/completions", """{"model":"m1","prompt":["Say hi"]}""", Key);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("text_completion", doc.RootElement.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", doc.RootElement.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("Hello there.", doc.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(16, Host.Router.LastRequest!.MaxTokens);
    }

    [Theory]
    [InlineData("""{"model":"m1"}""", "prompt")]
    [InlineData("""{"model":"m1","prompt":["a","b"]}""", "prompt")]
    [InlineData("""{"model":"m1","prompt":[1,2,3]}""", "prompt")]
    [InlineData("""{"model":"m1","prompt":"x","echo":true}""", "echo")]
    [InlineData("""{"model":"m1","prompt":"x","logprobs":9}""", "logprobs")]
    public async Task Completions_InvalidBody_Returns400(string body, string param)
    {
        var response = await Host.Client.PostJsonAsync("/v1/completions", body, Key);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, (await response.ReadErrorAsync()).Param);
        Assert.Equal(0, Host.Router.Calls);
    }

    [Fact]
    public void AddCortensorGateway_CalledTwice_RegistersServicesOnce()
    {
        var services = new ServiceCollection();
        services.AddCortensorGateway();
        services.AddCortensorGateway();

        Assert.Single(services, d => d.ServiceType == typeof(Keys.IApiKeyProvider));
        Assert.Single(services, d => d.ServiceType == typeof(Fleet.Routing.IModelCatalog));
        Assert.Single(services, d => d.ServiceType == typeof(Hosting.GatewayEndpointFilter));
        Assert.Equal(2, services.Count(d => d.ServiceType == typeof(Fleet.Protocols.IRouterProtocolClient)));
    }
}
