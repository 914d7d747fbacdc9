using System.Globalization;
using System.Net;
using System.Text.Json;
using Cortensor.Portal.Fleet.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>
/// Talks to a Cortensor router node: <c>POST {base}/api/{version}/completions/{sessionId}</c>, falling back once to
/// <c>POST {base}/api/{version}/completions</c> with <c>session_id</c> in the body when the router answers 404, and
/// remembering the form that worked. See <c>Protocols/README-protocols.md</c> for the full behaviour.
/// </summary>
public sealed partial class CortensorRouterClient : IRouterProtocolClient
{
    private readonly HttpClient httpClient;
    private readonly ILogger<CortensorRouterClient> logger;
    private readonly CortensorUrlFormCache urlForms;
    private readonly RouterCallRunner runner;

    /// <summary>A client that remembers URL forms for its own lifetime only.</summary>
    public CortensorRouterClient(HttpClient httpClient, TimeProvider timeProvider, ILogger<CortensorRouterClient> logger)
        : this(httpClient, timeProvider, logger, new CortensorUrlFormCache())
    {
    }

    /// <summary>A client that remembers URL forms in <paramref name="urlForms"/> (shared across instances).</summary>
    [ActivatorUtilitiesConstructor]
    public CortensorRouterClient(HttpClient httpClient, TimeProvider timeProvider, ILogger<CortensorRouterClient> logger, CortensorUrlFormCache urlForms)
    {
        ArgumentNullException.ThrowIfNull(httpClient);
        ArgumentNullException.ThrowIfNull(timeProvider);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentNullException.ThrowIfNull(urlForms);
        this.httpClient = httpClient;
        this.logger = logger;
        this.urlForms = urlForms;
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

    /// <summary>Sends with the remembered (or the path) form; on 404 tries the other form once.</summary>
    private async Task<HttpResponseMessage> SendAsync(RouterTarget target, RouterCompletionRequest request, long sessionId, bool stream, CancellationToken cancellationToken)
    {
        var first = urlForms.Get(target) ?? CortensorUrlForm.Path;
        var response = await SendFormAsync(target, request, sessionId, first, stream, cancellationToken);
        if (response.StatusCode != HttpStatusCode.NotFound)
        {
            return await AcceptAsync(response, target, request, first, cancellationToken);
        }

        RouterException firstError;
        using (response)
        {
            firstError = await RouterHttp.CreateStatusErrorAsync(response, target, request, cancellationToken);
        }

        var second = first == CortensorUrlForm.Path ? CortensorUrlForm.Body : CortensorUrlForm.Path;
        Log.UrlFormNotFound(logger, target.ToString(), first, second);
        response = await SendFormAsync(target, request, sessionId, second, stream, cancellationToken);
        if (response.StatusCode != HttpStatusCode.NotFound)
        {
            return await AcceptAsync(response, target, request, second, cancellationToken);
        }

        using (response)
        {
            var secondError = await RouterHttp.CreateStatusErrorAsync(response, target, request, cancellationToken);
            throw new RouterException(RouterFailureKind.NotFound, $"Router {target} answered 404 on both completion URL forms (session or route unknown).", 404)
            {
                RouterMessage = secondError.RouterMessage ?? firstError.RouterMessage,
            };
        }
    }

    private async Task<HttpResponseMessage> AcceptAsync(HttpResponseMessage response, RouterTarget target, RouterCompletionRequest request, CortensorUrlForm form, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            if (urlForms.Get(target) != form)
            {
                urlForms.Remember(target, form);
                Log.UrlFormRemembered(logger, target.ToString(), form);
            }

            return response;
        }

        using (response)
        {
            throw await RouterHttp.CreateStatusErrorAsync(response, target, request, cancellationToken);
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 4010, EventName = "CortensorUrlFormNotFound", Level = LogLevel.Information,
            Message = "Router {RouterId} answered 404 on the {UrlForm} URL form; trying the {OtherUrlForm} form once")]
        public static partial void UrlFormNotFound(ILogger logger, string routerId, CortensorUrlForm urlForm, CortensorUrlForm otherUrlForm);

        [LoggerMessage(EventId = 4011, EventName = "CortensorUrlFormRemembered", Level = LogLevel.Debug,
            Message = "Router {RouterId} uses the {UrlForm} URL form; later calls go straight to it")]
        public static partial void UrlFormRemembered(ILogger logger, string routerId, CortensorUrlForm urlForm);
    }
}
