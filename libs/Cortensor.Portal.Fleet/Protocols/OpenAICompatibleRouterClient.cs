using System.Text.Json;
using Cortensor.Portal.Fleet.Configuration;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>
/// Talks to an OpenAI-compatible upstream (vLLM, llama.cpp server, Ollama): <c>POST {base}/v1/chat/completions</c>
/// when the request carries messages, else <c>POST {base}/v1/completions</c> with the flat prompt. A base URL that
/// already ends in <c>/v1</c> is not doubled.
/// </summary>
public sealed class OpenAICompatibleRouterClient : IRouterProtocolClient
{
    private readonly HttpClient httpClient;
    private readonly RouterCallRunner runner;

    public OpenAICompatibleRouterClient(HttpClient httpClient, TimeProvider timeProvider, ILogger<OpenAICompatibleRouterClient> logger)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        this.httpClient = httpClient;

        // OpenAI sends the usage chunk after the finish_reason chunk, so streams are read to [DONE] (or EOF).
        runner = new RouterCallRunner(timeProvider, logger, stopStreamAtFinishReason: false);
    }

    public RouterProtocol Protocol => RouterProtocol.OpenAICompatible;

    public Task<RouterCompletion> CompleteAsync(RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken)
    {
        Validate(target, request);
        return runner.CompleteAsync(target, request, token => SendAsync(target, request, stream: false, token), cancellationToken);
    }

    public IAsyncEnumerable<RouterStreamChunk> StreamAsync(RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken)
    {
        Validate(target, request);
        return runner.StreamAsync(target, request, token => SendAsync(target, request, stream: true, token), cancellationToken);
    }

    /// <summary><c>{base}/v1/{endpoint}</c>, or <c>{base}/{endpoint}</c> when the base already ends in <c>/v1</c>.</summary>
    internal static Uri EndpointUrl(Uri baseUrl, string endpoint)
    {
        var path = baseUrl.AbsolutePath.TrimEnd('/');
        return path.EndsWith("/v1", StringComparison.OrdinalIgnoreCase)
            ? RouterHttp.Append(baseUrl, endpoint)
            : RouterHttp.Append(baseUrl, "v1/" + endpoint);
    }

    private static void Validate(RouterTarget target, RouterCompletionRequest request)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(request);
        if (request.HttpTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "The HTTP timeout must be positive.");
        }
    }

    private async Task<HttpResponseMessage> SendAsync(RouterTarget target, RouterCompletionRequest request, bool stream, CancellationToken cancellationToken)
    {
        var chat = request.Messages is not null;
        var body = new OpenAICompletionBody
        {
            Model = target.UpstreamModel,
            Messages = chat ? request.Messages!.Select(static m => new OpenAIMessage(m.Role, m.Content)).ToArray() : null,
            Prompt = chat ? null : request.Prompt,
            MaxTokens = request.MaxTokens,
            Temperature = request.Temperature,
            TopP = request.TopP,
            PresencePenalty = request.PresencePenalty,
            FrequencyPenalty = request.FrequencyPenalty,
            Stop = request.Stop is { Count: > 0 } stop ? stop : null,
            Stream = stream,
            StreamOptions = stream ? new OpenAIStreamOptions(IncludeUsage: true) : null,
        };
        var url = EndpointUrl(target.BaseUrl, chat ? "chat/completions" : "completions");
        var bytes = JsonSerializer.SerializeToUtf8Bytes(body, RouterJsonContext.Default.OpenAICompletionBody);

        HttpResponseMessage response;
        using (var message = RouterHttp.CreatePost(url, target.ApiKey, bytes, stream))
        {
            response = await httpClient.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            throw await RouterHttp.CreateStatusErrorAsync(response, target, request, cancellationToken);
        }
    }
}
