using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Metering.Tests.TestDoubles;

internal static class TestRecords
{
    public static readonly DateTimeOffset At = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    public static UsageRecord Create(string requestId) => new(
        new UsageEvent
        {
            RequestId = requestId,
            OccurredAt = At,
            OrgId = "org_1",
            KeyId = "key_1",
            Model = "llama-3",
            Pool = "pool-a",
            Outcome = UsageOutcome.Succeeded,
            PromptTokens = 10,
            CompletionTokens = 5,
        },
        new RequestLogEntry
        {
            RequestId = requestId,
            OccurredAt = At,
            OrgId = "org_1",
            KeyId = "key_1",
            Method = "POST",
            Path = "/v1/chat/completions",
            Model = "llama-3",
            StatusCode = 200,
            LatencyMs = 12,
        });

    public static string Id(int i) => $"req_{i:D6}";
}
