using System.Text.Json.Serialization;

namespace Cortensor.Portal.Fleet.Protocols;

/// <summary>Body of <c>POST /api/{version}/completions[/{sessionId}]</c> on a Cortensor router.</summary>
internal sealed class CortensorCompletionBody
{
    /// <summary>Only in the body form (<c>/completions</c>); the path form carries the session in the URL.</summary>
    public long? SessionId { get; init; }

    public required string Prompt { get; init; }

    public bool Stream { get; init; }

    public int Timeout { get; init; }

    public int PromptType { get; init; }

    public string PromptTemplate { get; init; } = "";

    public required string ClientReference { get; init; }

    public int MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? TopK { get; init; }

    public double? PresencePenalty { get; init; }

    public double? FrequencyPenalty { get; init; }

    public IReadOnlyList<string>? Stop { get; init; }

    public int? PrecommitTimeout { get; init; }
}

/// <summary>Body of <c>POST /v1/chat/completions</c> and <c>/v1/completions</c> on an OpenAI-compatible upstream.</summary>
internal sealed class OpenAICompletionBody
{
    public string? Model { get; init; }

    /// <summary>Chat endpoint only.</summary>
    public IReadOnlyList<OpenAIMessage>? Messages { get; init; }

    /// <summary>Legacy completions endpoint only.</summary>
    public string? Prompt { get; init; }

    public int MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public double? PresencePenalty { get; init; }

    public double? FrequencyPenalty { get; init; }

    public IReadOnlyList<string>? Stop { get; init; }

    public bool Stream { get; init; }

    public OpenAIStreamOptions? StreamOptions { get; init; }
}

internal sealed record OpenAIMessage(string Role, string Content);

internal sealed record OpenAIStreamOptions(bool IncludeUsage);

/// <summary>Source-generated serializer for the bodies the gateway sends to routers (responses are read tolerantly with <c>JsonDocument</c>).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CortensorCompletionBody))]
[JsonSerializable(typeof(OpenAICompletionBody))]
internal sealed partial class RouterJsonContext : JsonSerializerContext;
