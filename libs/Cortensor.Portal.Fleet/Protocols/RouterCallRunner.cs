using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>
/// The part of a router call both protocols share: the HTTP timeout (over the whole call, stream body included, on the
/// injected <see cref="TimeProvider"/>), failure mapping, response reading, and logging.
/// </summary>
/// <remarks>
/// The send delegate returns a success response or throws <see cref="RouterException"/>; it gets the call's token
/// (caller cancellation linked with the HTTP timeout).
/// </remarks>
internal sealed partial class RouterCallRunner(TimeProvider timeProvider, ILogger logger, bool stopStreamAtFinishReason)
{
    public async Task<RouterCompletion> CompleteAsync(
        RouterTarget target,
        RouterCompletionRequest request,
        Func<CancellationToken, Task<HttpResponseMessage>> send,
        CancellationToken cancellationToken)
    {
        var started = timeProvider.GetTimestamp();
        using var timeout = new CancellationTokenSource(request.HttpTimeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        try
        {
            using var response = await send(linked.Token);
            var completion = await RouterHttp.ReadCompletionAsync(response, target, request, linked.Token);
            Log.CallSucceeded(logger, target.ToString(), (int)response.StatusCode, Elapsed(started));
            return completion;
        }
        catch (Exception ex) when (Fail(ex, target, request, cancellationToken, started, chunksYielded: 0) is { } failure)
        {
            if (ReferenceEquals(ex, failure))
            {
                throw;
            }

            throw failure;
        }
    }

    public async IAsyncEnumerable<RouterStreamChunk> StreamAsync(
        RouterTarget target,
        RouterCompletionRequest request,
        Func<CancellationToken, Task<HttpResponseMessage>> send,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var started = timeProvider.GetTimestamp();
        using var timeout = new CancellationTokenSource(request.HttpTimeout, timeProvider);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);

        HttpResponseMessage response;
        try
        {
            response = await send(linked.Token);
        }
        catch (Exception ex) when (Fail(ex, target, request, cancellationToken, started, chunksYielded: 0) is { } failure)
        {
            if (ReferenceEquals(ex, failure))
            {
                throw;
            }

            throw failure;
        }

        // Disposing the response (when the caller disposes the enumerator, at the end, or on failure) aborts the router call.
        using (response)
        {
            if (RouterHttp.IsJson(response.Content))
            {
                // The router ignored stream:true and answered with one JSON completion: one chunk.
                RouterCompletion whole;
                try
                {
                    whole = await RouterHttp.ReadCompletionAsync(response, target, request, linked.Token);
                }
                catch (Exception ex) when (Fail(ex, target, request, cancellationToken, started, chunksYielded: 0) is { } failure)
                {
                    if (ReferenceEquals(ex, failure))
                    {
                        throw;
                    }

                    throw failure;
                }

                Log.StreamAnsweredWithJson(logger, target.ToString());
                yield return new RouterStreamChunk(whole.Text, whole.FinishReason, whole.Usage);
                Log.StreamCompleted(logger, target.ToString(), (int)response.StatusCode, 1, Elapsed(started));
                yield break;
            }

            var chunks = 0;
            // Until a chunk carries text or a finish reason nothing is passed on (a usage-only chunk waits and rides
            // on the next one), so a stream that ends without either fails before the caller has sent any byte.
            var answered = false;
            RouterUsage? heldUsage = null;
            IAsyncEnumerator<RouterStreamChunk>? enumerator = null;
            try
            {
                while (true)
                {
                    bool hasNext;
                    try
                    {
                        if (enumerator is null)
                        {
                            var body = await response.Content.ReadAsStreamAsync(linked.Token);
                            enumerator = new CortensorSseParser(logger, stopStreamAtFinishReason, request.ClientReference)
                                .ParseAsync(body, linked.Token)
                                .GetAsyncEnumerator(linked.Token);
                        }

                        hasNext = await enumerator.MoveNextAsync();
                    }
                    catch (Exception ex) when (Fail(ex, target, request, cancellationToken, started, chunks) is { } failure)
                    {
                        if (ReferenceEquals(ex, failure))
                        {
                            throw;
                        }

                        throw failure;
                    }

                    if (!hasNext)
                    {
                        if (!answered)
                        {
                            var empty = new RouterException(RouterFailureKind.EmptyAnswer, $"Router {target} ended its stream with no text and no finish reason.", (int)response.StatusCode);
                            Log.CallFailed(logger, target.ToString(), empty.Kind, empty.StatusCode, 0, Elapsed(started));
                            throw empty;
                        }

                        break;
                    }

                    var chunk = enumerator.Current;
                    if (!answered)
                    {
                        if (chunk.Text.Length == 0 && chunk.FinishReason is null)
                        {
                            heldUsage = chunk.Usage ?? heldUsage;
                            continue;
                        }

                        answered = true;
                        chunk = chunk with { Usage = chunk.Usage ?? heldUsage };
                    }

                    chunks++;
                    yield return chunk;
                }
            }
            finally
            {
                if (enumerator is not null)
                {
                    await enumerator.DisposeAsync();
                }
            }

            Log.StreamCompleted(logger, target.ToString(), (int)response.StatusCode, chunks, Elapsed(started));
        }
    }

