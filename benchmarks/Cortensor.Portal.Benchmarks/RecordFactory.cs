using Cortensor.Portal.Metering.Usage;

namespace Cortensor.Portal.Benchmarks;

/// <summary>
/// Realistic records: a 36-character request id per record minted like the gateway's (<c>req_</c> + a version-7
/// GUID of the record's time, so ids sort by time; or a random GUID with <c>randomIds</c>), occurred_at "now"
/// (so rows land in the current month's partition), 100 orgs with 10 keys each, a few models and pools, mostly
/// successes.
/// </summary>
internal sealed class RecordFactory(bool randomIds = false)
{
    private static readonly string[] Models = ["llama-3-8b", "llama-3-70b", "mistral-7b", "qwen-2-7b"];
    private static readonly string[] Pools = ["pool-a", "pool-b"];
    private readonly string[] _orgs = Enumerable.Range(0, 100).Select(i => $"org_{i:D4}").ToArray();
    private readonly string[] _keys = Enumerable.Range(0, 1000).Select(i => $"key_{i:D6}").ToArray();
    private readonly DateTimeOffset _start = DateTimeOffset.UtcNow;
    private long _sequence;

    public UsageRecord Next()
    {
        var n = Interlocked.Increment(ref _sequence);
        var at = _start.AddTicks(n * 10); // one microsecond apart
        var requestId = "req_" + (randomIds ? Guid.NewGuid() : Guid.CreateVersion7(at)).ToString("N");
        var key = (int)(n % _keys.Length);
        var org = _orgs[key / 10];
        var outcome = n % 50 == 0 ? UsageOutcome.UpstreamFailed : UsageOutcome.Succeeded;
        var usage = new UsageEvent
        {
            RequestId = requestId,
            OccurredAt = at,
            OrgId = org,
            KeyId = _keys[key],
            Model = Models[n % Models.Length],
            Pool = Pools[n % Pools.Length],
            Outcome = outcome,
            PromptTokens = (int)(n % 900) + 20,
            CompletionTokens = (int)(n % 400),
            TokensEstimated = n % 20 == 0,
            Stream = n % 2 == 0,
        };
        var log = new RequestLogEntry
        {
            RequestId = requestId,
            OccurredAt = at,
            OrgId = org,
            KeyId = _keys[key],
            Method = "POST",
            Path = "/v1/chat/completions",
            Model = usage.Model,
            StatusCode = outcome == UsageOutcome.Succeeded ? 200 : 502,
            ErrorCode = outcome == UsageOutcome.Succeeded ? null : "upstream_error",
            LatencyMs = (int)(n % 3000) + 50,
            RouterId = outcome == UsageOutcome.Succeeded ? "router-1" : null,
            UpstreamStatus = outcome == UsageOutcome.Succeeded ? 200 : null,
        };
        return new UsageRecord(usage, log);
    }

    public UsageRecord[] NextBatch(int size)
    {
        var batch = new UsageRecord[size];
        for (var i = 0; i < size; i++)
        {
            batch[i] = Next();
        }

        return batch;
    }
}
