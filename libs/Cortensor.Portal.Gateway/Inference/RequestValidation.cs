using System.Text;
using System.Text.Json;
using Cortensor.Portal.Fleet.Prompts;
using Cortensor.Portal.Gateway.Errors;
using Cortensor.Portal.Gateway.OpenAI;

namespace Cortensor.Portal.Gateway.Inference;

/// <summary>Sampling and length settings after validation, common to chat and text completions.</summary>
internal sealed record SamplingRequest(
    int? MaxTokens,
    double? Temperature,
    double? TopP,
    int? TopK,
    double? PresencePenalty,
    double? FrequencyPenalty,
    IReadOnlyList<string>? Stop);

/// <summary>
/// OpenAI-compatible validation. Every failure is a 400 naming the param; nothing is sent to a router
/// before the whole request has passed.
/// </summary>
internal static class RequestValidation
{
    private static readonly HashSet<string> Roles = new(StringComparer.Ordinal) { "system", "developer", "user", "assistant", "tool", "function" };

    public static string RequireModel(string? model)
        => string.IsNullOrWhiteSpace(model) ? throw new GatewayException(GatewayError.MissingParameter("model")) : model;

    public static IReadOnlyList<PromptMessage> Messages(List<ChatMessageDto>? messages)
    {
        if (messages is null)
        {
            throw new GatewayException(GatewayError.MissingParameter("messages"));
        }

        if (messages.Count == 0)
        {
            throw new GatewayException(GatewayError.InvalidParameter("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1.", "empty_array"));
        }

        var result = new List<PromptMessage>(messages.Count);
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            var param = $"messages[{i}]";
            if (message is null)
            {
                throw new GatewayException(GatewayError.InvalidParameter(param, $"Invalid '{param}': expected an object."));
            }

            if (message.Role is null || !Roles.Contains(message.Role))
            {
                throw new GatewayException(GatewayError.InvalidParameter($"{param}.role",
                    $"Invalid '{param}.role': expected one of system, developer, user, assistant, tool."));
            }

            if (message.Role == "tool" && string.IsNullOrEmpty(message.ToolCallId))
            {
                throw new GatewayException(GatewayError.MissingParameter($"{param}.tool_call_id"));
            }

            var text = ContentText(message.Content, param, allowNull: message.Role == "assistant");
            result.Add(new PromptMessage(message.Role == "function" ? "tool" : message.Role, text));
        }

