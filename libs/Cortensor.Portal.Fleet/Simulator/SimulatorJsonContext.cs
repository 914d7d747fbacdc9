using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>Wire types of the simulated router (snake_case), source-generated.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(SimCompletionRequest))]
[JsonSerializable(typeof(SimCompletion))]
[JsonSerializable(typeof(SimErrorEnvelope))]
[JsonSerializable(typeof(SimStatus))]
[JsonSerializable(typeof(SimInfo))]
[JsonSerializable(typeof(SimPing))]
[JsonSerializable(typeof(SimSessions))]
[JsonSerializable(typeof(SimSession))]
[JsonSerializable(typeof(SimMiners))]
[JsonSerializable(typeof(SimTask))]
internal sealed partial class SimulatorJsonContext : JsonSerializerContext;

internal sealed class SimCompletionRequest
{
    public long? SessionId { get; set; }

    public string? Prompt { get; set; }

    public bool? Stream { get; set; }

    public int? Timeout { get; set; }

    public int? PromptType { get; set; }

    public string? PromptTemplate { get; set; }

    public string? ClientReference { get; set; }

    public int? MaxTokens { get; set; }

    public double? Temperature { get; set; }

    public double? TopP { get; set; }

    public int? TopK { get; set; }

    public double? PresencePenalty { get; set; }

    public double? FrequencyPenalty { get; set; }

    public int? PrecommitTimeout { get; set; }

    public JsonElement? Stop { get; set; }
}

internal sealed record SimCompletion(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<SimChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] SimUsage? Usage,
    string TaskId);

internal sealed record SimChoice(string Text, int Index, string? FinishReason, string? Logprobs);

internal sealed record SimUsage(int PromptTokens, int CompletionTokens, int TotalTokens);

internal sealed record SimErrorEnvelope(SimError Error);

internal sealed record SimError(string Message);

internal sealed record SimStatus(int ActiveSessions, int ConnectedMiners, double CpuUsage, double MemoryUsage, long Uptime);

internal sealed record SimInfo(int ActiveSessions, string Address, string IpAddress, string Name, SimNodeStats NodeStats, int TotalSessions, string Version);

internal sealed record SimNodeStats(int DedicatedCount, int EphemeralCount, int TotalCount);

/// <summary>A task record: every assigned miner's result under the one task id; status 4 = done.</summary>
internal sealed record SimTask(IReadOnlyList<string> AssignedMiners, SimTaskResults Results, int Status, long FinishedAt);

internal sealed record SimTaskResults(IReadOnlyList<string> Data, IReadOnlyList<string> Miners);

internal sealed record SimPing(string Status, string Message);

internal sealed record SimSessions(IReadOnlyList<SimSession> Sessions);

internal sealed record SimSession(long Id, string Model, string Status);

internal sealed record SimMiners(IReadOnlyList<SimMiner> Miners);

internal sealed record SimMiner(string Id, string Address, string Status);
