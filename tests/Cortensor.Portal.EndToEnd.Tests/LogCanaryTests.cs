using System.Text;
using Cortensor.Portal.Fleet.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>No raw API key, router key, Authorization header, prompt or completion text in any log line, at any level.</summary>
[Collection(PortalCollection.Name)]
public sealed class LogCanaryTests(PortalFixture portal)
{
    [Fact]
    public async Task Logs_AfterSuccessAndFailure_ContainNoSecretsOrPrompts()
    {
        const string canaryPrompt = "canary-prompt-7f3a9c the launch codes are zebra";
        foreach (var (model, stream) in new[] { ("gpt-oss-20b", false), ("gpt-oss-20b", true), ("m-broken", false), ("m-down", true) })
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = new StringContent($$"""{"model":"{{model}}","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"{{canaryPrompt}}"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new("Bearer", portal.DevKey);
            using var response = await portal.Http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.False(string.IsNullOrEmpty(body));
        }

        // A malformed key that looks like ours must not be logged either.
        using (var bad = new HttpRequestMessage(HttpMethod.Get, "/v1/models"))
        {
            bad.Headers.Authorization = new("Bearer", "pk_test_canaryBadKeyValue0000000000000000000000000000000");
            await portal.Http.SendAsync(bad);
        }

        var directory = portal.Services.GetRequiredService<ISimulatedRouterDirectory>();
        Assert.True(directory.TryGetEndpoint("sim-a", out _, out var routerKey));

        var lines = portal.Logs.Lines.ToList();
        Assert.NotEmpty(lines);
        Assert.Contains(lines, l => l.Contains("Request req_", StringComparison.Ordinal)); // the request log exists
        foreach (var secret in new[] { portal.DevKey, routerKey, "canary-prompt-7f3a9c", "launch codes", "canaryBadKeyValue", "You said:" })
        {
            Assert.DoesNotContain(lines, l => l.Contains(secret, StringComparison.Ordinal));
        }

        Assert.DoesNotContain(lines, l => l.Contains("Bearer ", StringComparison.Ordinal));
    }
}
