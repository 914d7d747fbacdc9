using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.EndToEnd.Tests;

/// <summary>
/// A small OpenAI-compatible server (what vLLM, llama.cpp server and Ollama expose) on a loopback port, so a pool
/// can front it. Answers "upstream saw: {last message} (model {model})", streamed in two pieces when asked.
/// </summary>
public sealed class FakeOpenAIUpstream : IAsyncDisposable
{
    public const string ApiKey = "upstream-key-7d1";

    private readonly WebApplication _app;

    private FakeOpenAIUpstream(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    public ConcurrentQueue<string> AuthorizationHeaders { get; } = new();

    /// <summary>The W3C trace headers (<c>traceparent</c>, then <c>tracestate</c>, empty when absent) of each request, by its last message.</summary>
    public ConcurrentDictionary<string, string> TraceHeadersByLastMessage { get; } = new();

    public static async Task<FakeOpenAIUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        FakeOpenAIUpstream? self = null;
        app.MapPost("/v1/chat/completions", async (HttpContext context) =>
        {
            self!.AuthorizationHeaders.Enqueue(context.Request.Headers.Authorization.ToString());
            using var doc = await JsonDocument.ParseAsync(context.Request.Body);
            var model = doc.RootElement.GetProperty("model").GetString();
            var last = doc.RootElement.GetProperty("messages").EnumerateArray().Last().GetProperty("content").GetString();
            self.TraceHeadersByLastMessage[last ?? ""] = context.Request.Headers["traceparent"] + "|" + context.Request.Headers["tracestate"];
            var text = $"upstream saw: {last} (model {model})";
            if (doc.RootElement.TryGetProperty("stream", out var stream) && stream.GetBoolean())
            {
                context.Response.ContentType = "text/event-stream";
                var half = text.Length / 2;
                foreach (var piece in new[] { text[..half], text[half..] })
                {
                    await context.Response.WriteAsync($"data: {{\"id\":\"u1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{JsonSerializer.Serialize(piece)}}},\"finish_reason\":null}}]}}\n\n");
                }

                await context.Response.WriteAsync($"data: {{\"id\":\"u1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n");
                await context.Response.WriteAsync($"data: {{\"id\":\"u1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"{model}\",\"choices\":[],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}}}\n\n");
                await context.Response.WriteAsync("data: [DONE]\n\n");
                return;
            }

            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync($"{{\"id\":\"u1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"{model}\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":{JsonSerializer.Serialize(text)}}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}}}");
        });
        await app.StartAsync();
        self = new FakeOpenAIUpstream(app, new Uri(app.Urls.First()));
        return self;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
