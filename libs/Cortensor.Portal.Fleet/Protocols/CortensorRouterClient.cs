using System.Globalization;
using System.Text.Json;
using Cortensor.Portal.Fleet.Configuration;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>
/// Talks to a Cortensor router node with exactly one completion URL form per router (<see cref="RouterTarget.UrlForm"/>):
/// <c>POST {base}/api/{version}/completions/{sessionId}</c> (the default) or <c>POST {base}/api/{version}/completions</c>
/// with <c>session_id</c> in the body. Current routers accept both forms (installer PR #226), so a 404 is not retried
/// on the other form: it means the session is unknown or a proxy blocks the route, and fails as
/// <see cref="RouterFailureKind.NotFound"/> after one POST. See the Fleet README for the full behaviour.
/// </summary>
public sealed class CortensorRouterClient : IRouterProtocolClient
{
    private readonly HttpClient httpClient;
    private readonly RouterCallRunner runner;

    public CortensorRouterClient(HttpClient httpClient, TimeProvider timeProvider, ILogger<CortensorRouterClient> logger)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        this.httpClient = httpClient;
        runner = new RouterCallRunner(timeProvider, logger, stopStreamAtFinishReason: true);
    }

    public RouterProtocol Protocol => RouterProtocol.Cortensor;

    public Task<RouterCompletion> CompleteAsync(RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken)
    {
        var sessionId = Validate(target, request);
        return runner.CompleteAsync(target, request, token => SendAsync(target, request, sessionId, stream: false, token), cancellationToken);
    }

    public IAsyncEnumerable<RouterStreamChunk> StreamAsync(RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken)
    {
        var sessionId = Validate(target, request);
        return runner.StreamAsync(target, request, token => SendAsync(target, request, sessionId, stream: true, token), cancellationToken);
    }

    private static long Validate(RouterTarget target, RouterCompletionRequest request)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(request);
        if (target.SessionId is not { } sessionId)
        {
            throw new ArgumentException($"Router target {target.RouterId} has no session id; Cortensor routers need one.", nameof(target));
        }

        if (request.HttpTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(request), "The HTTP timeout must be positive.");
        }

        return sessionId;
    }

    /// <summary>One POST on the router's configured URL form; any non-success status throws (a 404 too: no second POST).</summary>
    private async Task<HttpResponseMessage> SendAsync(RouterTarget target, RouterCompletionRequest request, long sessionId, bool stream, CancellationToken cancellationToken)
    {
        var response = await SendFormAsync(target, request, sessionId, target.UrlForm, stream, cancellationToken);
        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var error = await RouterHttp.CreateStatusErrorAsync(response, target, request, cancellationToken);
            if (error.Kind != RouterFailureKind.NotFound)
            {
                throw error;
            }

            throw new RouterException(RouterFailureKind.NotFound, $"Router {target} answered 404 on the {target.UrlForm} URL form: the session is unknown to it or a proxy blocks the route.", 404)
            {
                RouterMessage = error.RouterMessage,
            };
        }
    }

    private Task<HttpResponseMessage> SendFormAsync(RouterTarget target, RouterCompletionRequest request, long sessionId, CortensorUrlForm form, bool stream, CancellationToken cancellationToken)
    {
        var version = Uri.EscapeDataString(target.ApiVersion);
        var url = form == CortensorUrlForm.Path
            ? RouterHttp.Append(target.BaseUrl, $"api/{version}/completions/{sessionId.ToString(CultureInfo.InvariantCulture)}")
            : RouterHttp.Append(target.BaseUrl, $"api/{version}/completions");
        var body = new CortensorCompletionBody
        {
            SessionId = form == CortensorUrlForm.Body ? sessionId : null,
            Prompt = request.Prompt,
            Stream = stream,
            Timeout = request.TaskTimeoutSeconds,
            PromptType = request.PromptType,
            PromptTemplate = "",
            ClientReference = request.ClientReference,
            MaxTokens = request.MaxTokens,
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = request.TopK,
            PresencePenalty = request.PresencePenalty,
            FrequencyPenalty = request.FrequencyPenalty,
            Stop = request.Stop is { Count: > 0 } stop ? stop : null,
            PrecommitTimeout = request.PrecommitTimeoutSeconds,
        };
        var bytes = JsonSerializer.SerializeToUtf8Bytes(body, RouterJsonContext.Default.CortensorCompletionBody);
        return SendOwnedAsync(RouterHttp.CreatePost(url, target.ApiKey, bytes, stream), cancellationToken);
    }

    private async Task<HttpResponseMessage> SendOwnedAsync(HttpRequestMessage message, CancellationToken cancellationToken)
    {
        using (message)
        {
            return await httpClient.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
    }
}
