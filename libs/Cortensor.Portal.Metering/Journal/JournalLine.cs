using System.Text.Json;
using System.Text.Json.Serialization;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Metering.Journal;

/// <summary>
/// One line of a journal segment (compact JSON, one object per line). <see cref="Type"/> says which fields are set:
/// <c>s</c> started (<see cref="Start"/>), <c>p</c> progress (<see cref="RequestId"/>, <see cref="CompletionTokens"/>,
/// <see cref="ElapsedMs"/>), <c>f</c> finished (<see cref="Record"/>), <c>d</c> done: stored by the sink (<see cref="Ids"/>).
/// </summary>
internal sealed record JournalLine
{
    public const string StartedType = "s";
    public const string ProgressType = "p";
    public const string FinishedType = "f";
    public const string DoneType = "d";

    [JsonPropertyName("t")]
    public required string Type { get; init; }

    [JsonPropertyName("start")]
    public UsageStart? Start { get; init; }

    [JsonPropertyName("id")]
    public string? RequestId { get; init; }

    [JsonPropertyName("ct")]
    public int? CompletionTokens { get; init; }

    [JsonPropertyName("ms")]
    public int? ElapsedMs { get; init; }

    [JsonPropertyName("rec")]
    public UsageRecord? Record { get; init; }

    [JsonPropertyName("ids")]
    public IReadOnlyList<string>? Ids { get; init; }
}

/// <summary>Source-generated JSON for the journal lines (web defaults, nulls left out).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JournalLine))]
internal sealed partial class JournalJsonContext : JsonSerializerContext;