    /// <summary>
    /// The exception to throw for <paramref name="exception"/>, or null to let it propagate untouched (caller
    /// cancellation, programming errors). Failures after the first chunk become <see cref="RouterFailureKind.BadResponse"/>,
    /// except a timeout, which stays <see cref="RouterFailureKind.Timeout"/>.
    /// </summary>
    private RouterException? Fail(Exception exception, RouterTarget target, RouterCompletionRequest request, CancellationToken callerToken, long started, int chunksYielded)
    {
        if (exception is OperationCanceledException && callerToken.IsCancellationRequested)
        {
            Log.CallCanceled(logger, target.ToString(), Elapsed(started));
            return null;
        }

        var failure = exception as RouterException ?? RouterHttp.TranslateTransportFailure(exception, target, request, callerToken);
        if (failure is null)
        {
            return null;
        }

        if (chunksYielded > 0 && failure.Kind is not (RouterFailureKind.BadResponse or RouterFailureKind.Timeout))
        {
            failure = new RouterException(RouterFailureKind.BadResponse, $"Router {target} stream broke after {chunksYielded} chunk(s).", failure.StatusCode, exception)
            {
                RouterMessage = failure.RouterMessage,
            };
        }

        Log.CallFailed(logger, target.ToString(), failure.Kind, failure.StatusCode, chunksYielded, Elapsed(started));
        return failure;
    }

    private double Elapsed(long started) => timeProvider.GetElapsedTime(started).TotalMilliseconds;

    private static partial class Log
    {
        [LoggerMessage(EventId = 4000, EventName = "RouterCallSucceeded", Level = LogLevel.Information,
            Message = "Router {RouterId} answered {StatusCode} in {DurationMs:F0} ms")]
        public static partial void CallSucceeded(ILogger logger, string routerId, int statusCode, double durationMs);

        [LoggerMessage(EventId = 4001, EventName = "RouterCallFailed", Level = LogLevel.Warning,
            Message = "Router {RouterId} call failed: {FailureKind}, status {StatusCode}, after {ChunkCount} chunks and {DurationMs:F0} ms")]
        public static partial void CallFailed(ILogger logger, string routerId, RouterFailureKind failureKind, int? statusCode, int chunkCount, double durationMs);

        [LoggerMessage(EventId = 4002, EventName = "RouterStreamCompleted", Level = LogLevel.Information,
            Message = "Router {RouterId} stream ({StatusCode}) finished with {ChunkCount} chunks in {DurationMs:F0} ms")]
        public static partial void StreamCompleted(ILogger logger, string routerId, int statusCode, int chunkCount, double durationMs);

        [LoggerMessage(EventId = 4003, EventName = "RouterStreamAnsweredWithJson", Level = LogLevel.Debug,
            Message = "Router {RouterId} answered a stream request with JSON; passing it on as one chunk")]
        public static partial void StreamAnsweredWithJson(ILogger logger, string routerId);

        [LoggerMessage(EventId = 4004, EventName = "RouterCallCanceled", Level = LogLevel.Debug,
            Message = "Router {RouterId} call was canceled by the caller after {DurationMs:F0} ms")]
        public static partial void CallCanceled(ILogger logger, string routerId, double durationMs);
    }
}
