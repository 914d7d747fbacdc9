using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Cortensor.Portal.Gateway.Tests.Support;

internal sealed record ErrorBody(string Message, string Type, string? Param, string? Code, string? RequestId);

internal static class Http
{
    public static async Task<HttpResponseMessage> PostJsonAsync(this HttpClient client, string path, string json, string? key, Action<HttpRequestMessage>? configure = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        configure?.Invoke(request);
        return await client.SendAsync(request);
    }

    public static Task<HttpResponseMessage> ChatAsync(this GatewayHost host, string json, string? key)
        => host.Client.PostJsonAsync("/v1/chat/completions", json, key);

    public static async Task<ErrorBody> ReadErrorAsync(this HttpResponseMessage response)
    {
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = doc.RootElement.GetProperty("error");
        // All four OpenAI keys must be present, even when null.
        foreach (var name in new[] { "message", "type", "param", "code" })
        {
            Assert.True(error.TryGetProperty(name, out _), $"error.{name} is missing");
        }

        var requestId = error.GetProperty("request_id").GetString();
        Assert.Equal(requestId, response.Headers.GetValues("X-Request-Id").Single());
        return new ErrorBody(
            error.GetProperty("message").GetString()!,
            error.GetProperty("type").GetString()!,
            error.GetProperty("param").ValueKind == JsonValueKind.Null ? null : error.GetProperty("param").GetString(),
            error.GetProperty("code").ValueKind == JsonValueKind.Null ? null : error.GetProperty("code").GetString(),
            requestId);
    }

    public static string Chat(string model = "m1", string content = "Hi", string extra = "")
        => $$"""{"model":"{{model}}","messages":[{"role":"user","content":{{JsonSerializer.Serialize(content)}}}]{{extra}}}""";
}
