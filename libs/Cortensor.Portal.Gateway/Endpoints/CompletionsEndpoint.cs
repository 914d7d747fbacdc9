using System.Text.Json;
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
        IOptions<CortensorGatewayOptions> options,
        GatewayTelemetry telemetry,
        TimeProvider time)
    {
        var timer = ProcessingTimer.Start(time);
        var requestId = RequestIds.Get(context);
        var principal = await authenticator.AuthenticateAsync(context);
        var body = await JsonBodyReader.ReadAsync(context, GatewayJsonContext.Default.CompletionRequest, options.Value.MaxRequestBodyBytes);

        var alias = RequestValidation.RequireModel(body.Model);
        var prompt = Prompt(body.Prompt);
        RejectUnsupported(body);
        var sampling = RequestValidation.Sampling(
            body.MaxTokens, "max_tokens", body.Temperature, body.TopP, body.TopK,
            body.PresencePenalty, body.FrequencyPenalty, body.Stop, body.N);

        var model = inference.ResolveModel(alias, principal);
        var maxTokens = InferenceService.ResolveMaxTokens(model, sampling.MaxTokens ?? Math.Min(DefaultMaxTokens, model.MaxOutputTokens), "max_tokens");
        var promptTokens = InferenceService.EstimateTokens(prompt);
        if (promptTokens > model.ContextTokens)
        {
            throw new GatewayException(GatewayError.ContextLengthExceeded(model.ContextTokens, promptTokens));
        }

        context.Items[GatewayEndpointFilter.ModelItemKey] = model.Alias;
        var routed = inference.Route(model, new RouterCompletionRequest
        {
            Prompt = prompt,
            PromptType = 1,
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

        var id = "cmpl-" + requestId;
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        if (body.Stream == true)
        {
            await StreamAsync(context, inference, routed, id, created, alias, promptTokens, body.StreamOptions?.IncludeUsage == true, telemetry, timer);
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

        var usage = ChatCompletionsEndpoint.Usage(completion.Usage, promptTokens, completion.Text);
        telemetry.RecordTokens(model.Alias, usage.PromptTokens, usage.CompletionTokens);
        var response = new TextCompletionResponse(id, "text_completion", created, alias,
            [new TextChoiceDto(completion.Text, 0, null, InferenceService.MapFinishReason(completion.FinishReason))], usage);
        timer.Stamp(context.Response);
        await context.Response.WriteAsJsonAsync(response, GatewayJsonContext.Default.TextCompletionResponse, "application/json", context.RequestAborted);
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
        InferenceService inference,
        RoutedRequest routed,
        string id,
        long created,
        string alias,
        int promptTokens,
        bool includeUsage,
        GatewayTelemetry telemetry,
        ProcessingTimer timer)
    {
        var requestId = RequestIds.Get(context);
        await using var chunks = routed.Client.StreamAsync(routed.Target, routed.Request, context.RequestAborted).GetAsyncEnumerator(context.RequestAborted);
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

        var emitted = new System.Text.StringBuilder();
        RouterUsage? usage = null;
        string? finishReason = null;
        while (hasChunk)
        {
            var chunk = chunks.Current;
            usage = chunk.Usage ?? usage;
            finishReason = chunk.FinishReason ?? finishReason;
            if (chunk.Text.Length > 0)
            {
                emitted.Append(chunk.Text);
                await WriteAsync(new TextChoiceDto(chunk.Text, 0, null, null));
            }

            try
            {
                hasChunk = await chunks.MoveNextAsync();
            }
            catch (RouterException ex)
            {
                await response.Body.WriteAsync(ErrorWriter.ToSseEvent(context, inference.Map(ex, routed.Target, requestId)), context.RequestAborted);
                return;
            }
        }

        await WriteAsync(new TextChoiceDto("", 0, null, InferenceService.MapFinishReason(finishReason)));
        var finalUsage = ChatCompletionsEndpoint.Usage(usage, promptTokens, emitted.ToString());
        telemetry.RecordTokens(alias, finalUsage.PromptTokens, finalUsage.CompletionTokens);
        if (includeUsage)
        {
            var json = JsonSerializer.SerializeToUtf8Bytes(
                new TextCompletionResponseWithUsage(id, "text_completion", created, alias, [], finalUsage),
                GatewayJsonContext.Default.TextCompletionResponseWithUsage);
            await response.Body.WriteAsync(SseWriter.Frame(json), context.RequestAborted);
        }

        await response.Body.WriteAsync(SseWriter.Done, context.RequestAborted);
        await response.Body.FlushAsync(context.RequestAborted);

        async Task WriteAsync(TextChoiceDto choice)
        {
            var json = includeUsage
                ? JsonSerializer.SerializeToUtf8Bytes(new TextCompletionResponseWithUsage(id, "text_completion", created, alias, [choice], null), GatewayJsonContext.Default.TextCompletionResponseWithUsage)
                : JsonSerializer.SerializeToUtf8Bytes(new TextCompletionResponse(id, "text_completion", created, alias, [choice], null), GatewayJsonContext.Default.TextCompletionResponse);
            await response.Body.WriteAsync(SseWriter.Frame(json), context.RequestAborted);
            await response.Body.FlushAsync(context.RequestAborted);
        }
    }
}
