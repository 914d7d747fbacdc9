using System.Text.Json;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Fleet.Protocols;
using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Inference;
using Cortensor.Portal.Gateway.OpenAI;
using Cortensor.Portal.Gateway.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Endpoints;

/// <summary><c>POST /v1/chat/completions</c>, non-stream and SSE stream.</summary>
internal static class ChatCompletionsEndpoint
{
    public static async Task HandleAsync(
        HttpContext context,
        ApiKeyAuthenticator authenticator,
        InferenceService inference,
        IOptions<CortensorGatewayOptions> options,
        GatewayTelemetry telemetry,
        TimeProvider time)
    {
        var timer = ProcessingTimer.Start(time);
        var requestId = RequestIds.Get(context);
        var principal = await authenticator.AuthenticateAsync(context);
        var body = await JsonBodyReader.ReadAsync(context, GatewayJsonContext.Default.ChatCompletionRequest, options.Value.MaxRequestBodyBytes);

        var alias = RequestValidation.RequireModel(body.Model);
        var messages = RequestValidation.Messages(body.Messages);
        RequestValidation.RejectUnsupportedChatFeatures(body);
        var maxParam = body.MaxCompletionTokens is not null ? "max_completion_tokens" : "max_tokens";
        var sampling = RequestValidation.Sampling(
            body.MaxCompletionTokens ?? body.MaxTokens, maxParam, body.Temperature, body.TopP, body.TopK,
            body.PresencePenalty, body.FrequencyPenalty, body.Stop, body.N);

        var model = inference.ResolveModel(alias, principal);
        var maxTokens = InferenceService.ResolveMaxTokens(model, sampling.MaxTokens, maxParam);
        var prompt = PromptBuilder.Build(model.PromptFormat, messages);
        var promptTokens = InferenceService.EstimateTokens(prompt);
        if (promptTokens > model.ContextTokens)
        {
            throw new GatewayException(GatewayError.ContextLengthExceeded(model.ContextTokens, promptTokens));
        }

        context.Items[GatewayEndpointFilter.ModelItemKey] = model.Alias;
        var routed = inference.Route(model, new RouterCompletionRequest
        {
            Prompt = prompt,
            Messages = messages,
            PromptFormat = model.PromptFormat,
            PromptType = model.PromptType,
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
        });

        var completionId = "chatcmpl-" + requestId;
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        if (body.Stream == true)
        {
            await StreamAsync(context, inference, routed, completionId, created, alias, promptTokens, body.StreamOptions?.IncludeUsage == true, telemetry, timer);
            return;
        }

        RouterCompletion completion;
        try
        {
            completion = await routed.Client.CompleteAsync(routed.Target, routed.Request, context.RequestAborted);
        }
        catch (RouterException ex)
        {
            throw new GatewayException(inference.Map(ex, routed.Target, requestId));
        }

        var text = OutputCleaner.Clean(model.PromptFormat, completion.Text);
        var usage = Usage(completion.Usage, promptTokens, text);
        telemetry.RecordTokens(model.Alias, usage.PromptTokens, usage.CompletionTokens);

        var response = new ChatCompletionResponse(
            completionId,
            "chat.completion",
            created,
            alias,
            [new ChatChoiceDto(0, new ChatResponseMessageDto("assistant", text, null), null, InferenceService.MapFinishReason(completion.FinishReason))],
            usage);
        timer.Stamp(context.Response);
        await context.Response.WriteAsJsonAsync(response, GatewayJsonContext.Default.ChatCompletionResponse, "application/json", context.RequestAborted);
    }

    internal static UsageDto Usage(RouterUsage? reported, int estimatedPromptTokens, string completionText)
    {
        var prompt = reported?.PromptTokens ?? estimatedPromptTokens;
        var completion = reported?.CompletionTokens ?? InferenceService.EstimateTokens(completionText);
        return new UsageDto(prompt, completion, prompt + completion);
    }