        return result;
    }

    /// <summary>String content, or an array of text parts; other part types are refused clearly.</summary>
    private static string ContentText(JsonElement content, string param, bool allowNull)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                return content.GetString()!;
            case JsonValueKind.Null or JsonValueKind.Undefined when allowNull:
                return "";
            case JsonValueKind.Array:
                var sb = new StringBuilder();
                var index = 0;
                foreach (var part in content.EnumerateArray())
                {
                    var partParam = $"{param}.content[{index++}]";
                    if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
                    {
                        throw new GatewayException(GatewayError.InvalidParameter($"{partParam}.type", $"Invalid '{partParam}': expected a content part with a 'type'."));
                    }

                    if (type.GetString() != "text")
                    {
                        throw new GatewayException(GatewayError.Unsupported($"{partParam}.type",
                            $"Content parts of type '{GatewayError.Echo(type.GetString()!)}' are not supported by these models; send text parts only."));
                    }

                    if (!part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                    {
                        throw new GatewayException(GatewayError.MissingParameter($"{partParam}.text"));
                    }

                    if (sb.Length > 0)
                    {
                        sb.Append('\n');
                    }

                    sb.Append(text.GetString());
                }

                if (index == 0)
                {
                    throw new GatewayException(GatewayError.InvalidParameter($"{param}.content", $"Invalid '{param}.content': empty array."));
                }

                return sb.ToString();
            case JsonValueKind.Null or JsonValueKind.Undefined:
                throw new GatewayException(GatewayError.MissingParameter($"{param}.content"));
            default:
                throw new GatewayException(GatewayError.InvalidParameter($"{param}.content", $"Invalid '{param}.content': expected a string or an array of text parts."));
        }
    }

    public static SamplingRequest Sampling(
        int? maxTokens,
        string maxTokensParam,
        double? temperature,
        double? topP,
        int? topK,
        double? presencePenalty,
        double? frequencyPenalty,
        JsonElement stop,
        int? n)
    {
        if (n is { } count && count != 1)
        {
            if (count < 1 || count > 128)
            {
                throw new GatewayException(GatewayError.InvalidParameter("n", $"Invalid 'n': expected a value between 1 and 128, but got {count} instead."));
            }

            throw new GatewayException(GatewayError.Unsupported("n", "Only n=1 is supported: these models return one choice per request."));
        }

        if (maxTokens is < 1)
        {
            throw new GatewayException(GatewayError.InvalidParameter(maxTokensParam, $"Invalid '{maxTokensParam}': integer below minimum value. Expected a value >= 1, but got {maxTokens} instead.", "integer_below_min_value"));
        }

        Range(temperature, "temperature", 0, 2);
        Range(topP, "top_p", 0, 1);
        Range(presencePenalty, "presence_penalty", -2, 2);
        Range(frequencyPenalty, "frequency_penalty", -2, 2);
        if (topK is < 1 or > 1000)
        {
            throw new GatewayException(GatewayError.InvalidParameter("top_k", $"Invalid 'top_k': expected a value between 1 and 1000, but got {topK} instead."));
        }

        return new SamplingRequest(maxTokens, temperature, topP, topK, presencePenalty, frequencyPenalty, Stop(stop));
    }

    private static void Range(double? value, string param, double min, double max)
    {
        if (value is not { } v)
        {
            return;
        }

        if (double.IsNaN(v) || v < min)
        {
            throw new GatewayException(GatewayError.InvalidParameter(param, $"Invalid '{param}': decimal below minimum value. Expected a value >= {min}, but got {v} instead.", "decimal_below_min_value"));
        }

        if (v > max)
        {
            throw new GatewayException(GatewayError.InvalidParameter(param, $"Invalid '{param}': decimal above maximum value. Expected a value <= {max}, but got {v} instead.", "decimal_above_max_value"));
        }
    }

    private static IReadOnlyList<string>? Stop(JsonElement stop)
    {
        switch (stop.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return [CheckStopLength(stop.GetString()!)];
            case JsonValueKind.Array:
                var list = new List<string>();
                foreach (var item in stop.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.String)
                    {
                        throw new GatewayException(GatewayError.InvalidParameter("stop", "Invalid 'stop': expected a string or an array of strings."));
                    }

                    list.Add(CheckStopLength(item.GetString()!));
                }

                if (list.Count == 0)
                {
                    // OpenAI's StopConfiguration: a string, or an array of 1 to 4 strings.
                    throw new GatewayException(GatewayError.InvalidParameter("stop", "Invalid 'stop': empty array. Expected an array with minimum length 1, but got an empty array instead.", "empty_array"));
                }

                if (list.Count > 4)
                {
                    throw new GatewayException(GatewayError.InvalidParameter("stop", $"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length {list.Count} instead.", "array_above_max_length"));
                }

                return list;
            default:
                throw new GatewayException(GatewayError.InvalidParameter("stop", "Invalid 'stop': expected a string or an array of strings."));
        }
    }

    /// <summary>
    /// The longest stop string accepted. The gateway enforces stop strings itself and holds back up to this many
    /// characters of a stream while a partial match may still complete; OpenAI documents no limit.
    /// </summary>
    public const int MaxStopLength = 512;

    private static string CheckStopLength(string stop) => stop.Length <= MaxStopLength
        ? stop
        : throw new GatewayException(GatewayError.InvalidParameter("stop", $"Invalid 'stop': each stop sequence may be at most {MaxStopLength} characters long, but one has {stop.Length}.", "string_above_max_length"));

    /// <summary>Refuses chat features the routers cannot honour, instead of silently ignoring them.</summary>
    public static void RejectUnsupportedChatFeatures(ChatCompletionRequest request)
    {
        if (IsPresent(request.Tools) && !(request.Tools.ValueKind == JsonValueKind.Array && request.Tools.GetArrayLength() == 0))
        {
            throw new GatewayException(GatewayError.Unsupported("tools", "Tool calling is not supported by these models yet; remove 'tools'."));
        }

        if (IsPresent(request.Functions))
        {
            throw new GatewayException(GatewayError.Unsupported("functions", "Function calling is not supported by these models yet; remove 'functions'."));
        }

        if (IsPresent(request.ToolChoice) && !(request.ToolChoice.ValueKind == JsonValueKind.String && request.ToolChoice.GetString() == "none"))
        {
            throw new GatewayException(GatewayError.Unsupported("tool_choice", "Tool calling is not supported by these models yet; remove 'tool_choice'."));
        }

        if (request.Logprobs == true)
        {
            throw new GatewayException(GatewayError.Unsupported("logprobs", "Log probabilities are not available from these models."));
        }

        if (request.TopLogprobs is not null)
        {
            throw new GatewayException(request.Logprobs != true
                ? GatewayError.InvalidParameter("top_logprobs", "Invalid 'top_logprobs': requires 'logprobs' to be true.")
                : GatewayError.Unsupported("top_logprobs", "Log probabilities are not available from these models."));
        }

        if (IsPresent(request.LogitBias) && !(request.LogitBias.ValueKind == JsonValueKind.Object && !request.LogitBias.EnumerateObject().Any()))
        {
            throw new GatewayException(GatewayError.Unsupported("logit_bias", "'logit_bias' is not supported by these models."));
        }

        if (IsPresent(request.ResponseFormat))
        {
            if (request.ResponseFormat.ValueKind != JsonValueKind.Object
                || !request.ResponseFormat.TryGetProperty("type", out var type)
                || type.ValueKind != JsonValueKind.String)
            {
                throw new GatewayException(GatewayError.InvalidParameter("response_format.type", "Invalid 'response_format': expected an object with a 'type'."));
            }

            if (type.GetString() != "text")
            {
                throw new GatewayException(GatewayError.Unsupported("response_format.type",
                    $"response_format '{GatewayError.Echo(type.GetString()!)}' is not supported by these models yet; only 'text' is."));
            }
        }
    }

    private static bool IsPresent(JsonElement element) => element.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null);
}
