using System.Security.Cryptography;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Storage.Tests.Postgres;

internal static class PostgresTestData
{
    public static ApiKeyRecord NewKey(string orgId, string keyId) => new()
    {
        KeyId = keyId,
        OrgId = orgId,
        Name = "key " + keyId,
        Environment = ApiKeyEnvironment.Test,
        Hash = RandomNumberGenerator.GetBytes(32),
        DisplayPrefix = "pk_test_" + keyId,
        Scopes = ["chat"],
        CreatedAt = new DateTimeOffset(2026, 1, 15, 12, 0, 0, TimeSpan.Zero),
    };

    public static UsageRecord NewUsage(string requestId, DateTimeOffset occurredAt, int promptTokens = 1, int completionTokens = 1, string orgId = "org_a", string keyId = "key_1")
    {
        var usage = new UsageEvent
        {
            RequestId = requestId,
            OccurredAt = occurredAt,
            OrgId = orgId,
            KeyId = keyId,
            Model = "llama-3",
            Pool = "pool-a",
            Outcome = UsageOutcome.Succeeded,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens,
        };
        var log = new RequestLogEntry
        {
            RequestId = requestId,
            OccurredAt = occurredAt,
            OrgId = orgId,
            KeyId = keyId,
            Method = "POST",
            Path = "/v1/chat/completions",
            Model = "llama-3",
            StatusCode = 200,
            LatencyMs = 42,
        };
        return new UsageRecord(usage, log);
    }
}
