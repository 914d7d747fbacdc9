using System.Text;
using System.Text.Json;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Inference;
using Cortensor.Portal.Gateway.OpenAI;
using Cortensor.Portal.Gateway.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Endpoints;

/// <summary><c>POST /v1/chat/completions</c>, non-stream and SSE stream.</summary>
internal static class ChatCompletionsEndpoint
{
    public static async Task HandleAsync(
        HttpContext context,
        ApiKeyAuthenticator authenticator,
        InferenceService inference,
        HotPathEnforcer enforcer,
        IOptions<CortensorGatewayOptions> options,
        GatewayTelemetry telemetry,
        TimeProvider time)
    {
        var timer = ProcessingTimer.Start(time);
        var requestId = RequestIds.Get(context);
        var (state, principal, body) = await MeteredRequest.StartAsync(context, authenticator, GatewayJson.Context.ChatCompletionRequest, options.Value.MaxRequestBodyBytes);

        var alias = RequestValidation.RequireModel(body.Model);
        var messages = RequestValidation.Messages(body.Messages);
        RequestValidation.RejectUnsupportedChatFeatures(body);
        var maxParam = body.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        var sampling = RequestValidation.Sampling(
            body.MaxCompletionTokens ?? body.MaxTokens, maxParam, body.Temperature, body.TopP, body.TopK,
            body.PresencePenalty, body.FrequencyPenalty, body.Stop, body.N);

        var model = inference.ResolveModel(alias, principal);
        state.Model = model.Alias;
        state.Stream = body.Stream == true;
        var maxTokens = InferenceService.ResolveMaxTokens(model, sampling.MaxTokens, maxParam);
        var prompt = PromptBuilder.Build(model.PromptFormat, messages);
        var routed = inference.Route(model, requestId, prompt, messages, model.PromptType, maxTokens, sampling);

        var completionId = "chatcmpl-" + requestId;
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        // Entitlement and rate limits (CallAdmittedAsync) come after validation and routing checks, so a request
        // that fails those costs no quota.
        if (body.Stream == true)
        {
            var writer = new ChunkWriter(context.Response, completionId, created, alias, body.StreamOptions?.IncludeUsage == true, context.RequestAborted);
            // One stream per (router, session) unless the pool's routers isolate streams themselves (may wait, or 503):
            // the slot is taken once admitted, and freed when the stream is disposed.
            await using var stream = await enforcer.CallAdmittedAsync(
                context, state, principal, routed, timer, ct => inference.OpenStreamAsync(routed, requestId, state, ct), static open => open.DisposeAsync());
            timer.RouterAnswered(); // first chunk
            await StreamAsync(context, stream, routed, writer, telemetry, timer);
            return;
        }

        var completion = await enforcer.CallAdmittedAsync(context, state, principal, routed, timer, ct => inference.CompleteAsync(routed, requestId, state, ct));
        timer.RouterAnswered();
        var text = StopSequences.Cut(OutputCleaner.Clean(model.PromptFormat, completion.Text), routed.Request.Stop, out var stopped);
        var usage = InferenceService.Usage(completion.Usage, routed.EstimatedPromptTokens, text, state, cutByStop: stopped);
        telemetry.RecordTokens(model.Alias, usage.PromptTokens, usage.CompletionTokens);

        var response = new ChatCompletionResponse(
            completionId,
            "chat.completion",
            created,
            alias,
            [new ChatChoiceDto(0, new ChatResponseMessageDto("assistant", text, null), null, stopped ? "stop" : InferenceService.MapFinishReason(completion.FinishReason))],
            usage);
        timer.Stamp(context.Response);
        await context.Response.WriteAsJsonAsync(response, GatewayJson.Context.ChatCompletionResponse, "application/json", context.RequestAborted);
    }