    private static async Task StreamAsync(
        HttpContext context,
        InferenceService inference,
        RoutedRequest routed,
        string completionId,
        long created,
        string alias,
        int promptTokens,
        bool includeUsage,
        GatewayTelemetry telemetry,
        ProcessingTimer timer)
    {
        var requestId = RequestIds.Get(context);
        await using var chunks = routed.Client.StreamAsync(routed.Target, routed.Request, context.RequestAborted).GetAsyncEnumerator(context.RequestAborted);

        // Nothing is written until the router has produced its first chunk, so a router failure up to here is
        // still a plain JSON error with the right status (and could be failed over later).
        bool hasChunk;
        try
        {
            hasChunk = await chunks.MoveNextAsync();
        }
        catch (RouterException ex)
        {
            throw new GatewayException(inference.Map(ex, routed.Target, requestId));
        }

        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        timer.Stamp(response);
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var writer = new ChunkWriter(response, completionId, created, alias, includeUsage, context.RequestAborted);
        await writer.WriteAsync(new ChatDeltaDto("assistant", ""), null);

        var cleaner = new StreamingOutputCleaner(routed.Model.PromptFormat);
        var emitted = new System.Text.StringBuilder();
        RouterUsage? usage = null;
        string? finishReason = null;
        while (hasChunk)
        {
            var chunk = chunks.Current;
            usage = chunk.Usage ?? usage;
            var text = cleaner.Push(chunk.Text);
            if (text.Length > 0)
            {
                emitted.Append(text);
                await writer.WriteAsync(new ChatDeltaDto(null, text), null);
            }

            if (chunk.FinishReason is not null)
            {
                finishReason = chunk.FinishReason;
            }

            if (cleaner.IsStopped)
            {
                break;
            }

            try
            {
                hasChunk = await chunks.MoveNextAsync();
            }
            catch (RouterException ex)
            {
                // Bytes have reached the client: no retry, no failover. Report in-band and close.
                var error = inference.Map(ex, routed.Target, requestId);
                await response.Body.WriteAsync(ErrorWriter.ToSseEvent(context, error), context.RequestAborted);
                return;
            }
        }

        var tail = cleaner.Flush();
        if (tail.Length > 0)
        {
            emitted.Append(tail);
            await writer.WriteAsync(new ChatDeltaDto(null, tail), null);
        }

        await writer.WriteAsync(new ChatDeltaDto(null, null), InferenceService.MapFinishReason(finishReason));
        var finalUsage = Usage(usage, promptTokens, emitted.ToString());
        telemetry.RecordTokens(alias, finalUsage.PromptTokens, finalUsage.CompletionTokens);
        if (includeUsage)
        {
            await writer.WriteUsageAsync(finalUsage);
        }

        await response.Body.WriteAsync(SseWriter.Done, context.RequestAborted);
        await response.Body.FlushAsync(context.RequestAborted);
    }

    /// <summary>Writes chat.completion.chunk events that share id, created and model.</summary>
    private sealed class ChunkWriter(HttpResponse response, string id, long created, string model, bool includeUsage, CancellationToken cancellationToken)
    {
        public async Task WriteAsync(ChatDeltaDto delta, string? finishReason)
        {
            IReadOnlyList<ChatChunkChoiceDto> choices = [new ChatChunkChoiceDto(0, delta, null, finishReason)];
            var json = includeUsage
                ? JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunkWithUsage(id, "chat.completion.chunk", created, model, choices, null), GatewayJsonContext.Default.ChatCompletionChunkWithUsage)
                : JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunk(id, "chat.completion.chunk", created, model, choices), GatewayJsonContext.Default.ChatCompletionChunk);
            await response.Body.WriteAsync(SseWriter.Frame(json), cancellationToken);
            await response.Body.FlushAsync(cancellationToken);
        }

        public async Task WriteUsageAsync(UsageDto usage)
        {
            var json = JsonSerializer.SerializeToUtf8Bytes(
                new ChatCompletionChunkWithUsage(id, "chat.completion.chunk", created, model, [], usage),
                GatewayJsonContext.Default.ChatCompletionChunkWithUsage);
            await response.Body.WriteAsync(SseWriter.Frame(json), cancellationToken);
        }
    }
}
