using System.Collections.Frozen;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Fleet.Routing;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.OpenAI;
using Cortensor.Portal.Keys;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Inference;

/// <summary>A request that passed validation, entitlement and routing: ready to send.</summary>
internal sealed record RoutedRequest(CatalogModel Model, RouterTarget Target, IRouterProtocolClient Client, RouterCompletionRequest Request, int EstimatedPromptTokens);

/// <summary>
/// A router stream whose first chunk has arrived (or which ended at once). Failures after that point come back
/// from <see cref="MoveNextAsync"/> as a <see cref="GatewayError"/>: bytes may already be with the client.
/// </summary>
/// <remarks>
/// It owns the stream's <see cref="StreamLease"/>: disposing frees the slot at once when the router finished the
/// stream, else after the pool's task timeout (the router's task goes on without us).
/// </remarks>
internal sealed class OpenRouterStream(IAsyncEnumerator<RouterStreamChunk> chunks, bool hasChunk, InferenceService inference, RoutedRequest routed, string requestId, GatewayRequestState state, StreamLease lease) : IAsyncDisposable
{
    private bool _routerFinished = !hasChunk;

    public bool HasChunk { get; private set; } = hasChunk;

    public RouterStreamChunk Current => chunks.Current;

    /// <summary>Advances; returns the error to report in-band when the router fails mid-stream.</summary>
    public async Task<GatewayError?> MoveNextAsync()
    {
        try
        {
            HasChunk = await chunks.MoveNextAsync();
            _routerFinished = !HasChunk;
            return null;
        }
        catch (RouterException ex)
        {
            HasChunk = false;
            return inference.Map(ex, routed.Target, requestId, state);
        }
    }

    private bool _disposed;

    /// <summary>Ends the router call (disposing the router stream aborts it) and its slot; safe to call more than once.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        HasChunk = false;
        try
        {
            await chunks.DisposeAsync();
        }
        finally
        {
            if (_routerFinished)
            {
                lease.Dispose();
            }
            else
            {
                lease.ReleaseAfterEarlyEnd();
            }
        }
    }
}

/// <summary>Model resolution, entitlement, routing, and the mapping of router failures to client errors.</summary>
internal sealed partial class InferenceService
{
    private readonly IModelCatalog _catalog;
    /// <summary>
    /// Other members a request may move to after a failure before any byte reached the client. One: every attempt on
    /// a Cortensor router is a new on-chain task, so failover is for members that did nothing useful, not a retry loop.
    /// </summary>
    internal const int MaxFailovers = 1;

    private readonly IRouterSelector _selector;
    private readonly IStreamLeases _streams;
    private readonly IRouterMemberHealth _health;
    private readonly FrozenDictionary<RouterProtocol, IRouterProtocolClient> _clients;
    private readonly CortensorGatewayOptions _options;
    private readonly ILogger<InferenceService> _logger;

