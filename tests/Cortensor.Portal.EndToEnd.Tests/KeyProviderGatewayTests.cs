using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using Cortensor.Portal.Keys;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// The core OpenAI-SDK checks, run once per key provider (Local, Redis, Unkey) chosen by configuration alone: chat
/// with and without streaming, the model list, 401 for a bad key, and a revoked key answering 401 at once.
/// </summary>
public abstract class KeyProviderGatewayTests(KeyProviderPortal portal)
{
    protected KeyProviderPortal Portal { get; } = portal;

    private OpenAIClientOptions Options() => new()
    {
        Endpoint = new Uri(Portal.BaseUrl, "/v1"),
        RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        NetworkTimeout = TimeSpan.FromSeconds(30),
    };

    protected ChatClient Chat(string model = "gpt-oss-20b", string? key = null) => new(model, new ApiKeyCredential(key ?? Portal.DevKey), Options());

    [Fact]
    public void Host_PrintsADevelopmentKeyIssuedByTheProvider()
    {
        Assert.StartsWith("pk_test_", Portal.DevKey, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CompleteChat_NonStream_ReturnsTheRoutersAnswer()
    {
        ChatCompletion completion = await Chat().CompleteChatAsync(new UserChatMessage("What is the capital of France?"));

        Assert.StartsWith("Hello from Cortensor session", completion.Content[0].Text, StringComparison.Ordinal);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.True(completion.Usage.OutputTokenCount > 0);
    }

    [Fact]
    public async Task CompleteChat_Stream_StreamsTheSameTextAsNonStream()
    {
        ChatCompletion whole = await Chat("qwen-3.5-9b").CompleteChatAsync(new UserChatMessage("Tell me a story"));
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat("qwen-3.5-9b").CompleteChatStreamingAsync(new UserChatMessage("Tell me a story")))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(whole.Content[0].Text, text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
    }

    [Fact]
    public async Task Models_ListAndGet_ShowTheDefaultCatalog()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential(Portal.DevKey), Options());

        OpenAIModelCollection list = await models.GetModelsAsync();
        OpenAIModel one = await models.GetModelAsync("gemma-4-26b");

        Assert.Superset(new HashSet<string> { "gpt-oss-20b", "gpt-oss-120b", "gemma-4-26b", "qwen-3.5-9b" }, list.Select(m => m.Id).ToHashSet());
        Assert.Equal("gemma-4-26b", one.Id);
    }

    [Fact]
    public async Task CompleteChat_BadKeys_Raise401()
    {
        foreach (var key in new[] { Portal.UnissuedKey(), "pk_test_not-a-key", "sk-proj-somethingelse" })
        {
            var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat(key: key).CompleteChatAsync(new UserChatMessage("hi")));
            Assert.Equal(401, ex.Status);
        }
    }

    [Fact]
    public async Task IssuedKey_Works_ThenRevoked_Raises401()
    {
        var issued = await Portal.Keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_kp", Name = "e2e" });
        ChatCompletion before = await Chat(key: issued.Secret).CompleteChatAsync(new UserChatMessage("hi"));
        Assert.NotEmpty(before.Content[0].Text);
        Assert.Contains(await Portal.Keys.ListAsync("org_kp"), r => r.KeyId == issued.Record.KeyId);

        Assert.True(await Portal.Keys.RevokeAsync("org_kp", issued.Record.KeyId));

        var ex = await Assert.ThrowsAsync<ClientResultException>(() => Chat(key: issued.Secret).CompleteChatAsync(new UserChatMessage("hi")));
        Assert.Equal(401, ex.Status);
    }

    [Fact]
    public async Task Logs_NeverContainTheKeys()
    {
        await Chat().CompleteChatAsync(new UserChatMessage("hi"));
        await Assert.ThrowsAsync<ClientResultException>(() => Chat(key: Portal.UnissuedKey()).CompleteChatAsync(new UserChatMessage("hi")));

        var lines = Portal.Logs.Lines.ToList();
        Assert.NotEmpty(lines);
        Assert.DoesNotContain(lines, l => l.Contains(Portal.DevKey, StringComparison.Ordinal) || l.Contains("Bearer ", StringComparison.Ordinal));
    }
}

public sealed class LocalKeyProviderGatewayTests(LocalKeyProviderPortal portal) : KeyProviderGatewayTests(portal), IClassFixture<LocalKeyProviderPortal>;

public sealed class RedisKeyProviderGatewayTests(RedisKeyProviderPortal portal) : KeyProviderGatewayTests(portal), IClassFixture<RedisKeyProviderPortal>;

/// <summary>The per-provider checks for Unkey, plus what only Unkey does: its limits in the headers, serve-stale, 503.</summary>
public sealed class UnkeyKeyProviderGatewayTests(UnkeyKeyProviderPortal portal) : KeyProviderGatewayTests(portal), IClassFixture<UnkeyKeyProviderPortal>
{
    private new UnkeyKeyProviderPortal Portal => (UnkeyKeyProviderPortal)base.Portal;

    private async Task<HttpResponseMessage> ChatAsync(string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-oss-20b","messages":[{"role":"user","content":"hi"}],"max_tokens":4}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new("Bearer", key);
        var response = await Portal.Http.SendAsync(request);
        await response.Content.LoadIntoBufferAsync();
        return response;
    }

    [Fact]
    public async Task Unkey_TheDevKeyLivesInUnkey_AndItsRateLimitIsInTheHeaders()
    {
        var response = await ChatAsync(Portal.DevKey);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("\"unkey-requests\";q=1000;w=60", response.Headers.GetValues("RateLimit-Policy").Single(), StringComparison.Ordinal);
        Assert.True(Portal.Unkey.CallsTo("keys.createKey") >= 1);
        Assert.Contains(Portal.Unkey.VerifyBodies, b => b["ratelimits"]?[0]?["name"]?.GetValue<string>() == "requests");
    }

    [Fact]
    public async Task Unkey_Down_RecentlyVerifiedKeyKeepsWorking_UnseenKeyGets503()
    {
        var unseen = (await Portal.Keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_kp" })).Secret;
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(Portal.DevKey)).StatusCode);
        Portal.Unkey.Outage = new Testing.Unkey.StubFault(503);
        try
        {
            var served = await ChatAsync(Portal.DevKey);
            var refused = await ChatAsync(unseen);

            Assert.Equal(HttpStatusCode.OK, served.StatusCode);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.True(refused.Headers.Contains("Retry-After"));
            Assert.Contains("key_verification_unavailable", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        finally
        {
            Portal.Unkey.Outage = null;
        }

        Assert.Equal(HttpStatusCode.OK, (await ChatAsync(unseen)).StatusCode);
    }

    [Fact]
    public async Task Unkey_RootKey_NeverReachesTheLogs()
    {
        await ChatAsync(Portal.DevKey);

        Assert.DoesNotContain(Portal.Logs.Lines, l => l.Contains(Testing.Unkey.UnkeyStub.RootKey, StringComparison.Ordinal));
    }
}
