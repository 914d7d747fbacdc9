using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.Portal.Gateway.OpenAI;

// Request types are deserialised leniently (content and stop can be string or array) and validated by hand,
// so every 400 can name the offending param. Unknown fields are kept aside (not skipped) only so that the duplicate
// key check (see GatewayJsonContext) reaches into them; a request without unknown fields allocates nothing for it.

internal sealed class ChatCompletionRequest
{
    public string? Model { get; set; }

    public List<ChatMessageDto>? Messages { get; set; }

    public bool? Stream { get; set; }

    public StreamOptionsDto? StreamOptions { get; set; }

    public int? MaxTokens { get; set; }

    public int? MaxCompletionTokens { get; set; }

    public double? Temperature { get; set; }

    public double? TopP { get; set; }

    public int? TopK { get; set; }

    public int? N { get; set; }

    public JsonElement Stop { get; set; }

    public double? PresencePenalty { get; set; }

    public double? FrequencyPenalty { get; set; }

    public bool? Logprobs { get; set; }

    public int? TopLogprobs { get; set; }

    public JsonElement Tools { get; set; }

    public JsonElement ToolChoice { get; set; }

    public JsonElement Functions { get; set; }

    public JsonElement ResponseFormat { get; set; }

    public JsonElement LogitBias { get; set; }

    /// <summary>Fields this gateway does not use. Captured only so that repeated keys inside them are refused too.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Ignored { get; set; }
}

internal sealed class ChatMessageDto
{
    public string? Role { get; set; }

    public JsonElement Content { get; set; }

    public string? Name { get; set; }

    public string? ToolCallId { get; set; }

    /// <summary>Fields this gateway does not use. Captured only so that repeated keys inside them are refused too.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Ignored { get; set; }
}

internal sealed class StreamOptionsDto
{
    public bool? IncludeUsage { get; set; }

    /// <summary>Fields this gateway does not use. Captured only so that repeated keys inside them are refused too.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Ignored { get; set; }
}

internal sealed class CompletionRequest
{
    public string? Model { get; set; }

    public JsonElement Prompt { get; set; }

    public bool? Stream { get; set; }

    public StreamOptionsDto? StreamOptions { get; set; }

    public int? MaxTokens { get; set; }

    public double? Temperature { get; set; }

    public double? TopP { get; set; }

    public int? TopK { get; set; }

    public int? N { get; set; }

    public int? BestOf { get; set; }

    public JsonElement Stop { get; set; }

    public double? PresencePenalty { get; set; }

    public double? FrequencyPenalty { get; set; }

    public JsonElement Logprobs { get; set; }

    public bool? Echo { get; set; }

    public string? Suffix { get; set; }

    /// <summary>Fields this gateway does not use. Captured only so that repeated keys inside them are refused too.</summary>
    [JsonExtensionData]
    public Dictionary<string, JsonElement>? Ignored { get; set; }
}

internal sealed record UsageDto(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

internal sealed record ChatCompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<ChatChoiceDto> Choices,
    UsageDto Usage);

internal sealed record ChatChoiceDto(
    int Index,
    ChatResponseMessageDto Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs,
    string FinishReason);

internal sealed record ChatResponseMessageDto(
    string Role,
    string? Content,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Refusal);

/// <summary>One streamed chunk without a usage key (the client did not ask for usage).</summary>
internal sealed record ChatCompletionChunk(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<ChatChunkChoiceDto> Choices);

internal sealed record ChatCompletionChunkWithUsage(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<ChatChunkChoiceDto> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] UsageDto? Usage);

internal sealed record ChatChunkChoiceDto(
    int Index,
    ChatDeltaDto Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record ChatDeltaDto(string? Role, string? Content);

internal sealed record TextCompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<TextChoiceDto> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] UsageDto? Usage);

internal sealed record TextCompletionResponseWithUsage(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<TextChoiceDto> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] UsageDto? Usage);

internal sealed record TextChoiceDto(
    string Text,
    int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] object? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record ModelDto(string Id, string Object, long Created, string OwnedBy);

internal sealed record ModelListDto(string Object, IReadOnlyList<ModelDto> Data);

internal sealed record ErrorBodyDto(
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code,
    string? RequestId);

internal sealed record ErrorResponseDto(ErrorBodyDto Error);

// Duplicate keys are refused at any depth, JsonElement fields included: a proxy in front that reads the first of two
// "model" keys would otherwise see another request than the one served here (last wins).
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.Strict,
    AllowTrailingCommas = false,
    ReadCommentHandling = JsonCommentHandling.Disallow,
    AllowDuplicateProperties = false)]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(ChatCompletionResponse))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(ChatCompletionChunkWithUsage))]
[JsonSerializable(typeof(TextCompletionResponse))]
[JsonSerializable(typeof(TextCompletionResponseWithUsage))]
[JsonSerializable(typeof(ModelDto))]
[JsonSerializable(typeof(ModelListDto))]
[JsonSerializable(typeof(Health.HealthReportDto))]
[JsonSerializable(typeof(ErrorResponseDto))]
internal sealed partial class GatewayJsonContext : JsonSerializerContext;

/// <summary>
/// The context the gateway writes with: source-generated, plus the relaxed encoder so messages read
/// "Invalid 'messages'" rather than "Invalid \u0027messages\u0027" (responses are JSON APIs, never HTML).
/// </summary>
internal static class GatewayJson
{
    public static readonly GatewayJsonContext Context = new(new JsonSerializerOptions(GatewayJsonContext.Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