    public InferenceService(
        IModelCatalog catalog,
        IRouterSelector selector,
        IStreamLeases streams,
        IRouterMemberHealth health,
        IEnumerable<IRouterProtocolClient> clients,
        IOptions<CortensorGatewayOptions> options,
        ILogger<InferenceService> logger)
    {
        _catalog = catalog;
        _selector = selector;
        _streams = streams;
        _health = health;
        _clients = clients.GroupBy(c => c.Protocol).ToFrozenDictionary(g => g.Key, g => g.Last());
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Enabled alias → model; unknown or disabled → 404; not allowed for this key → 403.</summary>
    public CatalogModel ResolveModel(string alias, ApiKeyPrincipal principal)
    {
        if (!_catalog.TryGetModel(alias, out var model))
        {
            throw new GatewayException(GatewayError.ModelNotFound(alias));
        }

        if (!principal.IsModelAllowed(model.Alias))
        {
            throw new GatewayException(GatewayError.ModelNotAllowed(alias));
        }

        return model;
    }

    /// <summary>Output budget: the request's value, else the pool default, never above the model's limit.</summary>
    public static int ResolveMaxTokens(CatalogModel model, int? requested, string param)
    {
        if (requested is { } value)
        {
            return value <= model.MaxOutputTokens
                ? value
                : throw new GatewayException(GatewayError.InvalidParameter(param,
                    $"Invalid '{param}': {value} is more than this model's output limit of {model.MaxOutputTokens} tokens.", "integer_above_max_value"));
        }

        return Math.Min(model.Defaults.MaxTokens, model.MaxOutputTokens);
    }

    /// <summary>Rough token estimate (4 characters a token) used for limits and when a router reports no usage.</summary>
    public static int EstimateTokens(string text) => text.Length == 0 ? 0 : (text.Length + 3) / 4;

    /// <summary>
    /// Last checks before any router work (context window), then picks a (router, session) pair.
    /// <paramref name="messages"/> go to OpenAI-compatible upstreams as they are; Cortensor routers get <paramref name="prompt"/>.
    /// </summary>
    public RoutedRequest Route(
        CatalogModel model,
        string requestId,
        string prompt,
        IReadOnlyList<PromptMessage>? messages,
        int promptType,
        int maxTokens,
        SamplingRequest sampling)
    {
        var promptTokens = EstimateTokens(prompt);
        if (promptTokens > model.ContextTokens)
        {
            throw new GatewayException(GatewayError.ContextLengthExceeded(model.ContextTokens, promptTokens));
        }

        if (!_selector.TrySelect(model.Pool, out var target) || !_clients.TryGetValue(target.Protocol, out var client))
        {
            Log.NoRouterAvailable(_logger, model.Alias);
            throw new GatewayException(GatewayError.RouterUnavailable(_options.UnavailableRetryAfterSeconds));
        }

        var request = new RouterCompletionRequest
        {
            Prompt = prompt,
            Messages = messages,
            PromptFormat = model.PromptFormat,
            PromptType = promptType,
            MaxTokens = maxTokens,
            Temperature = sampling.Temperature ?? model.Defaults.Temperature,
            TopP = sampling.TopP ?? model.Defaults.TopP,
            TopK = sampling.TopK ?? model.Defaults.TopK,
            PresencePenalty = sampling.PresencePenalty,
            FrequencyPenalty = sampling.FrequencyPenalty,
            Stop = sampling.Stop,
            ClientReference = requestId,
            TaskTimeoutSeconds = model.TaskTimeoutSeconds,
            PrecommitTimeoutSeconds = model.PrecommitTimeoutSeconds,
            HttpTimeoutSlackSeconds = model.HttpTimeoutSlackSeconds,
        };
        return new RoutedRequest(model, target, client, request, promptTokens);
    }

    /// <summary>
    /// Non-stream call; router failures become the matching <see cref="GatewayException"/>. A failure that left nothing
    /// behind (see <see cref="MayFailOver"/>) moves the request to another member of the pool first, when there is one.
    /// </summary>
    public async Task<RouterCompletion> CompleteAsync(RoutedRequest routed, string requestId, GatewayRequestState state, CancellationToken cancellationToken)
    {
        for (var failovers = 0; ; failovers++)
        {
            try
            {
                return await routed.Client.CompleteAsync(routed.Target, routed.Request, cancellationToken);
            }
            catch (RouterException ex)
            {
                Observe(ex, routed.Target);
                if (failovers >= MaxFailovers || !TryFailOver(ex, ref routed, requestId, state))
                {
                    throw new GatewayException(Map(ex, routed.Target, requestId, state));
                }
            }
        }
    }

    /// <summary>
    /// Takes a stream slot in the model's pool (<see cref="IStreamLeases"/>): the selected (router, session) when it
    /// carries no other stream, else another free member, else a bounded wait. The returned request goes to the leased
    /// member; dispose the lease when the stream ends. Every member busy past the pool's wait → 503 with Retry-After.
    /// </summary>
    public async Task<(RoutedRequest Routed, StreamLease Lease)> LeaseStreamAsync(RoutedRequest routed, string requestId, CancellationToken cancellationToken)
    {
        try
        {
            var lease = await _streams.AcquireAsync(routed.Model.Pool, routed.Target, cancellationToken);
            return (routed with { Target = lease.Target }, lease);
        }
        catch (StreamCapacityException ex)
        {
            Log.StreamsBusy(_logger, requestId, routed.Model.Alias, ex.Reason);
            throw new GatewayException(GatewayError.StreamsBusy(_options.UnavailableRetryAfterSeconds));
        }
    }

    /// <summary>
    /// Takes the stream's slot (<see cref="LeaseStreamAsync"/>), starts the stream and waits for its first chunk (the
    /// router client passes on nothing before the first text or finish reason). Nothing has been written to the client
    /// yet, so a failure up to here is still a plain JSON error with the right status, and may move to another member
    /// as <see cref="CompleteAsync"/> does, but only in a non-blocking pool: in a blocking one another member's session
    /// may carry another customer's stream, so the stream answers the error instead.
    /// </summary>
    public async Task<OpenRouterStream> OpenStreamAsync(RoutedRequest routed, string requestId, GatewayRequestState state, CancellationToken cancellationToken)
    {
        // The slot is taken here, inside the admitted call: a request refused for its limits or entitlements never
        // waits in (or fills) a pool's stream queue.
        var (leased, lease) = await LeaseStreamAsync(routed, requestId, cancellationToken);
        routed = leased;
        state.RouterId = routed.Target.RouterId;
        var maxFailovers = lease.MayMoveToAnotherMember ? MaxFailovers : 0;
        for (var failovers = 0; ; failovers++)
        {
            var chunks = routed.Client.StreamAsync(routed.Target, routed.Request, cancellationToken).GetAsyncEnumerator(cancellationToken);
            try
            {
                var hasChunk = await chunks.MoveNextAsync();
                return new OpenRouterStream(chunks, hasChunk, this, routed, requestId, state, lease);
            }
            catch (RouterException ex)
            {
                await chunks.DisposeAsync();
                Observe(ex, routed.Target);
                if (failovers >= maxFailovers || !TryFailOver(ex, ref routed, requestId, state))
                {
                    ReleaseAfterFailure(lease, ex);
                    throw new GatewayException(Map(ex, routed.Target, requestId, state));
                }
            }
            catch
            {
                await chunks.DisposeAsync();
                lease.ReleaseAfterEarlyEnd(); // the client left, or the call was refused after it started
                throw;
            }
        }
    }

    /// <summary>
    /// A router that answered nothing, does not know the session or refused our key runs no task for this stream:
    /// its slot is free at once. After any other failure (a timeout, a broken answer) the task may still be running.
    /// </summary>
    private static void ReleaseAfterFailure(StreamLease lease, RouterException exception)
    {
        if (exception.Kind is RouterFailureKind.EmptyAnswer or RouterFailureKind.NotFound or RouterFailureKind.Unauthorized)
        {
            lease.Dispose();
        }
        else
        {
            lease.ReleaseAfterEarlyEnd();
        }
    }

    /// <summary>
    /// Failures after which another member may take the request: the router produced nothing (an empty answer), does
    /// not know the session (404), refused our key, or could not be reached. Not timeouts or broken answers: that
    /// router may still be working on the task, and a second task would double the on-chain work for one answer.
    /// </summary>
    private static bool MayFailOver(RouterFailureKind kind) => kind is RouterFailureKind.EmptyAnswer
        or RouterFailureKind.NotFound or RouterFailureKind.Unauthorized or RouterFailureKind.Unavailable;

    /// <summary>Fleet health learns from real calls: a 404 holds the member out of selection for a while.</summary>
    private void Observe(RouterException exception, RouterTarget target)
    {
        if (exception.Kind == RouterFailureKind.NotFound)
        {
            _health.ReportUnknownSession(target);
        }
    }

    /// <summary>True (with the next member in <paramref name="routed"/>) when another member takes the request.</summary>
    private bool TryFailOver(RouterException exception, ref RoutedRequest routed, string requestId, GatewayRequestState state)
    {
        if (!MayFailOver(exception.Kind)
            || !_selector.TrySelectOther(routed.Model.Pool, routed.Target, out var next)
            || !_clients.TryGetValue(next.Protocol, out var client))
        {
            return false;
        }

        Log.FailingOver(_logger, requestId, routed.Target.RouterId, exception.Kind, next.RouterId);
        routed = routed with { Target = next, Client = client };
        state.RouterId = next.RouterId;
        return true;
    }

    /// <summary>
    /// Router usage when reported, else estimates (4 characters a token); noted on the request state for metering.
    /// When a stop string cut the output (<paramref name="cutByStop"/>) the router counted text the client never got:
    /// completion tokens are then the estimate of the text returned, or the router's count if that is lower.
    /// </summary>
    public static UsageDto Usage(RouterUsage? reported, int estimatedPromptTokens, string completionText, GatewayRequestState state, bool cutByStop = false)
    {
        var prompt = reported?.PromptTokens ?? estimatedPromptTokens;
        var completion = reported?.CompletionTokens ?? EstimateTokens(completionText);
        var estimated = reported is null;
        if (cutByStop && EstimateTokens(completionText) < completion)
        {
            completion = EstimateTokens(completionText);
            estimated = true;
        }

        state.Tokens = (prompt, completion, estimated);
        return new UsageDto(prompt, completion, prompt + completion);
    }

    /// <summary>Router failure → the status OpenAI clients expect: 503 (+Retry-After), 504 or 502.</summary>
    public GatewayError Map(RouterException exception, RouterTarget target, string requestId, GatewayRequestState state)
    {
        state.UpstreamFailed = true;
        state.UpstreamStatus = exception.StatusCode;
        if (exception.Kind == RouterFailureKind.EmptyAnswer)
        {
            state.Tokens = (0, 0, false); // the router answered nothing: nothing to bill
        }

        Log.RouterFailed(_logger, requestId, target.RouterId, exception.Kind, exception.StatusCode, exception.Message);
        return exception.Kind switch
        {
            RouterFailureKind.Unavailable => GatewayError.RouterUnavailable(_options.UnavailableRetryAfterSeconds),
            RouterFailureKind.Timeout => GatewayError.RouterTimeout(),
            RouterFailureKind.EmptyAnswer => GatewayError.RouterEmptyAnswer(),
            _ => GatewayError.RouterFailed(),
        };
    }

    /// <summary>Router finish reasons → the closed OpenAI set (the .NET SDK throws on anything else).</summary>
    public static string MapFinishReason(string? routerReason) => routerReason switch
    {
        "length" or "max_tokens" or "max_length" => "length",
        "content_filter" => "content_filter",
        _ => "stop",
    };

    private static partial class Log
    {
        [LoggerMessage(EventId = 1100, Level = LogLevel.Warning, Message = "No router available for model {Model}")]
        public static partial void NoRouterAvailable(ILogger logger, string model);

        [LoggerMessage(EventId = 1102, Level = LogLevel.Warning, Message = "Request {RequestId}: router {RouterId} failed ({Kind}) before answering; failing over to router {NextRouterId}")]
        public static partial void FailingOver(ILogger logger, string requestId, string routerId, RouterFailureKind kind, string nextRouterId);

        [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Request {RequestId}: router {RouterId} failed ({Kind}, status {Status}): {Detail}")]
        public static partial void RouterFailed(ILogger logger, string requestId, string routerId, RouterFailureKind kind, int? status, string detail);

        [LoggerMessage(EventId = 1103, Level = LogLevel.Warning, Message = "Request {RequestId}: no stream slot for model {Model} ({Reason}); answered 503")]
        public static partial void StreamsBusy(ILogger logger, string requestId, string model, StreamRefusal reason);
    }
}
