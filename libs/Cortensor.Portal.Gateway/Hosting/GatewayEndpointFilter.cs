using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Telemetry;
using Cortensor.Portal.Metering.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>
/// Wraps every gateway endpoint: request id on the response, errors in OpenAI's shape, a client that went away
/// is not an error, one log line and one metric per request. Logs carry ids, never keys or prompts.
/// </summary>
internal sealed partial class GatewayEndpointFilter(
    GatewayTelemetry telemetry,
    IUsageRecorder usage,
    Enforcement.HotPathEnforcer enforcer,
    TimeProvider time,
    ILogger<GatewayEndpointFilter> logger) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        var requestId = RequestIds.Get(context);
        var start = time.GetTimestamp();
        var receivedAt = GatewayRequestState.Of(context).ReceivedAt = time.GetUtcNow(); // the usage record's time, journaled at admission
        using var activity = GatewayTelemetry.ActivitySource.StartActivity("cortensor.gateway.request");
        var clientClosed = false;
        activity?.SetTag("cortensor.request_id", requestId);
        try
        {
            var result = await next(invocation);
            if (result is IResult typed)
            {
                await typed.ExecuteAsync(context);
            }
        }
        catch (GatewayException ex)
        {
            GatewayRequestState.Of(context).ErrorCode = ex.Error.Code ?? ex.Error.Type;
            await WriteErrorAsync(context, ex.Error);
        }
        catch (OperationCanceledException ex) when (ex is ClientClosedException || context.RequestAborted.IsCancellationRequested)
        {
            // The client disconnected; the router call was cancelled with it. 499 in logs and usage, as nginx does
            // (a started stream already sent its 200, so only our records say 499).
            clientClosed = true;
            if (!context.Response.HasStarted)
            {
                context.Response.StatusCode = StatusCodes.Status499ClientClosedRequest;
            }
        }
        catch (Exception ex)
        {
            // Also a cancellation the client did not cause (a timeout somewhere below): still one record and a
            // released hold below, never an escaped request the journal would later bill as interrupted.
            Log.Unhandled(logger, requestId, ex);
            GatewayRequestState.Of(context).ErrorCode = "server_error";
            await WriteErrorAsync(context, GatewayError.Internal());
        }

        var elapsed = time.GetElapsedTime(start);
        var status = clientClosed ? StatusCodes.Status499ClientClosedRequest : context.Response.StatusCode;
        var state = GatewayRequestState.Of(context);
        var model = state.Model;
        if (state.IsInference)
        {
            // Exactly one usage event and one request-log row per request, however it ended.
            var record = state.ToRecord(context, requestId, receivedAt, status, elapsed);
            usage.Record(record);
            enforcer.Release(state, record.Usage.PromptTokens + record.Usage.CompletionTokens);
        }

        activity?.SetTag("gen_ai.request.model", model);
        activity?.SetTag("http.response.status_code", status);
        telemetry.RecordRequest(model, status, elapsed);
        if (state.AuthenticationFailed)
        {
            // Counted per address and reason instead (events 1410/1411): anyone can send these at any rate.
            Log.AuthenticationFailed(logger, requestId, context.Request.Method, context.Request.Path, status);
        }
        else
        {
            Log.Completed(logger, requestId, RequestIds.GetClientId(context), context.Request.Method, context.Request.Path, model, status, elapsed.TotalMilliseconds);
        }
        return null;
    }

    /// <summary>
    /// An answer to a client that is already gone (its stream reset, its connection dropped, as when Kestrel drops an
    /// HTTP/2 connection for a too-slow body) cannot be sent; the request is still recorded under that answer's
    /// status, so the failed write must not skip the records below.
    /// </summary>
    private static async Task WriteErrorAsync(HttpContext context, GatewayError error)
    {
        try
        {
            await ErrorWriter.WriteAsync(context, error);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // Nothing to answer: the status is already set for the records.
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1000, Level = LogLevel.Information, Message = "Request {RequestId} (client id {ClientRequestId}) {Method} {Path} model={Model} status={Status} in {ElapsedMs:0.0} ms")]
        public static partial void Completed(ILogger logger, string requestId, string? clientRequestId, string method, string path, string? model, int status, double elapsedMs);

        [LoggerMessage(EventId = 1002, Level = LogLevel.Debug, Message = "Request {RequestId} {Method} {Path} failed authentication: status={Status}")]
        public static partial void AuthenticationFailed(ILogger logger, string requestId, string method, string path, int status);

        [LoggerMessage(EventId = 1001, Level = LogLevel.Error, Message = "Request {RequestId} failed unexpectedly")]
        public static partial void Unhandled(ILogger logger, string requestId, Exception exception);
    }
}
