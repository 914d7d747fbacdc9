using System.Text.Json;
using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Inference;
using Cortensor.Portal.Gateway.OpenAI;
using Cortensor.Portal.Gateway.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Endpoints;

/// <summary>
/// Legacy <c>POST /v1/completions</c>: the prompt goes to the router as written (<c>prompt_type</c> 1, raw),
/// and the text comes back as the model wrote it.
/// </summary>
internal static class CompletionsEndpoint
{
    private const int DefaultMaxTokens = 16; // OpenAI's default for this endpoint.

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
        var (state, principal, body) = await MeteredRequest.StartAsync(context, authenticator, GatewayJson.Context.CompletionRequest, options.Value.MaxRequestBodyBytes);

        var alias = RequestValidation.RequireModel(body.Model);
        var prompt = Prompt(body.Prompt);
        RejectUnsupported(body);
        var sampling = RequestValidation.Sampling(
            body.MaxTokens, "max_tokens", body.Temperature, body.TopP, body.TopK,
            body.PresencePenalty, body.FrequencyPenalty, body.Stop, body.N);

        var model = inference.ResolveModel(alias, principal);
        state.Model = model.Alias;
        state.Stream = body.Stream == true;
        var maxTokens = InferenceService.ResolveMaxTokens(model, sampling.MaxTokens ?? Math.Min(DefaultMaxTokens, model.MaxOutputTokens), "max_tokens");
        // prompt_type 1 (raw): the caller wrote the prompt, the router applies no template.
        var routed = inference.Route(model, requestId, prompt, messages: null, promptType: 1, maxTokens, sampling);

        var id = "cmpl-" + requestId;
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        // Entitlement and rate limits (CallAdmittedAsync) come after validation and routing checks, so a request
        // that fails those costs no quota.
        if (body.Stream == true)
        {
            // One stream per (router, session) unless the pool's routers isolate streams themselves (may wait, or 503):
            // the slot is taken once admitted, and freed when the stream is disposed.
            await using var stream = await enforcer.CallAdmittedAsync(
                context, state, principal, routed, timer, ct => inference.OpenStreamAsync(routed, requestId, state, ct), static open => open.DisposeAsync());
            timer.RouterAnswered(); // first chunk
            await StreamAsync(context, stream, routed, id, created, alias, body.StreamOptions?.IncludeUsage == true, telemetry, timer);
            return;
        }