    private static async Task StreamAsync(
        HttpContext context,
        OpenRouterStream stream,
        RoutedRequest routed,
        ChunkWriter writer,
        GatewayTelemetry telemetry,
        ProcessingTimer timer)
    {
        SseWriter.Start(context, timer);
        await writer.WriteAsync(new ChatDeltaDto("assistant", ""), null);

        var cleaner = new StreamingOutputCleaner(routed.Model.PromptFormat);
        var stops = StopSequences.Create(routed.Request.Stop);
        var emitted = new StringBuilder();
        Fleet.Protocols.RouterUsage? usage = null;
        string? finishReason = null;
        while (stream.HasChunk)
        {
            var chunk = stream.Current;
            usage = chunk.Usage ?? usage;
            finishReason = chunk.FinishReason ?? finishReason;
            var text = cleaner.Push(chunk.Text);
            if (stops is not null)
            {
                text = stops.Push(text);
            }

            if (text.Length > 0)
            {
                emitted.Append(text);
                GatewayRequestState.Of(context).Streamed(emitted.Length);
                await writer.WriteAsync(new ChatDeltaDto(null, text), null);
            }

            if (stops?.IsStopped == true)
            {
                await stream.DisposeAsync(); // a stop string: end the router call now, not when the response ends
                break;
            }

            if (cleaner.IsStopped)
            {
                break; // the model began a new turn: stop reading (disposing the stream aborts the router call)
            }

            if (await stream.MoveNextAsync() is { } error)
            {
                GatewayRequestState.Of(context).ErrorCode = error.Code;
                // Bytes have reached the client: no retry, no failover. Report in-band and close.
                await context.Response.Body.WriteAsync(ErrorWriter.ToSseEvent(context, error), context.RequestAborted);
                return;
            }
        }

        var tail = cleaner.Flush();
        if (stops is not null)
        {
            // After a stop string the cleaner's held-back tail is past the cut.
            tail = stops.IsStopped ? "" : stops.Push(tail) + stops.Flush();
        }

        if (tail.Length > 0)
        {
            emitted.Append(tail);
            await writer.WriteAsync(new ChatDeltaDto(null, tail), null);
        }

        var stopped = stops?.IsStopped == true;
        await writer.WriteAsync(new ChatDeltaDto(null, null), stopped ? "stop" : InferenceService.MapFinishReason(finishReason));
        var finalUsage = InferenceService.Usage(usage, routed.EstimatedPromptTokens, emitted.ToString(), GatewayRequestState.Of(context), cutByStop: stopped);
        telemetry.RecordTokens(routed.Model.Alias, finalUsage.PromptTokens, finalUsage.CompletionTokens);
        await writer.WriteUsageAsync(finalUsage);
        await SseWriter.WriteDoneAsync(context.Response, context.RequestAborted);
    }

    /// <summary>Writes chat.completion.chunk events that share id, created and model.</summary>
    private sealed class ChunkWriter(HttpResponse response, string id, long created, string model, bool includeUsage, CancellationToken cancellationToken)
    {
        public Task WriteAsync(ChatDeltaDto delta, string? finishReason)
        {
            IReadOnlyList<ChatChunkChoiceDto> choices = [new ChatChunkChoiceDto(0, delta, null, finishReason)];
            var json = includeUsage
                ? JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunkWithUsage(id, "chat.completion.chunk", created, model, choices, null), GatewayJson.Context.ChatCompletionChunkWithUsage)
                : JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunk(id, "chat.completion.chunk", created, model, choices), GatewayJson.Context.ChatCompletionChunk);
            return SseWriter.WriteAsync(response, json, cancellationToken);
        }

        /// <summary>The extra <c>choices: []</c> chunk with usage, only when the client asked for it.</summary>
        public Task WriteUsageAsync(UsageDto usage)
        {
            if (!includeUsage)
            {
                return Task.CompletedTask;
            }

            var json = JsonSerializer.SerializeToUtf8Bytes(
                new ChatCompletionChunkWithUsage(id, "chat.completion.chunk", created, model, [], usage),
                GatewayJson.Context.ChatCompletionChunkWithUsage);
            return SseWriter.WriteAsync(response, json, cancellationToken);
        }
    }
}