        var completion = await enforcer.CallAdmittedAsync(context, state, principal, routed, timer, ct => inference.CompleteAsync(routed, requestId, state, ct));
        timer.RouterAnswered();
        var text = StopSequences.Cut(completion.Text, routed.Request.Stop, out var stopped);
        var usage = InferenceService.Usage(completion.Usage, routed.EstimatedPromptTokens, text, state, cutByStop: stopped);
        telemetry.RecordTokens(model.Alias, usage.PromptTokens, usage.CompletionTokens);
        var response = new TextCompletionResponse(id, "text_completion", created, alias,
            [new TextChoiceDto(text, 0, null, stopped ? "stop" : InferenceService.MapFinishReason(completion.FinishReason))], usage);
        timer.Stamp(context.Response);
        await context.Response.WriteAsJsonAsync(response, GatewayJson.Context.TextCompletionResponse, "application/json", context.RequestAborted);
    }

    private static string Prompt(JsonElement prompt)
    {
        switch (prompt.ValueKind)
        {
            case JsonValueKind.String:
                return prompt.GetString()!;
            case JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String:
                return prompt[0].GetString()!;
            case JsonValueKind.Array:
                throw new GatewayException(GatewayError.Unsupported("prompt", "Only a single string prompt is supported (no batches or token arrays)."));
            case JsonValueKind.Undefined or JsonValueKind.Null:
                throw new GatewayException(GatewayError.MissingParameter("prompt"));
            default:
                throw new GatewayException(GatewayError.InvalidParameter("prompt", "Invalid 'prompt': expected a string."));
        }
    }

    private static void RejectUnsupported(CompletionRequest body)
    {
        if (body.BestOf is > 1)
        {
            throw new GatewayException(GatewayError.Unsupported("best_of", "Only best_of=1 is supported."));
        }

        if (body.Echo == true)
        {
            throw new GatewayException(GatewayError.Unsupported("echo", "'echo' is not supported by these models."));
        }

        if (!string.IsNullOrEmpty(body.Suffix))
        {
            throw new GatewayException(GatewayError.Unsupported("suffix", "'suffix' is not supported by these models."));
        }

        if (body.Logprobs.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null))
        {
            if (body.Logprobs.ValueKind != JsonValueKind.Number || !body.Logprobs.TryGetInt32(out var n) || n is < 0 or > 5)
            {
                throw new GatewayException(GatewayError.InvalidParameter("logprobs", "Invalid 'logprobs': expected an integer between 0 and 5."));
            }

            throw new GatewayException(GatewayError.Unsupported("logprobs", "Log probabilities are not available from these models."));
        }
    }

    private static async Task StreamAsync(
        HttpContext context,
        OpenRouterStream stream,
        RoutedRequest routed,
        string id,
        long created,
        string alias,
        bool includeUsage,
        GatewayTelemetry telemetry,
        ProcessingTimer timer)
    {
        SseWriter.Start(context, timer);

        var stops = StopSequences.Create(routed.Request.Stop);
        var emitted = new System.Text.StringBuilder();
        Fleet.Protocols.RouterUsage? usage = null;
        string? finishReason = null;
        while (stream.HasChunk)
        {
            var chunk = stream.Current;
            usage = chunk.Usage ?? usage;
            finishReason = chunk.FinishReason ?? finishReason;
            var text = stops is null ? chunk.Text : stops.Push(chunk.Text);
            if (text.Length > 0)
            {
                emitted.Append(text);
                GatewayRequestState.Of(context).Streamed(emitted.Length);
                await WriteAsync(new TextChoiceDto(text, 0, null, null));
            }

            if (stops?.IsStopped == true)
            {
                await stream.DisposeAsync(); // a stop string: end the router call now, not when the response ends
                break;
            }

            if (await stream.MoveNextAsync() is { } error)
            {
                GatewayRequestState.Of(context).ErrorCode = error.Code;
                await context.Response.Body.WriteAsync(ErrorWriter.ToSseEvent(context, error), context.RequestAborted);
                return;
            }
        }

        var tail = stops is null || stops.IsStopped ? "" : stops.Flush();
        if (tail.Length > 0)
        {
            emitted.Append(tail);
            await WriteAsync(new TextChoiceDto(tail, 0, null, null));
        }

        var stopped = stops?.IsStopped == true;
        await WriteAsync(new TextChoiceDto("", 0, null, stopped ? "stop" : InferenceService.MapFinishReason(finishReason)));
        var finalUsage = InferenceService.Usage(usage, routed.EstimatedPromptTokens, emitted.ToString(), GatewayRequestState.Of(context), cutByStop: stopped);
        telemetry.RecordTokens(alias, finalUsage.PromptTokens, finalUsage.CompletionTokens);
        if (includeUsage)
        {
            await SseWriter.WriteAsync(context.Response, JsonSerializer.SerializeToUtf8Bytes(
                new TextCompletionResponseWithUsage(id, "text_completion", created, alias, [], finalUsage),
                GatewayJson.Context.TextCompletionResponseWithUsage), context.RequestAborted);
        }

        await SseWriter.WriteDoneAsync(context.Response, context.RequestAborted);

        Task WriteAsync(TextChoiceDto choice) => SseWriter.WriteAsync(context.Response, includeUsage
            ? JsonSerializer.SerializeToUtf8Bytes(new TextCompletionResponseWithUsage(id, "text_completion", created, alias, [choice], null), GatewayJson.Context.TextCompletionResponseWithUsage)
            : JsonSerializer.SerializeToUtf8Bytes(new TextCompletionResponse(id, "text_completion", created, alias, [choice], null), GatewayJson.Context.TextCompletionResponse),
            context.RequestAborted);
    }
}
